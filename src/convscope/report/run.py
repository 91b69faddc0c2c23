"""The report of a run directory: learning_curves.png and report.html, from its files and results."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from convscope.metrics.overfitting import OverfittingDiagnosis
from convscope.report.curves import plot_learning_curves
from convscope.report.html import write_report
from convscope.runs import RunDir
from convscope.tasks import Kind


def write_run_report(
    run: RunDir,
    *,
    history: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    diagnosis: OverfittingDiagnosis | None,
    examples: Mapping[str, Sequence[Mapping[str, Any]]],
    kind: Kind | None,
) -> Path:
    """Write ``RUN/learning_curves.png`` and ``RUN/report.html`` (``kind``: the task's, which sections to draw;
    :func:`convscope.api.evaluate` passes a :class:`~convscope.evaluation.RunEvaluation`'s fields).

    ``examples`` maps a split name to the images to show; the test split's are shown when there are any, else
    the validation's. Classification: its misclassified images (dicts with ``image``, ``path``, ``true``,
    ``pred``, ``probability``). Segmentation: the images to overlay with their errors (dicts with ``image``
    (H, W, C), ``true_mask`` and ``pred_mask`` (H, W) class maps, ``name``, ``dice``, ``iou`` and ``group``,
    ``"worst"`` or ``"best"``). Instance segmentation: the images to overlay with object outlines (dicts with
    ``image`` (H, W, C), ``true_labels`` and ``pred_labels`` (H, W) label images, ``name``, ``accuracy`` and
    ``f1`` at IoU 0.5 and ``group``). See :func:`~convscope.report.html.write_report`'s ``overlays``.
    """
    figures: dict[str, Any] = {}
    if history:
        figures["learning_curves"] = plot_learning_curves(history, run.curves, diagnosis=diagnosis)
    split = "test" if examples.get("test") else "val"
    chosen = list(examples.get(split, []))
    overlays = [{**e, "split": split} for e in chosen if _is_overlay(e)]
    cards = [_card(e, split) for e in chosen if not _is_overlay(e)]
    return write_report(
        run.report,
        title=run.path.resolve().name,
        config_yaml=run.config.read_text() if run.config.is_file() else "",
        history=history,
        metrics=metrics,
        diagnosis=diagnosis.to_dict() if diagnosis is not None else None,
        figures=figures,
        examples=cards,
        # the run keeps the weights of its lowest validation loss: the diagnosis's best epoch
        weights_epoch=diagnosis.best_epoch if diagnosis is not None else None,
        overlays=overlays,
        kind=kind,
        data_check=json.loads(run.data_check.read_text()) if run.data_check.is_file() else None,
    )


def _is_overlay(example: Mapping[str, Any]) -> bool:
    """Whether an example is a segmentation overlay (semantic ``true_mask`` or instance ``true_labels``)."""
    return "true_mask" in example or "true_labels" in example


def _card(example: Mapping[str, Any], split: str) -> dict[str, Any]:
    """A misclassified image as :func:`~convscope.report.html.write_report` shows it."""
    return {
        "image": example["image"],
        "true": example["true"],
        "pred": example["pred"],
        "confidence": example["probability"],
        "name": Path(example["path"]).name,
        "split": split,
    }

"""The report of a run directory: learning_curves.png and report.html, from its files and results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from convscope.report.curves import plot_learning_curves
from convscope.report.html import write_report
from convscope.training.diagnosis import OverfittingDiagnosis
from convscope.training.rundir import RunDir


def write_run_report(
    run: RunDir,
    *,
    history: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    diagnosis: OverfittingDiagnosis | None,
    examples: Mapping[str, Sequence[Mapping[str, Any]]],
) -> Path:
    """Write ``RUN/learning_curves.png`` and ``RUN/report.html``.

    ``examples`` maps a split name to its misclassified images (dicts with ``image``, ``path``, ``true``,
    ``pred``, ``probability``); the test split's are shown when there are any, else the validation's.
    """
    figures: dict[str, Any] = {}
    if history:
        figures["learning_curves"] = plot_learning_curves(history, run.curves, diagnosis=diagnosis)
    split = "test" if examples.get("test") else "val"
    cards = [
        {
            "image": e["image"],
            "true": e["true"],
            "pred": e["pred"],
            "confidence": e["probability"],
            "name": Path(e["path"]).name,
            "split": split,
        }
        for e in examples.get(split, [])
    ]
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
    )

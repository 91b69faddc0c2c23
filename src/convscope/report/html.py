"""The run report: one self-contained ``report.html`` (figures embedded, no external resources)."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import yaml
from matplotlib.figure import Figure
from matplotlib.image import imsave

from convscope.io.atomic import write_text
from convscope.report._common import figure_png, png_data_uri
from convscope.report.baseline import report_baseline
from convscope.report.curves import learning_curves_figure, metric_label
from convscope.report.figures import plot_confusion_matrix, scale_for_display
from convscope.report.instances import (
    instance_headline,
    instance_overlay_groups,
    instance_per_image_table,
    instance_threshold_text,
    matching_section,
)
from convscope.report.segmentation import (
    baseline_lesson,
    overlay_groups,
    per_image_table,
    segmentation_headline,
    threshold_text,
)
from convscope.tasks.base import Kind

__all__ = ["format_value", "render_report", "write_report"]

_TEMPLATES = Path(__file__).parent / "templates"
_SPLIT_TITLES = {"train": "Training", "val": "Validation", "test": "Test"}
_NOT_SPLITS = {"overfitting", "params", "thresholds", "baseline"}
_FIRST_SCALARS = ("accuracy", "loss")
_SEGMENTATION_FIRST = ("dice", "iou", "precision", "recall", "pixel_accuracy", "all_background_accuracy", "loss")
_THUMB_MAX = 160  # pixels; larger example images are subsampled in the report
_SPLIT_NOTES = {
    "train": "Training images: the model learned from these, so these numbers are optimistic.",
    "val": "Validation images are never trained on, but they are checked after every epoch to pick the best "
    "epoch, so these numbers can be a little optimistic.",
    "test": "Test images were used neither for training nor for picking the best epoch: these numbers are the "
    "fair estimate of how the model does on new images like these.",
}
_HISTORY_LABELS = {"epoch": "Epoch", "lr": "Learning rate", "seconds": "Time (s)",
                   "validation_seconds": "Validation (s)"}
_SCALAR_LABELS = {
    "n_images": "Images",
    "n_pixels": "Pixels",
    "all_background_accuracy": "Pixel accuracy of an all-background prediction",
    "n_true": "True objects",
    "n_pred": "Predicted objects",
}
_MEAN_OVER_IMAGES = ("dice", "iou", "pixel_accuracy")

FigureLike = Figure | str | os.PathLike[str] | bytes


def format_value(value: Any, key: str = "") -> str:
    """A number as the report shows it: ints with thousands separators, floats with 4 decimals.

    ``lr`` keys use 3 significant digits, ``seconds`` one decimal; None and NaN show as a dash.
    """
    if value is None:
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value)) if key == "epoch" else f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if not math.isfinite(v):
            return "\u2013" if math.isnan(v) else str(v)
        if key == "lr":
            return f"{v:.3g}"
        if key in ("seconds", "validation_seconds"):
            return f"{v:.1f}" if v >= 1 or v == 0 else f"{v:.2g}"  # a fast validation is 0.04 s, not 0.0
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.2e}"
        return f"{v:,.1f}" if abs(v) >= 1e4 else f"{v:.4f}"
    return str(value)


def percent(p: float, decimals: int = 1) -> str:
    """``p`` as a percentage that never rounds a mistake away: 0.9995 is ``"99.95%"``, not ``"100.0%"``
    (and 0.0004 is ``"0.04%"``); more decimals only when needed, up to four."""
    text = f"{p:.{decimals}%}"
    while decimals < 4 and 0.0 < p < 1.0 and float(text.rstrip("%")) in (0.0, 100.0):
        decimals += 1
        text = f"{p:.{decimals}%}"
    return text


def _is_scalar(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _figure_src(figure: FigureLike) -> str:
    """A data URI for a matplotlib figure, a PNG file path or PNG bytes."""
    if isinstance(figure, Figure):
        return png_data_uri(figure_png(figure))
    if isinstance(figure, bytes):
        return png_data_uri(figure)
    return png_data_uri(Path(figure).read_bytes())


def _load_config(config_yaml: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(config_yaml)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _headline(metrics: Mapping[str, Any], kind: Kind | None) -> tuple[str, str] | None:
    """The headline number of the run's kind, from the test split, else the validation split."""
    if kind == "semantic":
        return segmentation_headline(metrics)
    if kind == "instances":
        return instance_headline(metrics)
    return _accuracy_headline(metrics)


def _accuracy_headline(metrics: Mapping[str, Any]) -> tuple[str, str] | None:
    """``("Test accuracy", "95.4% of 2,000 images")`` from the test split, else the validation split."""
    for key in ("test", "val"):
        split = metrics.get(key)
        if isinstance(split, Mapping) and _is_scalar(split.get("accuracy")):
            text = percent(float(split["accuracy"]))
            if _is_scalar(split.get("n_images")):
                text += f" of {int(split['n_images']):,} images"
            return f"{_SPLIT_TITLES[key]} accuracy", text
    return None


def _header(
    title: str,
    config_yaml: str,
    history: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    weights_epoch: int | None = None,
    kind: Kind | None = None,
):
    config = _load_config(config_yaml)
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    model_text = str(model.get("name", "\u2013"))
    if model.get("weights"):
        model_text += f" (weights: {model['weights']})"
    params = metrics.get("params") if isinstance(metrics.get("params"), Mapping) else {}
    rows = [
        ("Task", config.get("task", "\u2013")),
        ("Model", model_text),
        ("Data set", data.get("dataset", "\u2013")),
        ("Epochs trained", len(history)),
    ]
    if weights_epoch is not None:
        rows.append(("Model evaluated", f"weights of epoch {weights_epoch} (lowest validation loss)"))
    headline = _headline(metrics, kind)
    if headline is not None:
        rows.append(headline)
    threshold = threshold_text(metrics) if kind == "semantic" else None
    if threshold is not None:
        rows.append(("Foreground threshold", threshold))
    detection = instance_threshold_text(metrics) if kind == "instances" else None
    if detection is not None:
        rows.append(("Detection thresholds", detection))
    rows += [
        ("Trainable parameters", format_value(params.get("trainable"))),
        ("Non-trainable parameters", format_value(params.get("non_trainable"))),
    ]
    date = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return {"title": title, "date": date, "rows": [(k, str(v)) for k, v in rows]}


def _lower_label(name: str) -> str:
    """``metric_label`` for use mid-phrase: ``"precision"``, but ``"F1"``, ``"AP"`` and ``"IoU"`` kept."""
    label = metric_label(name)
    return label if any(c.isupper() or c.isdigit() for c in label[1:]) else label.lower()


def _scalar_rows(split: Mapping[str, Any], kind: Kind | None = None) -> list[tuple[str, str]]:
    """Rows (label, value) for the scalar metrics of a split, then its flat dict-valued averages."""
    semantic = kind == "semantic"
    first = _SEGMENTATION_FIRST if semantic else _FIRST_SCALARS
    keys = [k for k in first if _is_scalar(split.get(k))]
    keys += [k for k, v in split.items() if _is_scalar(v) and k not in keys]
    rows = [(_SCALAR_LABELS.get(k) or metric_label(k), format_value(split[k], k)) for k in keys]
    if semantic and isinstance(split.get("macro"), Mapping):
        macro = split["macro"]
        rows += [
            (f"{metric_label(k) if k != 'pixel_accuracy' else 'Pixel accuracy'}, mean over images",
             format_value(macro[k], k))
            for k in _MEAN_OVER_IMAGES
            if _is_scalar(macro.get(k))
        ]
    for key, value in split.items():
        if key == "per_class" or not isinstance(value, Mapping) or not value:
            continue
        if all(_is_scalar(v) for v in value.values()):
            prefix = key.removesuffix("_avg").replace("_", " ")
            rows += [
                (f"{prefix.capitalize()} {_lower_label(k)}", format_value(v, k)) for k, v in value.items()
            ]
    return rows


def _per_class(split: Mapping[str, Any]) -> dict[str, Any] | None:
    per_class = split.get("per_class")
    if not isinstance(per_class, Mapping) or not per_class:
        return None
    columns: list[str] = []
    for scores in per_class.values():
        columns += [k for k in scores if k not in columns]
    rows = [
        (str(name), [format_value(scores.get(c), c) for c in columns]) for name, scores in per_class.items()
    ]
    return {"columns": [metric_label(c) for c in columns], "rows": rows}


def _confusion_src(key: str, split: Mapping[str, Any], figures: Mapping[str, FigureLike]) -> str | None:
    if f"confusion_{key}" in figures:
        return _figure_src(figures[f"confusion_{key}"])
    cm = split.get("confusion_matrix")
    if cm is None:
        return None
    cm = np.asarray(cm)
    per_class = split.get("per_class")
    names = list(per_class) if isinstance(per_class, Mapping) and len(per_class) == len(cm) else None
    return _figure_src(plot_confusion_matrix(cm, names or [str(i) for i in range(len(cm))]))


def _split_note(key: str, keys: Sequence[str]) -> str:
    note = _SPLIT_NOTES.get(key, "")
    if key == "val" and "test" in keys:
        note += " The test metrics below are the ones to report."
    return note


def _splits(
    metrics: Mapping[str, Any], figures: Mapping[str, FigureLike], shown: Mapping[str, Mapping[str, str]],
    kind: Kind | None = None,
) -> list[dict[str, Any]]:
    keys = [k for k, v in metrics.items() if k not in _NOT_SPLITS and isinstance(v, Mapping)]
    keys.sort(key=lambda k: list(_SPLIT_TITLES).index(k) if k in _SPLIT_TITLES else len(_SPLIT_TITLES))
    out = []
    for key in keys:
        split = metrics[key]
        out.append(
            {
                "key": key,
                "title": _SPLIT_TITLES.get(key, key),
                "note": _split_note(key, keys),
                "scalars": _scalar_rows(split, kind),
                "per_class": _per_class(split),
                "confusion": _confusion_src(key, split, figures),
                "examples": _figure_src(figures[f"examples_{key}"]) if f"examples_{key}" in figures else None,
                "segmentation": kind == "semantic",
                "per_image": per_image_table(split, shown.get(key)) if kind == "semantic" else None,
                "matching": matching_section(split, _figure_src) if kind == "instances" else None,
                "instance_per_image": instance_per_image_table(split, shown.get(key)) if kind == "instances" else None,
            }
        )
    return out


def _data_check(check: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The data section: the check's verdict and every finding (check, severity, finding, fix)."""
    if not check:
        return None
    rows = [(f["check"], f["severity"], f["finding"], f.get("fix", "")) for folder in check.get("folders", [])
            for f in folder.get("findings", [])]
    worst = max((r[1] for r in rows), key=["ok", "note", "warning", "error"].index, default="ok")
    return {"verdict": str(check.get("verdict", "")), "rows": rows,
            "style": {"warning": "warn", "error": "warn", "note": "info"}.get(worst, "ok"),
            "folders": [str(folder.get("folder", "")) for folder in check.get("folders", [])]}


def _baseline(metrics: Mapping[str, Any], config_yaml: str) -> dict[str, Any] | None:
    """The "Do I need deep learning?" table: the network's test scores beside the classical baseline's."""
    model = _load_config(config_yaml).get("model")
    name = str(model.get("name", "network")) if isinstance(model, dict) else "network"
    section = report_baseline(metrics, network_name=f"{name} (this run)")
    if section is None:
        return None
    columns = [k for k in section.rows[0] if k != "method"]
    rows = [(row["method"], [format_value(row.get(c), c) for c in columns]) for row in section.rows]
    return {"columns": columns, "rows": rows, "sentence": section.sentence}


def _overlay_groups(overlays: Sequence[Mapping[str, Any]] | None, metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The galleries of semantic error overlays (``true_mask``), then of instance outline overlays
    (``true_labels``)."""
    overlays = overlays or []
    semantic = [o for o in overlays if "true_mask" in o]
    instance = [o for o in overlays if "true_labels" in o]
    return overlay_groups(semantic, metrics, _figure_src) + instance_overlay_groups(instance, metrics, _figure_src)


def _gap_text(gap: Any, *, lower_is_better: bool) -> str | None:
    """A validation-vs-training difference in words, so that its sign cannot be misread.

    ``gap`` is validation minus training for a loss (``lower_is_better``) and training minus validation for an
    accuracy (the layout of :class:`~convscope.metrics.overfitting.OverfittingDiagnosis`): positive means
    validation is worse in both.
    """
    if not _is_scalar(gap) or not math.isfinite(float(gap)):
        return None
    value = float(gap)
    if abs(value) < 5e-5:
        return "the same on validation as on training"
    validation_higher = value > 0 if lower_is_better else value < 0
    direction = "higher" if validation_higher else "lower"
    better = "worse" if value > 0 else "better"
    return f"{abs(value):.4f} {direction} on validation: validation {better}"


def _diagnosis(diagnosis: Mapping[str, Any] | None, weights_epoch: int | None = None) -> dict[str, Any] | None:
    if not diagnosis:
        return None
    verdict = str(diagnosis.get("verdict", ""))
    style = {"overfitting": "warn", "underfitting": "warn", "still improving": "info",
             "too few epochs to tell": "muted"}.get(verdict, "ok")
    labels = [
        ("best_epoch", "Best epoch (lowest validation loss)"),
        ("onset_epoch", "Overfitting from epoch"),
        ("best_val_loss", "Validation loss at the best epoch"),
        ("train_loss_at_best", "Training loss at the best epoch"),
    ]
    rows = [(label, format_value(diagnosis[k], k)) for k, label in labels if diagnosis.get(k) is not None]
    gaps = [
        ("generalisation_gap", True, "Loss at the best epoch"),
        ("accuracy_gap", False, "Accuracy at the best epoch"),
        ("final_gap", True, "Loss at the last epoch"),
    ]
    rows += [(label, text) for k, lower, label in gaps
             if (text := _gap_text(diagnosis.get(k), lower_is_better=lower)) is not None]
    return {
        "verdict": verdict[:1].upper() + verdict[1:],
        "overfitting": bool(diagnosis.get("overfitting")) and diagnosis.get("onset_epoch") is not None,
        "style": style,
        "summary": diagnosis.get("summary", ""),
        "advice": diagnosis.get("advice", ""),
        "weights_epoch": weights_epoch,
        "rows": rows,
    }


def _history_table(
    history: Sequence[Mapping[str, Any]], diagnosis: Mapping[str, Any] | None
) -> dict[str, Any]:
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    best = diagnosis.get("best_epoch") if diagnosis else None
    onset = diagnosis.get("onset_epoch") if diagnosis and diagnosis.get("overfitting") else None
    rows = []
    for row in history:
        epoch = row.get("epoch")
        overfit = onset is not None and isinstance(epoch, int | float) and epoch >= onset
        style = "best" if epoch == best else "overfit" if overfit else ""
        rows.append({"style": style, "cells": [format_value(row.get(c), c) for c in columns]})
    return {"columns": [_history_label(c) for c in columns], "rows": rows, "overfitting": onset is not None}


def _history_label(column: str) -> str:
    """``"val_loss"`` -> ``"Validation loss"``, ``"lr"`` -> ``"Learning rate"``."""
    if column in _HISTORY_LABELS:
        return _HISTORY_LABELS[column]
    split, _, name = column.partition("_")
    if split in ("train", "val") and name:
        return f"{'Training' if split == 'train' else 'Validation'} {_lower_label(name)}"
    return column.replace("_", " ").capitalize()


def _thumbnail_src(image: Any) -> str:
    scaled = scale_for_display(image)
    step = max(1, math.ceil(max(scaled.shape[:2]) / _THUMB_MAX))
    buf = io.BytesIO()
    imsave(buf, scaled[::step, ::step], format="png", cmap="gray", vmin=0.0, vmax=1.0)
    return png_data_uri(buf.getvalue())


def _confidence(value: Any) -> str:
    """A probability as a percentage that never rounds a doubt away: 0.996 is ``">99%"``, not ``"100%"``."""
    p = float(value)
    if 0.995 <= p < 1.0:
        return ">99%"
    return f"{p:.0%}"


def _example_detail(ex: Mapping[str, Any]) -> str:
    """``"test image #193"`` for an index, ``"test · cell_01.tif"`` for a file name."""
    split, name = ex.get("split"), ex.get("name")
    if name is not None and str(name).isdigit():
        return f"{split + ' ' if split is not None else ''}image #{name}"
    return " \u00b7 ".join(str(v) for v in (split, name) if v is not None)


def _example_cards(examples: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    cards = []
    for ex in examples or []:
        title = ex.get("title")
        lines = [("true", str(ex.get("true", "?"))), ("predicted", str(ex.get("pred", "?")))]
        confidence = _confidence(ex["confidence"]) if ex.get("confidence") is not None else None
        caption = title if title is not None else f"true {lines[0][1]}, predicted {lines[1][1]}"
        if title is None and confidence is not None:
            caption += f" ({confidence} confident)"
        src = _thumbnail_src(ex["image"]) if ex.get("image") is not None else None
        cards.append(
            {
                "src": src,
                "title": None if title is None else str(title),
                "lines": lines,
                "confidence": confidence,
                "caption": str(caption),
                "detail": _example_detail(ex),
            }
        )
    return cards


def _examples_intro(examples: Sequence[Mapping[str, Any]] | None, metrics: Mapping[str, Any]) -> str:
    """How many of how many misclassified images are shown, from which split, in which order."""
    if not examples:
        return ""
    n = len(examples)
    splits = {ex.get("split") for ex in examples}
    key = splits.pop() if len(splits) == 1 else None
    which = f"{_SPLIT_TITLES.get(key, key).lower()} images" if key else "images"
    total = None
    split = metrics.get(key) if key else None
    if isinstance(split, Mapping) and split.get("confusion_matrix") is not None:
        cm = np.asarray(split["confusion_matrix"])
        if cm.ndim == 2 and cm.shape[0] == cm.shape[1]:
            total = int(cm.sum() - np.trace(cm))
    conf = [ex.get("confidence") for ex in examples]
    ordered = n > 1 and all(c is not None for c in conf) and all(a >= b for a, b in itertools.pairwise(conf))
    if total is not None and total > n:
        chosen = "most confident" if ordered else "first"
        return f"The {n} {chosen} of the {total:,} misclassified {which}" + (", most confident first." if ordered
                                                                            else ".")
    return f"The {n} misclassified {which}" + (", the most confident mistakes first." if ordered else ".")


def _shown_overlays(overlays: Sequence[Mapping[str, Any]] | None) -> dict[str, dict[str, str]]:
    """Split -> image name -> group (``"worst"``/``"best"``) of the images whose overlay is shown."""
    shown: dict[str, dict[str, str]] = {}
    for o in overlays or []:
        shown.setdefault(str(o.get("split", "test")), {})[str(o.get("name"))] = str(o.get("group", "worst"))
    return shown


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_report(
    *,
    title: str,
    config_yaml: str,
    history: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    diagnosis: Mapping[str, Any] | None = None,
    figures: Mapping[str, FigureLike] | None = None,
    examples: Sequence[Mapping[str, Any]] | None = None,
    weights_epoch: int | None = None,
    overlays: Sequence[Mapping[str, Any]] | None = None,
    kind: Kind | None = None,
    data_check: Mapping[str, Any] | None = None,
) -> str:
    """The report as an HTML string; see :func:`write_report` for the arguments."""
    figures = dict(figures or {})
    if diagnosis is not None and not isinstance(diagnosis, Mapping):
        diagnosis = diagnosis.to_dict()  # an OverfittingDiagnosis
    if diagnosis is None and isinstance(metrics.get("overfitting"), Mapping):
        diagnosis = metrics["overfitting"]
    if "learning_curves" in figures:
        curves = _figure_src(figures["learning_curves"])
    else:
        curves = _figure_src(learning_curves_figure(history, diagnosis=diagnosis)) if history else None
    known = {"learning_curves", "examples"} | {f"{p}_{k}" for p in ("confusion", "examples") for k in metrics}
    context = {
        "header": _header(title, config_yaml, history, metrics, weights_epoch, kind),
        "diagnosis": _diagnosis(diagnosis, weights_epoch),
        "curves": curves,
        "splits": _splits(metrics, figures, _shown_overlays(overlays), kind),
        "examples_figure": _figure_src(figures["examples"]) if "examples" in figures else None,
        "examples": _example_cards(examples),
        "examples_intro": _examples_intro(examples, metrics),
        "other_figures": [(k, _figure_src(f)) for k, f in figures.items() if k not in known],
        "lesson": baseline_lesson(metrics) if kind == "semantic" else None,
        "baseline": _baseline(metrics, config_yaml),
        "data_check": _data_check(data_check),
        "overlays": _overlay_groups(overlays, metrics),
        "history": _history_table(history, diagnosis),
        "config_yaml": config_yaml,
    }
    return _environment().get_template("report.html").render(**context)


def write_report(
    path: str | os.PathLike[str],
    *,
    title: str,
    config_yaml: str,
    history: Sequence[Mapping[str, Any]],
    metrics: Mapping[str, Any],
    diagnosis: Mapping[str, Any] | None = None,
    figures: Mapping[str, FigureLike] | None = None,
    examples: Sequence[Mapping[str, Any]] | None = None,
    weights_epoch: int | None = None,
    overlays: Sequence[Mapping[str, Any]] | None = None,
    kind: Kind | None = None,
    data_check: Mapping[str, Any] | None = None,
) -> Path:
    """Write a self-contained HTML report of a run (PNG figures embedded as base64, no external files).

    Parameters
    ----------
    path : path-like
        The ``report.html`` to write (atomically).
    title : str
        The run name shown as the heading.
    config_yaml : str
        The resolved recipe (``config.yaml`` text); its ``task``, ``model.name`` and ``data.dataset`` go in
        the header, the whole text in a collapsed section.
    history : sequence of mappings
        Per-epoch rows (``epoch``, ``train_<metric>``, ``val_<metric>``, ``lr``, ``seconds``, ...).
    metrics : mapping
        As in ``metrics.json``: one split-metrics dict per split (``val``, ``test``, ...: every scalar
        entry becomes a table row, flat dict entries such as ``macro_avg`` become prefixed rows,
        ``per_class`` a per-class table and ``confusion_matrix`` a figure), plus ``overfitting``,
        ``params`` (``trainable`` / ``non_trainable``) and, for instance segmentation, ``thresholds``.
    diagnosis : mapping, optional
        ``OverfittingDiagnosis.to_dict()``; defaults to ``metrics["overfitting"]``.
    figures : mapping of str to Figure, PNG path or PNG bytes, optional
        ``"learning_curves"`` (drawn from ``history`` when absent), ``"confusion_<split>"`` (drawn from
        the split's ``confusion_matrix`` when absent), ``"examples"`` or ``"examples_<split>"`` (gallery
        figures, e.g. from :func:`~convscope.report.figures.plot_examples`); other keys are shown under
        "More figures" with the key as caption.
    examples : sequence of mappings, optional
        Misclassified images, each with ``true`` and ``pred`` (class names), optionally ``confidence``
        (float), ``image`` (array (H, W) or (H, W, C), min-max scaled, subsampled to at most 160 pixels),
        ``name`` (file or index), ``split``, or ``title`` (replaces the "true X, predicted Y (91%)" caption).
        Pass only as many as should be shown, most confident first; the report says how many of the split's
        misclassified images (from its confusion matrix) they are.
    weights_epoch : int, optional
        The epoch whose weights were evaluated (the best epoch, when the run keeps the best weights); shown
        in the header and the diagnosis.
    overlays : sequence of mappings, optional
        Segmentation: the images to show as error overlays (true positive, false positive, false negative
        pixels), each with ``image`` (array (H, W) or (H, W, C), any dtype), ``true_mask`` and ``pred_mask``
        (int arrays (H, W), 0 = background), ``name``, ``dice``, ``iou``, ``group`` (``"worst"`` or ``"best"``)
        and ``split``, in display order (e.g. from
        :func:`~convscope.report.segmentation.select_best_worst`). A segmentation split (one with
        ``all_background_accuracy``) also gets a per-image table sorted by Dice, and the report puts the
        pixel accuracy of an all-background prediction next to the model's, with ``metrics["threshold"]``.
        Instance segmentation: overlays with ``true_labels`` and ``pred_labels`` (int label images (H, W),
        0 = background) instead of the masks, and ``accuracy`` and ``f1`` (matching at IoU 0.5) instead of
        ``dice`` and ``iou``, drawn as object outlines (truth green, prediction magenta). An instance split
        (one with a ``matching`` table keyed by threshold, see
        :func:`~convscope.metrics.matching.matching_table`) gets the headline accuracy and F1 at IoU 0.5, a
        table at IoU 0.5 and 0.75, the full table, the matching curves and a per-image table sorted by
        accuracy; ``metrics["thresholds"]`` (``{"prob", "nms"}``) are shown as the tuned detection thresholds.

    kind : {"classification", "semantic", "instances"}, optional
        The task's kind (:attr:`convscope.tasks.Task.kind`): which sections the splits get (segmentation: the
        per-image table, the all-background lesson and the foreground threshold; instances: the matching tables
        and curves and the detection thresholds). Without it only the generic tables are drawn.
    data_check : mapping, optional
        :meth:`convscope.datasets.check.DataCheck.to_dict` of the data the run was trained on (``data_check.json``):
        its verdict and findings are shown in a "Data" section.

    Returns
    -------
    Path
        ``path``.
    """
    html = render_report(
        title=title,
        config_yaml=config_yaml,
        history=history,
        metrics=metrics,
        diagnosis=diagnosis,
        figures=figures,
        examples=examples,
        weights_epoch=weights_epoch,
        overlays=overlays,
        kind=kind,
        data_check=data_check,
    )
    path = Path(path)
    write_text(path, html)
    return path

"""The parts of the report that only instance segmentation has: the headline and tuned thresholds, the matching
metrics (StarDist's, see :mod:`convscope.metrics.matching`) at IoU 0.5 and 0.75 and over all thresholds with their
curves, a per-image table sorted by accuracy and outline overlays of the best and worst images.

An instance split of ``metrics.json`` is recognised by its ``"matching"`` table: ``{"0.5": {"precision",
"recall", "f1", "accuracy", "panoptic_quality", "tp", "fp", "fn", ...}, ...}`` keyed by threshold.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from convscope.report._common import mpl_text, save_figure
from convscope.report.figures import OVERLAY_MAX_SIDE
from convscope.report.segmentation import display_name, gallery_groups

__all__ = [
    "BOTH_COLOR",
    "OUTLINE_LEGEND",
    "PRED_COLOR",
    "TRUE_COLOR",
    "instance_headline",
    "instance_overlay_groups",
    "instance_per_image_table",
    "instance_threshold_text",
    "matching_section",
    "outline_overlay",
    "outlines",
    "percentile_normalize",
    "plot_matching_curves",
]

#: RGB colour of the ground-truth outlines (green).
TRUE_COLOR: tuple[int, int, int] = (0, 255, 0)
#: RGB colour of the predicted outlines (magenta).
PRED_COLOR: tuple[int, int, int] = (255, 0, 255)
#: RGB colour where a true and a predicted outline coincide (amber: visible on bright objects and dark background,
#: where white would vanish into bright nuclei and black into dark ones).
BOTH_COLOR: tuple[int, int, int] = (255, 190, 0)
#: Legend entries of :func:`outline_overlay`, for :func:`~convscope.report.figures.plot_overlays`.
OUTLINE_LEGEND: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("ground truth", TRUE_COLOR),
    ("prediction", PRED_COLOR),
    ("both", BOTH_COLOR),
)

_SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
#: Curves of :func:`plot_matching_curves`: (matching key, legend label, colour).
_CURVES = (
    ("precision", "precision", "#1f77b4"),
    ("recall", "recall", "#ff7f0e"),
    ("f1", "F1", "#2ca02c"),
    ("accuracy", "accuracy (AP, DSB2018)", "#d62728"),
    ("panoptic_quality", "panoptic quality", "#9467bd"),
)
_KEY_THRESHOLDS = (0.5, 0.75)
_HEADLINE_THRESHOLD = 0.5
#: Rows of the table at IoU 0.5 and 0.75: (matching key, label).
_KEY_ROWS = (
    ("accuracy", "Accuracy (AP, DSB2018)"),
    ("f1", "F1"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("panoptic_quality", "Panoptic quality"),
    ("mean_matched_score", "Mean {crit} of the matched objects"),
    ("mean_true_score", "Mean {crit} of the true objects (missed ones 0)"),
    ("tp", "True positives (objects matched)"),
    ("fp", "False positives (predicted, not matched)"),
    ("fn", "False negatives (true, missed)"),
    ("n_true", "True objects"),
    ("n_pred", "Predicted objects"),
)
#: Columns of the full table, one row per threshold: (matching key, header).
_FULL_COLUMNS = (
    ("accuracy", "Accuracy"),
    ("f1", "F1"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("panoptic_quality", "PQ"),
    ("tp", "TP"),
    ("fp", "FP"),
    ("fn", "FN"),
)
#: Columns of the per-image table: (per-image key, header, kind).
_PER_IMAGE_COLUMNS = (
    ("accuracy", "Accuracy", "score"),
    ("f1", "F1", "score"),
    ("precision", "Precision", "score"),
    ("recall", "Recall", "score"),
    ("panoptic_quality", "PQ", "score"),
    ("n_true", "Objects (true)", "count"),
    ("n_pred", "Objects (predicted)", "count"),
)
_CRITERIA = {"iou": "IoU", "iot": "IoT", "iop": "IoP"}
_THRESHOLD_NAMES = {"prob": "probability", "nms": "NMS", "cellprob": "cell probability", "flow": "flow error"}


# ------------------------------------------------------------------------------------------------ metrics


def _scalar(value: Any) -> float | None:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(float(value)) else None


def _reported_split(metrics: Mapping[str, Any]) -> str | None:
    """``"test"`` when the metrics have a test split with a matching table, else ``"val"``, else None."""
    return next((k for k in ("test", "val") if isinstance(metrics.get(k), Mapping) and metrics[k].get("matching")),
                None)


def _thresholds(matching: Mapping[str, Any]) -> list[tuple[float, str]]:
    """The (threshold, key) pairs of a matching table, ascending; keys that are not numbers are left out."""
    out = []
    for key, row in matching.items():
        try:
            value = float(key)
        except (TypeError, ValueError):
            continue
        if isinstance(row, Mapping) and math.isfinite(value):
            out.append((value, str(key)))
    return sorted(out)


def _row_at(matching: Mapping[str, Any], thresh: float) -> Mapping[str, Any] | None:
    """The matching row at ``thresh`` (keys ``"0.5"``, ``"0.50"``, ... alike), None when it was not evaluated."""
    return next((matching[k] for v, k in _thresholds(matching) if math.isclose(v, thresh, abs_tol=1e-9)), None)


def _criterion(split: Mapping[str, Any]) -> str:
    return _CRITERIA.get(str(split.get("criterion", "iou")).lower(), "IoU")


def _n_images(split: Mapping[str, Any]) -> int | None:
    n = _scalar(split.get("n_images"))
    if n is not None:
        return int(n)
    per_image = split.get("per_image")
    return len(per_image) if isinstance(per_image, Sequence) and per_image else None


def _fixed(value: Any, digits: int = 4) -> str:
    v = _scalar(value)
    return "\u2013" if v is None else f"{v:.{digits}f}"


def _count(value: Any) -> str:
    v = _scalar(value)
    return "\u2013" if v is None else f"{int(v):,}"


def instance_headline(metrics: Mapping[str, Any]) -> tuple[str, str] | None:
    """The headline of an instance run: matching accuracy and F1 at IoU 0.5 on the test split, else validation.

    Parameters
    ----------
    metrics : mapping
        As in ``metrics.json``.

    Returns
    -------
    tuple of (str, str) or None
        ``("Test object matching", "accuracy 0.8400 / F1 0.9100 at IoU 0.5 (test, 24 images)")``; None without an
        instance split or without a row at 0.5.
    """
    key = _reported_split(metrics)
    if key is None:
        return None
    split = metrics[key]
    row = _row_at(split["matching"], _HEADLINE_THRESHOLD)
    if row is None or _scalar(row.get("accuracy")) is None:
        return None
    where = _SPLIT_NAMES[key]
    n = _n_images(split)
    if n is not None:
        where += f", {n:,} image{'s' if n != 1 else ''}"
    text = f"accuracy {_fixed(row['accuracy'])}"
    if _scalar(row.get("f1")) is not None:
        text += f" / F1 {_fixed(row['f1'])}"
    text += f" at {_criterion(split)} {_HEADLINE_THRESHOLD:g} ({where})"
    return f"{_SPLIT_NAMES[key].capitalize()} object matching", text


def instance_threshold_text(metrics: Mapping[str, Any]) -> str | None:
    """The tuned detection thresholds in words: ``"probability 0.48, NMS 0.30, tuned on the validation images"``.

    Parameters
    ----------
    metrics : mapping
        As in ``metrics.json``, with ``"thresholds"``: ``{"prob": float, "nms": float}`` (other tasks may use
        other keys; they are shown by name, non-numbers are left out).

    Returns
    -------
    str or None
        None without an instance split or without numeric thresholds.
    """
    thresholds = metrics.get("thresholds")
    if _reported_split(metrics) is None or not isinstance(thresholds, Mapping):
        return None
    parts = [
        f"{_THRESHOLD_NAMES.get(str(k), str(k).replace('_', ' '))} {_scalar(v):.2f}"
        for k, v in thresholds.items()
        if _scalar(v) is not None
    ]
    return ", ".join(parts) + ", tuned on the validation images" if parts else None


def matching_section(split: Mapping[str, Any], figure_src: Callable[[Any], str]) -> dict[str, Any] | None:
    """The matching tables and curves of an instance split, as the report template shows them.

    Parameters
    ----------
    split : mapping
        An instance split-metrics dict (``"matching"`` keyed by threshold, optional ``"criterion"``).
    figure_src : callable
        Turns a figure into an ``<img src>`` value.

    Returns
    -------
    dict or None
        ``{"criterion": "IoU", "key_columns": ["IoU 0.5", "IoU 0.75"], "key_rows": [(label, [value, ...]), ...],
        "missing": [thresholds not evaluated, e.g. "0.75"], "full_columns": [...], "full_rows": [{"threshold",
        "cells", "style"}, ...], "curves": str}``; None for a split that is not an instance split.
    """
    matching = split.get("matching")
    if not isinstance(matching, Mapping) or not matching:
        return None
    crit = _criterion(split)
    present = [(t, _row_at(matching, t)) for t in _KEY_THRESHOLDS]
    key = [(t, row) for t, row in present if row is not None]
    key_rows = [
        (label.format(crit=crit), [_cell(row.get(k), k) for _, row in key])
        for k, label in _KEY_ROWS
        if any(k in row for _, row in key)
    ]
    full_rows = [
        {
            "threshold": f"{t:g}",
            "cells": [_cell(matching[k].get(c), c) for c, _ in _FULL_COLUMNS],
            "style": "best" if math.isclose(t, _HEADLINE_THRESHOLD) else "",
        }
        for t, k in _thresholds(matching)
    ]
    return {
        "criterion": crit,
        "key_columns": [f"{crit} {t:g}" for t, _ in key],
        "key_rows": key_rows,
        "missing": [f"{t:g}" for t, row in present if row is None],
        "full_columns": [header for _, header in _FULL_COLUMNS],
        "full_rows": full_rows,
        "curves": figure_src(plot_matching_curves(matching, criterion=crit)),
    }


def _cell(value: Any, key: str) -> str:
    return _count(value) if key in ("tp", "fp", "fn", "n_true", "n_pred") else _fixed(value)


# ------------------------------------------------------------------------------------------------ curves


def _curve(matching: Mapping[str, Any], keys: Sequence[str], metric: str) -> np.ndarray:
    values = [_scalar(matching[k].get(metric)) for k in keys]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def plot_matching_curves(
    matching: Mapping[str, Mapping[str, float]],
    path: str | os.PathLike[str] | None = None,
    *,
    criterion: str = "IoU",
    title: str | None = None,
) -> Figure:
    """Precision, recall, F1, accuracy and panoptic quality against the matching threshold.

    Parameters
    ----------
    matching : mapping of str to mapping of str to float
        ``{"0.1": {"precision", "recall", "f1", "accuracy", "panoptic_quality", ...}, ..., "0.9": {...}}`` as in
        ``metrics.json`` (:func:`~convscope.metrics.matching.matching_table`); keys that are not numbers are left
        out, missing metrics are not drawn.
    path : path-like, optional
        Also save the figure as a PNG there (atomically).
    criterion : str
        The name of the matching score on the x axis.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        One line per metric, y in [0, 1], with a dotted vertical line at the headline threshold 0.5.
    """
    thresholds = _thresholds(matching)
    if not thresholds:
        raise ValueError("the matching table has no thresholds: nothing to plot")
    xs = np.array([t for t, _ in thresholds])
    keys = [k for _, k in thresholds]
    fig = Figure(figsize=(6.6, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for metric, label, color in _CURVES:
        ys = _curve(matching, keys, metric)
        if np.isfinite(ys).any():
            ax.plot(xs, ys, marker="o", ms=3.5, lw=1.8, color=color, label=label)
    ax.axvline(_HEADLINE_THRESHOLD, color="0.35", ls=":", lw=1.4, label=f"{criterion} {_HEADLINE_THRESHOLD:g}")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlim(max(0.0, xs.min() - 0.05), min(1.0, xs.max() + 0.05))
    ax.set_xlabel(mpl_text(f"{criterion} threshold (a predicted object matches a true one at or above it)"))
    ax.set_ylabel("Score")
    ax.grid(True, color="0.9", lw=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.legend(loc="outside right center", fontsize=8.5, frameon=False)
    if title:
        ax.set_title(mpl_text(title), fontsize=11)
    if path is not None:
        save_figure(fig, path)
    return fig


# ---------------------------------------------------------------------------------------------- overlays


def percentile_normalize(image: ArrayLike, pmin: float = 1.0, pmax: float = 99.8) -> np.ndarray:
    """Scale an image so that its ``pmin`` and ``pmax`` percentiles become 0 and 1, clipped to [0, 1].

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C), any real or bool dtype
        The percentiles are taken over all pixels and channels together (NaN ignored, then shown as 0).
    pmin, pmax : float
        Percentiles, ``0 <= pmin < pmax <= 100``; the defaults are csbdeep's / StarDist's.

    Returns
    -------
    ndarray of float64, the shape of ``image``
        All 0 for a constant image.
    """
    if not 0.0 <= pmin < pmax <= 100.0:
        raise ValueError(f"expected 0 <= pmin < pmax <= 100, got {pmin} and {pmax}")
    a = np.asarray(image).astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros_like(a)
    lo, hi = np.percentile(a[finite], [pmin, pmax])
    if hi <= lo:  # e.g. a mostly-constant image: fall back to its full range
        lo, hi = a[finite].min(), a[finite].max()
    out = np.clip((a - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(a)
    return np.where(finite, out, 0.0)


def _display_rgb(image: ArrayLike) -> np.ndarray:
    """(H, W, 3) float64 in [0, 1]: RGB for 3 channels, else grey (channels normalised one by one, averaged)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 3:
        return percentile_normalize(a)
    if a.ndim == 3:
        gray = np.mean([percentile_normalize(a[..., c]) for c in range(a.shape[-1])], axis=0)
    elif a.ndim == 2:
        gray = percentile_normalize(a)
    else:
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C), got {a.shape}")
    return np.repeat(gray[..., None], 3, axis=-1)


def _labels(labels: ArrayLike, name: str) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 2 or y.dtype.kind not in "iub":
        raise ValueError(f"{name} must be an integer label image (H, W), got {y.dtype} {y.shape}")
    return y


def outlines(labels: ArrayLike, thickness: int = 1) -> np.ndarray:
    """The outline pixels of the objects of a label image.

    A pixel is on an outline when it belongs to an object (label != 0) and one of its 4-neighbours (with
    ``thickness`` t: one of the pixels up to t steps straight up, down, left or right) has a different label.
    Outside the image counts as the same label, so an object cut by the image border stays open there.

    Parameters
    ----------
    labels : array_like of int, shape (H, W)
        0 = background, every other value one object.
    thickness : int
        Outline width in pixels, inwards from the object's boundary; at least 1.

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    y = _labels(labels, "labels")
    if thickness < 1:
        raise ValueError(f"thickness must be >= 1, got {thickness}")
    padded = np.pad(y, thickness, mode="edge")
    h, w = y.shape
    edge = np.zeros(y.shape, dtype=bool)
    for k in range(1, thickness + 1):
        for dy, dx in ((-k, 0), (k, 0), (0, -k), (0, k)):
            neighbour = padded[thickness + dy : thickness + dy + h, thickness + dx : thickness + dx + w]
            edge |= neighbour != y
    return edge & (y != 0)


def outline_overlay(
    image: ArrayLike, true_labels: ArrayLike, pred_labels: ArrayLike, *, thickness: int = 1
) -> np.ndarray:
    """The image with the outlines of the true objects in green and of the predicted objects in magenta.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C), any real dtype (e.g. uint8, uint16)
        Percentile-normalised (:func:`percentile_normalize`, 1 to 99.8): shown in colour when C == 3, else in
        grey (each channel normalised, then averaged).
    true_labels, pred_labels : array_like of int, shape (H, W)
        Label images, 0 = background; outlines as in :func:`outlines`.
    thickness : int
        Outline width in pixels.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        RGB; outline pixels are opaque :data:`TRUE_COLOR`, :data:`PRED_COLOR`, or :data:`BOTH_COLOR` where both
        outlines run; every other pixel is the image.
    """
    rgb = _display_rgb(image) * 255.0
    t, p = _labels(true_labels, "true_labels"), _labels(pred_labels, "pred_labels")
    if t.shape != p.shape or rgb.shape[:2] != t.shape:
        raise ValueError(f"image {rgb.shape[:2]}, true labels {t.shape} and predicted labels {p.shape} differ in size")
    true_edge, pred_edge = outlines(t, thickness), outlines(p, thickness)
    rgb[true_edge & ~pred_edge] = TRUE_COLOR
    rgb[pred_edge & ~true_edge] = PRED_COLOR
    rgb[true_edge & pred_edge] = BOTH_COLOR
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _n_objects(labels: ArrayLike) -> int:
    values = np.unique(np.asarray(labels))
    return int(np.count_nonzero(values))


def _overlay_title(example: Mapping[str, Any]) -> str:
    name = display_name(example.get("name", "?"))
    counts = f"{_n_objects(example['true_labels'])} true, {_n_objects(example['pred_labels'])} predicted"
    return f"{name}\naccuracy {_fixed(example.get('accuracy'))} \u00b7 F1 {_fixed(example.get('f1'))}\n{counts}"


def _draw_outlines(example: Mapping[str, Any]) -> np.ndarray:
    """The outline overlay, outlines as thick as one displayed pixel once the gallery shrinks the image."""
    shape = np.shape(example["true_labels"])
    thickness = max(1, math.ceil(max(shape) / OVERLAY_MAX_SIDE))
    return outline_overlay(example["image"], example["true_labels"], example["pred_labels"], thickness=thickness)


def instance_overlay_groups(
    overlays: Sequence[Mapping[str, Any]] | None, metrics: Mapping[str, Any], figure_src: Callable[[Any], str]
) -> list[dict[str, Any]]:
    """One gallery figure per group (``"worst"``, then ``"best"``) of outline overlays.

    Parameters
    ----------
    overlays : sequence of mappings
        Each with ``image`` (H, W) or (H, W, C), ``true_labels`` and ``pred_labels`` (H, W) label images,
        ``name``, ``accuracy`` and ``f1`` (at IoU 0.5), ``group`` (``"worst"`` or ``"best"``) and ``split``, in
        display order (e.g. from :func:`~convscope.report.segmentation.select_best_worst` on the accuracies).
    metrics : mapping
        Split metrics, for the number of images of the split.
    figure_src : callable
        Turns a figure into an ``<img src>`` value.

    Returns
    -------
    list of dict
        ``[{"title", "src", "alt", "kind": "outlines"}, ...]``.
    """
    return gallery_groups(
        overlays, metrics, figure_src, draw=_draw_outlines, caption=_overlay_title,
        score=f"accuracy at IoU {_HEADLINE_THRESHOLD:g}", short="accuracy", legend=OUTLINE_LEGEND, kind="outlines",
    )


# ---------------------------------------------------------------------------------------------- per image


def _image_value(row: Mapping[str, Any], key: str) -> Any:
    """``row[key]``, else the per-image key of :func:`~convscope.metrics.matching.evaluate_label_pairs`
    (``"accuracy@0.5"``)."""
    return row[key] if key in row else row.get(f"{key}@{_HEADLINE_THRESHOLD:g}")


def _sort_key(row: Mapping[str, Any]) -> tuple[float, float]:
    accuracy, f1 = _scalar(_image_value(row, "accuracy")), _scalar(_image_value(row, "f1"))
    return (-math.inf if accuracy is None else accuracy, -math.inf if f1 is None else f1)


def instance_per_image_table(
    split: Mapping[str, Any], shown: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """The split's per-image matching scores at IoU 0.5 as table rows, lowest accuracy first (ties: lowest F1).

    Parameters
    ----------
    split : mapping
        An instance split-metrics dict with ``per_image``: ``[{"name", "n_true", "n_pred", "precision", "recall",
        "f1", "accuracy", "panoptic_quality"}, ...]`` (or the ``"accuracy@0.5"`` keys of
        :func:`~convscope.metrics.matching.evaluate_label_pairs`; missing values show as a dash, images without a
        score first).
    shown : mapping of str to str, optional
        Image name -> ``"worst"`` or ``"best"`` for the images whose overlay the report shows.

    Returns
    -------
    dict or None
        ``{"columns": [...], "rows": [{"rank", "name", "title", "cells", "shown"}, ...]}``; None without
        per-image scores.
    """
    per_image = split.get("per_image")
    if not isinstance(per_image, Sequence) or not per_image:
        return None
    shown = shown or {}
    rows = []
    for rank, row in enumerate(sorted(per_image, key=_sort_key), start=1):
        name = str(row.get("name", "?"))
        cells = [
            _count(_image_value(row, k)) if kind == "count" else _fixed(_image_value(row, k))
            for k, _, kind in _PER_IMAGE_COLUMNS
        ]
        rows.append({"rank": rank, "name": display_name(name), "title": name, "cells": cells,
                     "shown": shown.get(name, "")})
    return {"columns": [header for _, header, _ in _PER_IMAGE_COLUMNS], "rows": rows}

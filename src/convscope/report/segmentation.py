"""The parts of the report that only semantic segmentation has: the all-background baseline next to the model's
scores, the tuned threshold, a per-image table sorted by Dice and overlays of the best and worst images."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

import numpy as np

from convscope.report.figures import overlay_errors, plot_overlays
from convscope.tasks.base import select_best_worst

__all__ = [
    "baseline_lesson",
    "display_name",
    "gallery_groups",
    "overlay_groups",
    "per_image_table",
    "segmentation_headline",
    "select_best_worst",
    "threshold_text",
]

_SPLIT_NAMES = {"train": "training", "val": "validation", "test": "test"}
_GROUP_ORDER = {"worst": "lowest", "best": "highest"}


def _scalar(value: Any) -> float | None:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(float(value)) else None


def _reported_split(metrics: Mapping[str, Any]) -> str | None:
    """``"test"`` when the metrics have a test split, else ``"val"`` when they have one, else None."""
    return next((k for k in ("test", "val") if isinstance(metrics.get(k), Mapping)), None)


def segmentation_headline(metrics: Mapping[str, Any]) -> tuple[str, str] | None:
    """``("Test Dice", "0.9669 (IoU 0.9359) over 2 images")`` from the test split, else the validation split."""
    key = _reported_split(metrics)
    if key is None or _scalar(metrics[key].get("dice")) is None:
        return None
    split = metrics[key]
    text = f"{float(split['dice']):.4f}"
    if _scalar(split.get("iou")) is not None:
        text += f" (IoU {float(split['iou']):.4f})"
    if _scalar(split.get("n_images")) is not None:
        n = int(split["n_images"])
        text += f" over {n:,} image{'s' if n != 1 else ''}"
    return f"{_SPLIT_NAMES[key].capitalize()} Dice", text


def _class_names(split: Mapping[str, Any]) -> list[str]:
    per_class = split.get("per_class")
    return [str(n) for n in per_class] if isinstance(per_class, Mapping) else []


def threshold_text(metrics: Mapping[str, Any]) -> str | None:
    """The foreground threshold of a binary task, in words; None for multi-class or without a threshold."""
    threshold = _scalar(metrics.get("threshold"))
    key = _reported_split(metrics)
    if threshold is None or key is None or len(_class_names(metrics[key])) > 2:
        return None
    return f"{threshold:.2f} (tuned on the validation images for the highest Dice)"


def _baseline_scores(split: Mapping[str, Any]) -> tuple[float, float]:
    """Dice and IoU of predicting background everywhere: 0 for a class with true pixels, 1 for an absent one."""
    per_class = split.get("per_class")
    supports = [s.get("support", 0) for s in list(per_class.values())[1:]] if isinstance(per_class, Mapping) else []
    if not supports:
        return 0.0, 0.0
    score = float(np.mean([0.0 if s else 1.0 for s in supports]))
    return score, score


def baseline_lesson(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """The model's pixel accuracy, Dice and IoU next to those of an all-background prediction, with the moral.

    Returns
    -------
    dict or None
        ``{"split": "test", "rows": [(label, accuracy, dice, iou), ...], "sentence": str}`` for the test split
        (else the validation split); None without a segmentation split.
    """
    key = _reported_split(metrics)
    if key is None:
        return None
    split = metrics[key]
    names = _class_names(split) or ["background", "foreground"]
    background = float(split["all_background_accuracy"])
    base_dice, base_iou = _baseline_scores(split)
    objects = names[1] if len(names) == 2 else "objects"
    rows = [
        (f"Predicting \u201c{names[0]}\u201d everywhere", f"{background:.1%}", f"{base_dice:.4f}",
         f"{base_iou:.4f}"),
        ("This model", _percent(split.get("pixel_accuracy")), _fixed(split.get("dice")), _fixed(split.get("iou"))),
    ]
    sentence = (
        f"{background:.0%} of the {_SPLIT_NAMES[key]} pixels are {names[0]}, so a model that finds no {objects} at "
        f"all already reaches {background:.0%} pixel accuracy; Dice and IoU score only how well the {objects} "
        f"are found, which is why they, not pixel accuracy, say how good the segmentation is."
    )
    return {"split": _SPLIT_NAMES[key], "rows": rows, "sentence": sentence}


def _fixed(value: Any) -> str:
    v = _scalar(value)
    return "\u2013" if v is None else f"{v:.4f}"


def _percent(value: Any, digits: int = 1) -> str:
    v = _scalar(value)
    return "\u2013" if v is None else f"{v:.{digits}%}"


def display_name(name: Any) -> str:
    """A file path as its file name (``/data/a/img_01.tif`` -> ``img_01.tif``); other names unchanged."""
    s = str(name)
    path = PurePath(s)
    return path.name if path.suffix and path.name else s


def short_name(name: Any, width: int = 24) -> str:
    """:func:`display_name` with the middle of a long name elided (``72b18a40...4d2327.png``), for titles."""
    s = display_name(name)
    if len(s) <= width:
        return s
    keep = width - 3
    return f"{s[: keep - keep // 2]}...{s[len(s) - keep // 2 :]}"


def _sort_key(row: Mapping[str, Any]) -> tuple[float, float]:
    dice, iou = _scalar(row.get("dice")), _scalar(row.get("iou"))
    return (math.inf if dice is None else dice, math.inf if iou is None else iou)


def per_image_table(split: Mapping[str, Any], shown: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The split's per-image scores as table rows, lowest Dice first (ties: lowest IoU first).

    Parameters
    ----------
    split : mapping
        A segmentation split-metrics dict with ``per_image``: ``[{"name", "dice", "iou", "pixel_accuracy",
        "true_foreground_fraction", "predicted_foreground_fraction"}, ...]`` (missing values show as a dash).
    shown : mapping of str to str, optional
        Image name -> ``"worst"`` or ``"best"`` for the images whose overlay the report shows.

    Returns
    -------
    dict or None
        ``{"columns": [...], "rows": [{"name", "title", "cells", "shown"}, ...]}``; None without per-image scores.
    """
    per_image = split.get("per_image")
    if not isinstance(per_image, Sequence) or not per_image:
        return None
    shown = shown or {}
    rows = []
    for rank, row in enumerate(sorted(per_image, key=_sort_key), start=1):
        name = str(row.get("name", "?"))
        cells = [_fixed(row.get("dice")), _fixed(row.get("iou")), _percent(row.get("pixel_accuracy")),
                 _percent(row.get("true_foreground_fraction")), _percent(row.get("predicted_foreground_fraction"))]
        rows.append({"rank": rank, "name": display_name(name), "title": name, "cells": cells,
                     "shown": shown.get(name, "")})
    columns = ["Dice", "IoU", "Pixel accuracy", "Foreground (true)", "Foreground (predicted)"]
    return {"columns": columns, "rows": rows}


def _overlay_title(example: Mapping[str, Any]) -> str:
    name = display_name(example.get("name", "?"))
    return f"{name}\nDice {_fixed(example.get('dice'))} \u00b7 IoU {_fixed(example.get('iou'))}"


def _group_title(group: str, n: int, split: str, total: int | None, score: str = "Dice", short: str = "Dice") -> str:
    plural = n != 1 if total is None or total == n else total != 1
    which = f"{_SPLIT_NAMES.get(split, split)} image{'s' if plural else ''}"
    order = _GROUP_ORDER.get(group)
    order = f"{order} {short} first" if order else ""
    if group == "worst" and total == n:
        return f"All {n} {which}, {order}"
    of = f" of {total:,}" if total else ""
    return f"{group.capitalize()} {n}{of} {which} by {score}, {order}".rstrip(", ")


def gallery_groups(
    overlays: Sequence[Mapping[str, Any]] | None,
    metrics: Mapping[str, Any],
    figure_src: Callable[[Any], str],
    *,
    draw: Callable[[Mapping[str, Any]], np.ndarray],
    caption: Callable[[Mapping[str, Any]], str],
    score: str = "Dice",
    short: str = "Dice",
    legend: Sequence[tuple[str, tuple[int, int, int]]] | None = None,
    kind: str = "errors",
) -> list[dict[str, Any]]:
    """One gallery figure per group (``"worst"``, then ``"best"``) of overlays drawn by ``draw``.

    Parameters
    ----------
    overlays : sequence of mappings
        Each with ``group`` (``"worst"`` or ``"best"``), ``split`` and whatever ``draw`` and ``caption`` read,
        in display order.
    metrics : mapping
        Split metrics, for the number of images of the split.
    figure_src : callable
        Turns a figure into an ``<img src>`` value.
    draw : callable
        An overlay mapping -> RGB image, uint8 (H, W, 3).
    caption : callable
        An overlay mapping -> its panel title.
    score, short : str
        The score the images were ranked by, in the group title (``"Worst 3 of 40 test images by {score},
        lowest {short} first"``).
    legend : sequence of (str, (int, int, int)), optional
        Legend entries; default the error colours (see :func:`~convscope.report.figures.plot_overlays`).
    kind : str
        Passed through, so that the report can explain the colours.

    Returns
    -------
    list of dict
        ``[{"title", "src", "alt", "kind"}, ...]``.
    """
    out = []
    for group in ("worst", "best"):
        chosen = [o for o in overlays or [] if o.get("group", "worst") == group]
        if not chosen:
            continue
        split = str(chosen[0].get("split", "test"))
        n_images = _scalar(metrics.get(split, {}).get("n_images")) if isinstance(metrics.get(split), Mapping) else None
        figure = plot_overlays([draw(o) for o in chosen], [caption(o) for o in chosen], legend=legend)
        title = _group_title(group, len(chosen), split, None if n_images is None else int(n_images), score, short)
        out.append({"title": title, "src": figure_src(figure), "alt": title, "kind": kind})
    return out


def _error_overlay(example: Mapping[str, Any]) -> np.ndarray:
    return overlay_errors(example["image"], example["true_mask"], example["pred_mask"])


def overlay_groups(
    overlays: Sequence[Mapping[str, Any]] | None, metrics: Mapping[str, Any], figure_src: Callable[[Any], str]
) -> list[dict[str, Any]]:
    """One gallery figure per group (``"worst"``, then ``"best"``) of segmentation overlays.

    Parameters
    ----------
    overlays : sequence of mappings
        Each with ``image`` (H, W) or (H, W, C), ``true_mask`` and ``pred_mask`` (H, W) class maps, ``name``,
        ``dice``, ``iou``, ``group`` (``"worst"`` or ``"best"``) and ``split``, in display order.
    metrics : mapping
        Split metrics, for the number of images of the split.
    figure_src : callable
        Turns a figure into an ``<img src>`` value.

    Returns
    -------
    list of dict
        ``[{"title", "src", "alt", "kind": "errors"}, ...]``.
    """
    return gallery_groups(overlays, metrics, figure_src, draw=_error_overlay, caption=_overlay_title)

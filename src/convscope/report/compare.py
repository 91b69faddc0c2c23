"""Instance runs side by side: star-convex polygons next to flow fields (or any instance runs) trained on the same
data set and split.

``convscope compare RUN_A RUN_B ... --out DIR`` writes into ``DIR``:

- ``compare.md``: the table (matching accuracy, F1 and panoptic quality at IoU 0.5 and 0.75 on the test images,
  epochs, training minutes, network and post-processing seconds per megapixel) and links to the figures, ready to
  paste into BENCHMARKS.md or RESULTS.md;
- ``compare.json``: the same numbers, and the test images of the overlays with every run's accuracy on them;
- ``matching_curves.png``: matching accuracy and F1 against the IoU threshold, one line per run;
- ``overlays.png``: the test images where the runs' accuracy at IoU 0.5 differs most, one row per image, one
  column per run, truth outlined in green and prediction in magenta;
- ``compare.html``: all of it in one self-contained page (figures embedded).

The numbers are those of each run's ``metrics.json`` (test split) and ``history.csv``; only the overlays need the
data and the models. The per-image accuracies in ``metrics.json`` choose the overlay images; a run without them
(or evaluated on differently named images) is scored again with :func:`convscope.metrics.matching.matching`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from convscope.errors import ConvscopeError
from convscope.evaluation.compare import (
    SPLIT_KEYS,
    Comparison,
    OverlayImages,
    RunSummary,
    compare_runs,
    overlay_images,
    scalar,
)
from convscope.io.atomic import write_json, write_text
from convscope.report._common import figure_png, mpl_text, png_data_uri, save_figure
from convscope.report.figures import OVERLAY_MAX_SIDE, plot_overlays
from convscope.report.instances import OUTLINE_LEGEND, outline_overlay
from convscope.report.segmentation import short_name

__all__ = ["COLUMNS", "SPLIT_KEYS", "markdown_table", "plot_comparison_curves", "plot_comparison_overlays",
           "text_table", "write_comparison"]

Log = Callable[[str], None]

#: Columns of the table: (key of :meth:`RunSummary.row`, header, kind). Scores are better high, times low.
COLUMNS = (
    ("name", "Run", "text"),
    ("method", "Method", "text"),
    ("accuracy@0.5", "Accuracy 0.5", "score"),
    ("f1@0.5", "F1 0.5", "score"),
    ("panoptic_quality@0.5", "PQ 0.5", "score"),
    ("accuracy@0.75", "Accuracy 0.75", "score"),
    ("f1@0.75", "F1 0.75", "score"),
    ("panoptic_quality@0.75", "PQ 0.75", "score"),
    ("epochs", "Epochs", "count"),
    ("training_minutes", "Training (min)", "time"),
    ("network_s_per_mp", "Network (s/MP)", "time"),
    ("postprocess_s_per_mp", "Post-processing (s/MP)", "time"),
)
_FILES = ("compare.html", "compare.md", "compare.json", "matching_curves.png")
_OVERLAYS = "overlays.png"
_TEMPLATES = Path(__file__).parent / "templates"
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
TABLE_NOTE = (
    "Accuracy = TP / (TP + FP + FN) (StarDist's and the DSB2018 challenge's), F1 and PQ (panoptic quality) of the "
    "objects matched at IoU 0.5 and 0.75 on the test images, pooled over them. Training = minutes of training and "
    "validation summed over the epochs. s/MP = seconds per megapixel of the test images in the network (tiled) and "
    "in post-processing (polygon NMS or flow dynamics), measured when the run was evaluated, on its machine. "
    "The row 'classical baseline' (when the runs stored it) is Otsu's threshold split by a distance-transform "
    "watershed, no training, scored on the same test images."
)


# ------------------------------------------------------------------------------------------------ runs


# ------------------------------------------------------------------------------------------------ tables


def _format(value: Any, kind: str) -> str:
    if kind == "text":
        return str(value)
    v = scalar(value)
    if v is None:
        return "\u2013"
    if kind == "score":
        return f"{v:.3f}"
    if kind == "count":
        return f"{int(v):,}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _best(runs: Sequence[RunSummary]) -> dict[str, set[int]]:
    """Column key -> indices of the runs with the best value (highest score, lowest time); none for one run."""
    out: dict[str, set[int]] = {}
    for key, _, kind in COLUMNS:
        if kind not in ("score", "time"):
            continue
        # as shown: two values that print alike are alike
        values = [None if scalar(r.row()[key]) is None else float(_format(r.row()[key], kind).replace(",", ""))
                  for r in runs]
        known = [v for v in values if v is not None]
        if len(known) > 1 and len(set(known)) > 1:
            best = max(known) if kind == "score" else min(known)
            out[key] = {i for i, v in enumerate(values) if v == best}
    return out


def _cells(comparison: Comparison) -> list[list[tuple[str, bool]]]:
    """Formatted cells per run, each with whether it is the best of its column; then the classical baseline's row
    (never marked best) when the runs stored one."""
    best = _best(comparison.runs)
    rows = [[(_format(r.row()[key], kind), i in best.get(key, ())) for key, _, kind in COLUMNS]
            for i, r in enumerate(comparison.runs)]
    baseline = comparison.baseline_row()
    if baseline is not None:
        rows.append([(_format(baseline[key], kind), False) for key, _, kind in COLUMNS])
    return rows


def markdown_table(comparison: Comparison) -> str:
    """The table in Markdown (GitHub), the best value of each score and time column in bold."""
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|" + "|".join("---" if kind == "text" else "---:" for _, _, kind in COLUMNS) + "|"]
    for cells in _cells(comparison):
        lines.append("| " + " | ".join(f"**{c}**" if best else c for c, best in cells) + " |")
    return "\n".join(lines)


def text_table(comparison: Comparison) -> str:
    """The table as plain text for the terminal, numbers right-aligned."""
    rows = [[h for _, h, _ in COLUMNS], *([c for c, _ in cells] for cells in _cells(comparison))]
    widths = [max(len(row[j]) for row in rows) for j in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) if kind == "text" else c.rjust(w)
                  for c, w, (_, _, kind) in zip(row, widths, COLUMNS, strict=True)).rstrip()
        for row in rows)


# ------------------------------------------------------------------------------------------------ figures


def _curve(matching: Mapping[str, Any], metric: str) -> tuple[np.ndarray, np.ndarray]:
    points = []
    for key, row in matching.items():
        try:
            t = float(key)
        except (TypeError, ValueError):
            continue
        v = scalar(row.get(metric)) if isinstance(row, Mapping) else None
        points.append((t, np.nan if v is None else v))
    points.sort()
    return np.array([p[0] for p in points], dtype=np.float64), np.array([p[1] for p in points], dtype=np.float64)


def plot_comparison_curves(runs: Sequence[RunSummary], path: str | Path | None = None) -> Figure:
    """Matching accuracy (left) and F1 (right) on the test images against the IoU threshold, one line per run.

    Parameters
    ----------
    runs : sequence of RunSummary
    path : path-like, optional
        Also save the figure there as a PNG (atomically).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels, y in [0, 1], a dotted line at IoU 0.5, the runs' names and methods in the legend below.
    """
    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (metric, label) in zip(axes, (("accuracy", "Matching accuracy (AP, DSB2018)"), ("f1", "F1")),
                                   strict=True):
        for i, run in enumerate(runs):
            xs, ys = _curve(run.matching, metric)
            ax.plot(xs, ys, marker=_MARKERS[i % len(_MARKERS)], ms=4, lw=1.8, color=_COLORS[i % len(_COLORS)],
                    ls="-" if i < len(_COLORS) else "--",
                    label=mpl_text(f"{run.name} \u00b7 {run.method}", max_len=60) if metric == "accuracy" else None)
        ax.axvline(0.5, color="0.35", ls=":", lw=1.4)
        ax.set_ylim(-0.02, 1.02)  # a run at 0 or 1 stays visible off the axes
        ax.set_xlim(0.05, 0.95)
        ax.set_xlabel("IoU threshold (a predicted object matches a true one at or above it)", fontsize=9)
        ax.set_title(label, fontsize=11)
        ax.grid(True, color="0.9", lw=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[0].set_ylabel("Score on the test images")
    fig.legend(loc="outside lower center", ncols=min(len(runs), 3), fontsize=9, frameon=False)
    if path is not None:
        save_figure(fig, path)
    return fig


def _object_count(labels: np.ndarray) -> int:
    return int(np.count_nonzero(np.unique(labels)))


def plot_comparison_overlays(
    images: Sequence[ArrayLike], true_labels: Sequence[ArrayLike], pred_labels: Sequence[Sequence[ArrayLike]], *,
    run_names: Sequence[str], image_names: Sequence[str], accuracies: ArrayLike,
) -> Figure:
    """A grid of outline overlays: one row per image, one column per run.

    Parameters
    ----------
    images : sequence of array_like, each (H_i, W_i) or (H_i, W_i, C), any real dtype
    true_labels : sequence of array_like of int, each (H_i, W_i)
        0 = background.
    pred_labels : sequence (one per run) of sequences (one per image) of array_like of int, each (H_i, W_i)
    run_names, image_names : sequence of str
    accuracies : array_like of float, shape (n_runs, n_images)
        Each run's matching accuracy at IoU 0.5 on each image, shown in the panel titles.

    Returns
    -------
    matplotlib.figure.Figure
        Truth outlined green, prediction magenta, both amber (:func:`~convscope.report.instances.outline_overlay`),
        with the outline legend below.
    """
    acc = np.asarray(accuracies, dtype=np.float64)
    if acc.shape != (len(run_names), len(images)) or len(pred_labels) != len(run_names):
        raise ValueError(f"{len(run_names)} runs and {len(images)} images, but accuracies {acc.shape} and "
                         f"{len(pred_labels)} prediction lists")
    panels, titles = [], []
    for j, (image, truth) in enumerate(zip(images, true_labels, strict=True)):
        thickness = max(1, math.ceil(max(np.shape(truth)) / OVERLAY_MAX_SIDE))
        for i, run in enumerate(run_names):
            pred = np.asarray(pred_labels[i][j])
            panels.append(outline_overlay(image, truth, pred, thickness=thickness))
            score = "\u2013" if not np.isfinite(acc[i, j]) else f"{acc[i, j]:.3f}"
            titles.append(f"{run}: {short_name(image_names[j])}\naccuracy@0.5 {score}, "
                          f"{_object_count(np.asarray(truth))} true, {_object_count(pred)} predicted")
    return plot_overlays(panels, titles, ncols=len(run_names), legend=OUTLINE_LEGEND)


# ------------------------------------------------------------------------------------------------ overlays


def _overlay_figure(comparison: Comparison, shown: OverlayImages) -> dict[str, Any]:
    """The overlay grid of the chosen images and what ``compare.json`` says of them."""
    runs = comparison.runs
    figure = plot_comparison_overlays(shown.images, shown.truths, shown.predictions, run_names=[r.name for r in runs],
                                      image_names=shown.names, accuracies=shown.accuracies)
    images = [{"name": name, "accuracy@0.5": {r.name: float(shown.accuracies[i, j]) for i, r in enumerate(runs)}}
              for j, name in enumerate(shown.names)]
    return {"figure": figure, "images": images, "n_test_images": shown.n_test_images}


# ------------------------------------------------------------------------------------------------ files


def _markdown(comparison: Comparison, overlays: Mapping[str, Any] | None) -> str:
    data = comparison.data
    n = comparison.n_test_images
    where = f"{data['dataset']}" + (f", {n} test images" if n else "")
    lines = [f"## Instance runs compared: {', '.join(r.name for r in comparison.runs)} ({where})", "",
             markdown_table(comparison), "", TABLE_NOTE, "",
             "![Matching accuracy and F1 against the IoU threshold](matching_curves.png)", ""]
    if overlays is not None:
        k = len(overlays["images"])
        lines += [f"The {k} test image{'s' if k != 1 else ''} where the runs' accuracy at IoU 0.5 differs most "
                  "(one row per image, one column per run; truth green, prediction magenta, both amber):", "",
                  f"![Outline overlays]({_OVERLAYS})", ""]
    return "\n".join(lines)


def _html(comparison: Comparison, curves: Figure, overlays: Mapping[str, Any] | None) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("compare.html").render(
        title=f"{len(comparison.runs)} instance runs compared",
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        columns=[(h, kind) for _, h, kind in COLUMNS], rows=_cells(comparison), note=TABLE_NOTE,
        data=comparison.data, n_test_images=comparison.n_test_images,
        runs=[{"name": r.name, "path": str(r.path), "method": r.method, "model": r.config.model.name,
               "thresholds": ", ".join(f"{k} {v:g}" for k, v in r.thresholds.items()) or "\u2013"}
              for r in comparison.runs],
        curves=png_data_uri(figure_png(curves)),
        overlays=None if overlays is None else png_data_uri(figure_png(overlays["figure"])),
        n_overlays=0 if overlays is None else len(overlays["images"]),
    )


def write_comparison(
    paths: Sequence[str | Path], out: str | Path, *, data_dir: Path | None = None, n_images: int = 4,
    overwrite: bool = False, log: Log = print,
) -> Comparison:
    """Compare instance runs and write ``compare.html``, ``compare.md``, ``compare.json``,
    ``matching_curves.png`` and ``overlays.png`` into ``out`` (created; every file written atomically).

    Parameters
    ----------
    paths : sequence of path-like
        Two or more run directories of ``stardist`` or ``flows`` runs trained on the same data set and split.
    out : path-like
        The folder to write into.
    data_dir : Path, optional
        Where the data set is (as ``convscope train --data``); only the overlays need it.
    n_images : int
        Test images shown as overlays, those where the runs differ most; 0 = no overlays (no data, no models).
    overwrite : bool
        Replace the files of an earlier comparison in ``out``; without it they are never touched.
    log : callable
        Receives progress messages.

    Returns
    -------
    Comparison

    Raises
    ------
    ConvscopeError
        Bad runs (see :func:`compare_runs`), ``n_images < 0``, or an output file that exists without ``overwrite``.
    """
    out = Path(out)
    if n_images < 0:
        raise ConvscopeError(f"--images {n_images}: give the number of overlay images, 0 or more")
    if out.exists() and not out.is_dir():
        raise ConvscopeError(f"{out}: exists and is not a folder; give a folder for --out")
    comparison = compare_runs(paths)
    files = [*_FILES, _OVERLAYS] if n_images else list(_FILES)
    existing = next((out / f for f in files if (out / f).exists()), None)
    if existing is not None and not overwrite:
        raise ConvscopeError(f"{existing}: already exists; pass --overwrite to replace it or choose a new --out")
    overlays = None
    if n_images:
        overlays = _overlay_figure(comparison, overlay_images(comparison, n_images, data_dir, log))
        if comparison.n_test_images is None:
            comparison = Comparison(comparison.runs, comparison.data, overlays["n_test_images"])
    out.mkdir(parents=True, exist_ok=True)
    curves = plot_comparison_curves(comparison.runs, out / "matching_curves.png")
    if overlays is not None:
        save_figure(overlays["figure"], out / _OVERLAYS)
    write_json(out / "compare.json", {
        "data": comparison.data, "n_test_images": comparison.n_test_images,
        "columns": {key: header for key, header, _ in COLUMNS},
        "runs": [r.to_dict() for r in comparison.runs],
        "overlays": None if overlays is None else overlays["images"],
    })
    write_text(out / "compare.md", _markdown(comparison, overlays))
    write_text(out / "compare.html", _html(comparison, curves, overlays))
    return comparison

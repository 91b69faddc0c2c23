"""Learning curves: one panel per metric in the history, training against validation."""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from convscope.metrics.overfitting import OverfittingDiagnosis
from convscope.report._common import mpl_text, save_figure

__all__ = ["history_metrics", "learning_curves_figure", "metric_label", "plot_learning_curves"]

_SPLITS = ("train", "val")
_FIRST = ("loss", "accuracy")
_LABELS = {"loss": "Loss", "accuracy": "Accuracy", "iou": "IoU", "f1": "F1", "ap": "AP", "map": "mAP"}
_COLORS = {"train": "#1f77b4", "val": "#ff7f0e"}
_NAMES = {"train": "training", "val": "validation"}


def history_metrics(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """Metric names with a ``train_<name>`` or ``val_<name>`` column: loss first, accuracy next, then the rest
    in order of appearance."""
    found: list[str] = []
    for row in history:
        for key in row:
            split, _, name = key.partition("_")
            if split in _SPLITS and name and name not in found:
                found.append(name)
    return [m for m in _FIRST if m in found] + [m for m in found if m not in _FIRST]


def metric_label(name: str) -> str:
    """A readable label for a metric name: ``"loss"`` -> ``"Loss"``, ``"iou"`` -> ``"IoU"``."""
    return _LABELS.get(name, name.replace("_", " ").capitalize())


def _series(history: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if row.get(key) is None else float(row[key]) for row in history], dtype=float)


def _diag_field(diagnosis: OverfittingDiagnosis | Mapping[str, Any] | None, name: str) -> Any:
    if diagnosis is None:
        return None
    if isinstance(diagnosis, Mapping):
        return diagnosis.get(name)
    return getattr(diagnosis, name)


def _best_epoch(history: Sequence[Mapping[str, Any]], epochs: np.ndarray, diagnosis: Any) -> int | None:
    best = _diag_field(diagnosis, "best_epoch")
    if best is not None:
        return int(best)
    val = _series(history, "val_loss")
    if not np.isfinite(val).any():
        return None
    return int(epochs[int(np.argmin(np.where(np.isfinite(val), val, np.inf)))])


def _draw_panel(
    ax: Axes,
    history: Sequence[Mapping[str, Any]],
    epochs: np.ndarray,
    metric: str,
    best: int | None,
    onset: int | None,
) -> None:
    if onset is not None:
        ax.axvspan(
            onset - 0.5,
            epochs.max() + 0.5,
            color="#d62728",
            alpha=0.08,
            lw=0,
            label=f"overfitting from epoch {onset}",
        )
    marker = "o" if len(epochs) <= 30 else None
    for split in _SPLITS:
        values = _series(history, f"{split}_{metric}")
        if np.isfinite(values).any():
            ax.plot(epochs, values, color=_COLORS[split], marker=marker, ms=3.5, lw=1.8, label=_NAMES[split])
    if best is not None:
        ax.axvline(best, color="0.35", ls="--", lw=1.1, label=f"best epoch ({best})")
        val = _series(history, f"val_{metric}")
        hit = np.flatnonzero(epochs == best)
        if hit.size and np.isfinite(val[hit[0]]):
            ax.plot(
                [best],
                [val[hit[0]]],
                marker="*",
                ms=13,
                color=_COLORS["val"],
                mec="black",
                mew=0.7,
                ls="none",
                zorder=5,
            )
    ax.set_title(mpl_text(metric_label(metric)), fontsize=11)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(mpl_text(metric_label(metric)))
    if len(epochs) <= 12:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
    ax.set_xlim(epochs.min() - 0.5, epochs.max() + 0.5)
    ax.grid(True, color="0.9", lw=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=8, frameon=False)


def learning_curves_figure(
    history: Sequence[Mapping[str, Any]],
    *,
    diagnosis: OverfittingDiagnosis | Mapping[str, Any] | None = None,
) -> Figure:
    """Draw the learning curves of a training history.

    Parameters
    ----------
    history : sequence of mappings
        One mapping per epoch with ``epoch`` (1-based int) and ``train_<metric>`` / ``val_<metric>`` floats.
    diagnosis : OverfittingDiagnosis or its ``to_dict()``, optional
        Marks its best epoch and shades the epochs from the overfitting onset on; without it the best
        epoch is the one with the lowest ``val_loss``.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per metric (loss first, then accuracy, then any other), at most 3 per row.
    """
    if len(history) == 0:
        raise ValueError("the history is empty: nothing to plot")
    metrics = history_metrics(history)
    if not metrics:
        raise ValueError("the history has no train_<metric> or val_<metric> columns")
    epochs = np.array([int(row.get("epoch", i + 1)) for i, row in enumerate(history)])
    best = _best_epoch(history, epochs, diagnosis)
    onset = _diag_field(diagnosis, "onset_epoch") if _diag_field(diagnosis, "overfitting") else None
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.5 * nrows + 0.3), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        _draw_panel(ax, history, epochs, metric, best, onset)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    summary = _diag_field(diagnosis, "summary")
    if summary:
        fig.suptitle(mpl_text(textwrap.fill(str(summary), width=int(15 * 4.6 * ncols))), fontsize=10)
    return fig


def plot_learning_curves(
    history: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    diagnosis: OverfittingDiagnosis | Mapping[str, Any] | None = None,
) -> Figure:
    """Draw the learning curves (see :func:`learning_curves_figure`) and save them as a PNG at ``path``.

    The file is written atomically. Returns the figure, so the HTML report can embed it without
    re-reading the file.
    """
    fig = learning_curves_figure(history, diagnosis=diagnosis)
    save_figure(fig, path)
    return fig

"""Figures for the report: confusion matrix and a gallery of (misclassified) images."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter
from numpy.typing import ArrayLike

from convscope.report._common import mpl_text

__all__ = ["plot_confusion_matrix", "plot_examples", "scale_for_display"]


def _row_fractions(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (float64); rows without images stay 0."""
    totals = cm.sum(axis=1, keepdims=True).astype(np.float64)
    out = np.zeros(cm.shape, dtype=np.float64)
    np.divide(cm, totals, out=out, where=totals > 0)
    return out


def _cell_fontsize(k: int) -> float:
    return 11.0 if k <= 4 else 9.0 if k <= 7 else 7.5


def plot_confusion_matrix(
    matrix: ArrayLike, class_names: Sequence[str], *, title: str | None = None
) -> Figure:
    """Draw a confusion matrix: counts in the cells, colour = fraction of the true class (row-normalised).

    Parameters
    ----------
    matrix : array_like of int, shape (K, K)
        Rows = true class, columns = predicted class.
    class_names : sequence of str, length K
        Class names in class-index order (shown literally; long names are shortened).
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure
        Each cell shows the count and, below it, the percentage of its true class; the diagonal holds the
        correct predictions. Sized for 2 to about 10 classes.
    """
    cm = np.asarray(matrix)
    k = len(class_names)
    if cm.ndim != 2 or cm.shape != (k, k):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {k} class names")
    frac = _row_fractions(cm)
    side = min(max(3.2, 0.62 * k + 2.0), 10.0)
    fig = Figure(figsize=(side + 1.3, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    size = _cell_fontsize(k)
    rows_with_images = cm.sum(axis=1) > 0
    for i in range(k):
        for j in range(k):
            pct = f"{frac[i, j]:.0%}" if rows_with_images[i] else "\u2013"
            color = "white" if frac[i, j] > 0.55 else "black"
            ax.text(
                j,
                i,
                f"{int(cm[i, j])}\n{pct}",
                ha="center",
                va="center",
                color=color,
                fontsize=size,
                linespacing=1.1,
            )
    names = [mpl_text(n, max_len=20) for n in class_names]
    rotate = k > 3 or max((len(n) for n in names), default=0) > 8
    ax.set_xticks(
        range(k),
        names,
        rotation=40 if rotate else 0,
        ha="right" if rotate else "center",
        rotation_mode="anchor",
    )
    ax.set_yticks(range(k), names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    bar = fig.colorbar(image, ax=ax, shrink=0.8, format=PercentFormatter(xmax=1.0, decimals=0))
    bar.set_label("fraction of the true class")
    if title:
        ax.set_title(mpl_text(title), fontsize=11)
    return fig


def scale_for_display(image: ArrayLike) -> np.ndarray:
    """Min-max scale one image to float64 in [0, 1] for display.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C) with C in 1..4, any real or bool dtype
        C = 1 is shown grey, C = 2 as red/green, C = 3 as RGB, C = 4 as RGB (alpha dropped).

    Returns
    -------
    ndarray of float64, shape (H, W) or (H, W, 3)
        ``(image - min) / (max - min)`` over all pixels and channels (NaN ignored, then shown as 0);
        a constant image becomes all 0.
    """
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] in (2, 4):
        a = a[..., :3] if a.shape[-1] == 4 else np.concatenate([a, np.zeros_like(a[..., :1])], axis=-1)
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3)):
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C) with C <= 4, got {np.shape(image)}")
    a = a.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return np.zeros_like(a)
    lo, hi = a[finite].min(), a[finite].max()
    out = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.where(finite, out, 0.0)


def _wrap_title(title: str, width: int = 22) -> str:
    """Break ``"true a / pred b (0.91)"`` at the slash, then wrap each part to ``width`` characters."""
    return "\n".join(textwrap.fill(part, width=width) for part in title.split(" / "))


def plot_examples(images: Sequence[ArrayLike], titles: Sequence[str], *, ncols: int = 8) -> Figure:
    """A gallery of images with a title each, e.g. the misclassified ones.

    Parameters
    ----------
    images : sequence of array_like, each (H, W) or (H, W, C)
        Any dtype; each image is min-max scaled on its own (:func:`scale_for_display`), so the contrast of
        one image says nothing about another.
    titles : sequence of str
        One per image, e.g. ``"true abnormal / pred normal (0.91)"``; shown literally, wrapped.
    ncols : int, optional
        Images per row.

    Returns
    -------
    matplotlib.figure.Figure
        With no images, a small figure that says so.
    """
    if len(images) != len(titles):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    if len(images) == 0:
        fig = Figure(figsize=(4.0, 0.8))
        fig.text(0.5, 0.5, "No misclassified images", ha="center", va="center", fontsize=11, color="0.3")
        return fig
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    fig = Figure(figsize=(1.75 * ncols, 2.05 * nrows), layout="constrained")
    for i, (image, title) in enumerate(zip(images, titles, strict=True)):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(scale_for_display(image), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(mpl_text(_wrap_title(str(title)), max_len=90), fontsize=7.5)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig

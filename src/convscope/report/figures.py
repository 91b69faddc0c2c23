"""Figures for the report: confusion matrix, a gallery of (misclassified) images, and segmentation error
overlays (true positive, false positive, false negative pixels over the image)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter
from numpy.typing import ArrayLike

from convscope.report._common import mpl_text

__all__ = [
    "ERROR_COLORS",
    "ERROR_LABELS",
    "OVERLAY_MAX_SIDE",
    "overlay_errors",
    "pixel_errors",
    "plot_confusion_matrix",
    "plot_examples",
    "plot_overlays",
    "scale_for_display",
    "shrink_for_display",
]

#: RGB colours of the error overlay, indexed by the codes of :func:`pixel_errors` (1 = true positive,
#: 2 = false positive, 3 = false negative): blue, orange and magenta stay apart for red-green colour blindness.
ERROR_COLORS: dict[int, tuple[int, int, int]] = {1: (68, 119, 170), 2: (238, 153, 0), 3: (238, 0, 238)}
_ALPHA = 0.6  # opacity of the error colours over the grey image
#: Legend text of the error codes.
ERROR_LABELS: dict[int, str] = {
    1: "true positive: found",
    2: "false positive: predicted, not in the mask",
    3: "false negative: in the mask, missed",
}
#: Default longest side, in image pixels, of an overlay panel of :func:`plot_overlays`.
OVERLAY_MAX_SIDE = 360


def _row_fractions(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (float64); rows without images stay 0."""
    totals = cm.sum(axis=1, keepdims=True).astype(np.float64)
    out = np.zeros(cm.shape, dtype=np.float64)
    np.divide(cm, totals, out=out, where=totals > 0)
    return out


def _cell_inches(k: int) -> float:
    """Side of one matrix cell: large for few classes, never so small that its text becomes unreadable."""
    return float(np.clip(4.6 / k, 0.3, 1.0)) if k <= 12 else max(0.22, 5.5 / k)


def _short_name(name: object, max_len: int = 20) -> str:
    """A class name cut in the middle when too long, so names that differ only at the end stay apart."""
    s = str(name)
    if len(s) <= max_len:
        return s
    tail = (max_len - 1) // 2
    return s[: max_len - 1 - tail] + "\u2026" + s[-tail:]


def _percent(fraction: float, count: int) -> str:
    """``"12%"``; a non-zero count that rounds to 0% shows as ``"<1%"``, one short of all as ``">99%"``."""
    if count > 0 and fraction < 0.005:
        return "<1%"
    if fraction < 1.0 and fraction >= 0.995:
        return ">99%"
    return f"{fraction:.0%}"


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
        Each cell shows the count and, below it, the percentage of its true class (``<1%`` for a few
        images); empty cells show a grey 0. The diagonal holds the correct predictions. Cells and text are
        sized so that the figure stays readable at its natural size (120 dpi) for 2 to about 12 classes;
        with more than 12 classes only the counts are written, with more than 25 none.
    """
    cm = np.asarray(matrix)
    k = len(class_names)
    if cm.ndim != 2 or cm.shape != (k, k):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {k} class names")
    frac = _row_fractions(cm)
    names = [mpl_text(_short_name(n)) for n in class_names]
    cell = _cell_inches(k)
    cell_font = float(np.clip(cell * 21.0, 6.0, 11.0))
    label_font = 10.0 if k <= 12 else 8.0
    longest = max((len(n) for n in names), default=1)
    # rotate the column names when the longest does not fit in its cell (about 0.6 em per character)
    rotate = longest * 0.6 * label_font / 72 > 0.9 * cell
    name_inches = longest * 0.6 * label_font / 72
    left = name_inches + 0.45
    bottom = (name_inches * 0.7 if rotate else label_font / 72) + 0.45
    matrix_side = cell * k
    fig = Figure(
        figsize=(left + matrix_side + 1.15, bottom + matrix_side + (0.45 if title else 0.15)),
        layout="constrained",
    )
    ax = fig.add_subplot()
    image = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    rows_with_images = cm.sum(axis=1) > 0
    if k <= 25:
        for i in range(k):
            for j in range(k):
                count = int(cm[i, j])
                if count == 0:
                    ax.text(j, i, "0", ha="center", va="center", color="0.6", fontsize=cell_font)
                    continue
                text = str(count)
                if k <= 12 and rows_with_images[i]:
                    text += "\n" + _percent(frac[i, j], count)
                color = "white" if frac[i, j] > 0.55 else "black"
                ax.text(j, i, text, ha="center", va="center", color=color, fontsize=cell_font, linespacing=1.1)
    ax.set_xticks(
        range(k),
        names,
        rotation=40 if rotate else 0,
        ha="right" if rotate else "center",
        rotation_mode="anchor",
        fontsize=label_font,
    )
    ax.set_yticks(range(k), names, fontsize=label_font)
    ax.set_xlabel("Predicted class", fontsize=10.5)
    ax.set_ylabel("True class", fontsize=10.5)
    ax.tick_params(length=0)
    # thin white lines between the cells keep neighbouring pale cells apart
    ax.set_xticks(np.arange(-0.5, k, 1.0), minor=True)
    ax.set_yticks(np.arange(-0.5, k, 1.0), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.0)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    # the colour bar hangs on the matrix itself, so it stays beside it whatever the figure's shape
    cax = ax.inset_axes((1.0 + 0.18 / matrix_side, 0.1, 0.14 / matrix_side, 0.8))
    bar = fig.colorbar(image, cax=cax, format=PercentFormatter(xmax=1.0, decimals=0))
    bar.set_label("fraction of the true class", fontsize=9)
    bar.ax.tick_params(labelsize=8.5)
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


def pixel_errors(true_mask: ArrayLike, pred_mask: ArrayLike) -> np.ndarray:
    """Each pixel's kind of agreement between a true and a predicted class map.

    Parameters
    ----------
    true_mask, pred_mask : array_like of int or bool, shape (H, W)
        Class maps, 0 = background.

    Returns
    -------
    ndarray of uint8, shape (H, W)
        0 = true negative (background in both), 1 = true positive (the same foreground class in both),
        2 = false positive (foreground predicted, but background or another class is true), 3 = false
        negative (foreground in the truth, predicted as background).
    """
    t, p = np.asarray(true_mask), np.asarray(pred_mask)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"true and predicted masks must be 2D of the same shape, got {t.shape} and {p.shape}")
    codes = np.zeros(t.shape, dtype=np.uint8)
    codes[(t != 0) & (p == t)] = 1
    codes[(p != 0) & (p != t)] = 2
    codes[(t != 0) & (p == 0)] = 3
    return codes


def _gray(image: ArrayLike) -> np.ndarray:
    """Min-max scaled grey image (H, W) float64 in [0, 1]; colour channels are averaged after scaling."""
    scaled = scale_for_display(image)
    return scaled.mean(axis=-1) if scaled.ndim == 3 else scaled


def overlay_errors(
    image: ArrayLike, true_mask: ArrayLike, pred_mask: ArrayLike, *, alpha: float = _ALPHA
) -> np.ndarray:
    """The image in grey with true positive, false positive and false negative pixels coloured.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C), any real dtype
        Min-max scaled to grey (:func:`scale_for_display`; channels averaged).
    true_mask, pred_mask : array_like of int or bool, shape (H, W)
        Class maps, 0 = background; see :func:`pixel_errors`.
    alpha : float, optional
        Opacity of the colours, in [0, 1]: a coloured pixel is ``(1 - alpha) * grey + alpha * colour``;
        true negatives stay grey.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        RGB; the colours are :data:`ERROR_COLORS`.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    gray = _gray(image)
    codes = pixel_errors(true_mask, pred_mask)
    if gray.shape != codes.shape:
        raise ValueError(f"image {gray.shape} and masks {codes.shape} differ in size")
    base = np.repeat(gray[..., None] * 255.0, 3, axis=-1)
    palette = np.array([(0, 0, 0), *(ERROR_COLORS[k] for k in (1, 2, 3))], dtype=np.float64)
    colored = (1.0 - alpha) * base + alpha * palette[codes]
    out = np.where(codes[..., None] > 0, colored, base)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def shrink_for_display(image: ArrayLike, max_side: int) -> np.ndarray:
    """Shrink an image by an integer factor so that its longer side is at most ``max_side`` pixels.

    Pixels are averaged in blocks (edges padded by repetition), so thin structures such as one-pixel errors
    stay visible, dimmed, instead of vanishing as they would by taking every n-th pixel.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
    max_side : int
        At least 1.

    Returns
    -------
    ndarray, shape (ceil(H / f), ceil(W / f)[, C]), the input's dtype
        With ``f = ceil(max(H, W) / max_side)``; the input itself when ``f == 1``.
    """
    a = np.asarray(image)
    if max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side}")
    f = math.ceil(max(a.shape[:2]) / max_side)
    if f <= 1:
        return a
    h, w = math.ceil(a.shape[0] / f), math.ceil(a.shape[1] / f)
    pad = [(0, h * f - a.shape[0]), (0, w * f - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
    blocks = np.pad(a, pad, mode="edge").reshape(h, f, w, f, *a.shape[2:]).mean(axis=(1, 3))
    return np.rint(blocks).astype(a.dtype) if a.dtype.kind in "iub" else blocks.astype(a.dtype)


def plot_overlays(
    overlays: Sequence[ArrayLike],
    titles: Sequence[str],
    *,
    ncols: int = 3,
    max_side: int = OVERLAY_MAX_SIDE,
    legend: Sequence[tuple[str, tuple[int, int, int]]] | None = None,
) -> Figure:
    """A row (or grid) of error overlays (or other RGB overlays) with a title each and a colour legend below.

    Parameters
    ----------
    overlays : sequence of array_like of uint8, each (H, W, 3)
        RGB images from :func:`overlay_errors`; shrunk to at most ``max_side`` pixels
        (:func:`shrink_for_display`).
    titles : sequence of str
        One per overlay, e.g. ``"cell_01.tif\nDice 0.912 · IoU 0.838"``; shown literally.
    ncols : int, optional
        Panels per row.
    max_side : int, optional
        Longest side of a panel in image pixels.
    legend : sequence of (str, (int, int, int)), optional
        The legend entries, ``(label, RGB colour 0..255)``, drawn as opaque swatches; default: the error
        colours (:data:`ERROR_COLORS`, :data:`ERROR_LABELS`) as they look over a mid-grey pixel.

    Returns
    -------
    matplotlib.figure.Figure
        Panels about 3 inches wide (360 pixels at 120 dpi); with no overlays, a small figure that says so.
    """
    if len(overlays) != len(titles):
        raise ValueError(f"{len(overlays)} overlays but {len(titles)} titles")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    if len(overlays) == 0:
        fig = Figure(figsize=(4.0, 0.8))
        fig.text(0.5, 0.5, "No images to show", ha="center", va="center", fontsize=11, color="0.3")
        return fig
    ncols = min(ncols, len(overlays))
    nrows = math.ceil(len(overlays) / ncols)
    fig = Figure(figsize=(3.1 * ncols, 3.35 * nrows + 0.45), layout="constrained")
    for i, (overlay, title) in enumerate(zip(overlays, titles, strict=True)):
        shown = shrink_for_display(overlay, max_side)
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(shown, interpolation="nearest")  # already shrunk: enlarged pixels stay sharp
        ax.set_title(mpl_text(title, max_len=120), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if legend is None:
        # legend swatches as the error colours look over a mid-grey pixel
        swatch = {k: (0.5 * (1 - _ALPHA) + _ALPHA * np.array(ERROR_COLORS[k]) / 255) for k in (1, 2, 3)}
        handles = [Patch(facecolor=swatch[k], label=ERROR_LABELS[k]) for k in (1, 2, 3)]
    else:
        handles = [Patch(facecolor=np.array(rgb) / 255, edgecolor="0.45", label=mpl_text(label))
                   for label, rgb in legend]
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles) if ncols > 1 else 1, fontsize=9,
               frameon=False)
    return fig

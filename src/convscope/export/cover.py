"""The cover image of a bioimage.io package: the sample image beside what convscope makes of it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from convscope.report._common import mpl_text
from convscope.report.instances import outline_overlay, percentile_normalize


def draw_cover(image: np.ndarray, result: np.ndarray, *, title: str, class_names: Sequence[str]) -> Figure:
    """A 2:1 figure: ``image`` and convscope's result on it.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        The sample image, not normalised (shown percentile-normalised; grey unless C == 3).
    result : ndarray
        The decoded result: class probabilities (K,) float32 (drawn as bars), or a class map / label image (H, W)
        of integers (drawn as outlines over the image).
    title : str
        The model's name.
    class_names : sequence of str
        Names of the classes (bars of a classifier).
    """
    figure = Figure(figsize=(6, 3), dpi=100, layout="constrained")
    left, right = figure.subplots(1, 2)
    shown = image[..., 0] if image.ndim == 3 and image.shape[2] not in (3,) else image
    left.imshow(percentile_normalize(shown), cmap="gray")
    left.set_title("input", fontsize=9)
    if result.ndim == 1:
        right.barh(range(len(result)), result, color="#4c72b0")
        right.set_yticks(range(len(result)), [mpl_text(n, max_len=16) for n in class_names], fontsize=8)
        right.set_xlim(0, 1)
        right.set_title("class probabilities", fontsize=9)
    else:
        labels = result.astype(np.int64)
        right.imshow(outline_overlay(image, np.zeros_like(labels), labels))
        right.set_title(f"convscope: {len(np.unique(labels[labels > 0]))} objects" if labels.max() > 1
                        else "convscope: foreground outlined", fontsize=9)
    for axis in (left, right) if result.ndim != 1 else (left,):
        axis.set_axis_off()
    figure.suptitle(mpl_text(title, max_len=60), fontsize=10)
    return figure

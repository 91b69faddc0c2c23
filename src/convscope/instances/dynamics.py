"""From a predicted flow field to a label image (Cellpose's ``dynamics.compute_masks``).

1. :func:`follow_flows`: every pixel above the probability threshold moves along the bilinearly interpolated flow
   by Euler steps (all pixels at once; torch's ``grid_sample`` does the interpolation).
2. :func:`group_endpoints` (Cellpose): a histogram of the rounded end points; its local maxima (5 x 5) with more
   than ``min_count`` points seed objects, which grow 5 times into neighbouring bins holding more than 2 points;
   every pixel takes the object of the bin it ended in. Objects larger than 40 % of the image are dropped.
3. :func:`remove_bad_flow_masks`: flows recomputed from each object are compared with the predicted ones (mean
   squared error over the object's pixels); objects above ``flow_thresh`` are dropped.
4. Holes are filled and objects smaller than ``min_size`` pixels dropped; labels are made sequential.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from convscope.instances.flows import cellpose_flows

__all__ = ["compute_masks", "fill_holes_and_remove_small", "flow_errors", "follow_flows", "group_endpoints",
           "remove_bad_flow_masks"]


def follow_flows(flows: np.ndarray, mask: np.ndarray, *, n_iter: int = 200, step: float = 1.0) -> np.ndarray:
    """End points (N, 2) float32 (row, col) of the pixels of ``mask`` after ``n_iter`` Euler steps.

    Parameters
    ----------
    flows : ndarray, shape (2, H, W)
        (dy, dx) per pixel, of length about 1 inside objects.
    mask : ndarray of bool, shape (H, W)
        The pixels to move (``np.nonzero`` order); positions stay inside the image.
    n_iter : int
        Euler steps.
    step : float
        Multiplier of the flow per step, in pixels.
    """
    import torch
    import torch.nn.functional as F

    h, w = mask.shape
    rows, cols = np.nonzero(mask)
    p = torch.from_numpy(np.stack([rows, cols], axis=1).astype(np.float32))
    if not len(p) or n_iter <= 0:
        return p.numpy()
    field = torch.from_numpy(np.ascontiguousarray(flows, dtype=np.float32))[None]
    half = torch.tensor([max(h - 1, 1) / 2, max(w - 1, 1) / 2])
    upper = torch.tensor([h - 1, w - 1], dtype=torch.float32)
    with torch.no_grad():
        for _ in range(n_iter):
            grid = (p / half - 1).flip(-1)[None, None]  # (1, 1, N, 2) as (x, y) in [-1, 1]
            d = F.grid_sample(field, grid, mode="bilinear", align_corners=True)[0, :, 0].T
            p = torch.minimum(torch.clamp(p + step * d, min=0), upper)
    return p.numpy()


def _histogram(ends: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Counts (H, W) int64 of the rounded end points and the flat bin of every end point."""
    h, w = shape
    r = np.clip(np.rint(ends[:, 0]).astype(np.int64), 0, h - 1)
    c = np.clip(np.rint(ends[:, 1]).astype(np.int64), 0, w - 1)
    bins = r * w + c
    return np.bincount(bins, minlength=h * w).reshape(h, w), bins


def group_endpoints(ends: np.ndarray, shape: tuple[int, int], *, min_count: int = 10) -> np.ndarray:
    """Object id (N,) int64 of every end point (N, 2) in an image of ``shape`` (0 = none), as Cellpose's
    ``get_masks`` (see the module docstring)."""
    counts, bins = _histogram(ends, shape)
    peaks = (counts >= ndimage.maximum_filter(counts, size=5)) & (counts > min_count)
    seeds, _ = ndimage.label(peaks, structure=np.ones((3, 3)))  # a flat peak of several bins is one seed
    allowed = counts > 2
    for _ in range(5):
        grown = ndimage.grey_dilation(seeds, size=(3, 3))
        seeds = np.where((seeds == 0) & allowed, grown, seeds)
    ids = seeds.ravel()[bins].astype(np.int64)
    sizes = np.bincount(ids, minlength=int(ids.max(initial=0)) + 1)
    too_big = sizes > 0.4 * shape[0] * shape[1]
    too_big[0] = False
    ids[too_big[ids]] = 0
    return ids


def flow_errors(labels: np.ndarray, flows: np.ndarray, recompute: Callable[[np.ndarray], np.ndarray]
                ) -> np.ndarray:
    """Mean squared error (n,) float64 between ``flows`` (2, H, W) and the flows ``recompute``d from every object
    of the sequential label image ``labels`` (1..n), over the object's pixels (Cellpose's ``flow_error``)."""
    n = int(labels.max(initial=0))
    if n == 0:
        return np.zeros(0)
    ideal = recompute(labels)
    sq = ((ideal - flows) ** 2).sum(0)
    ids = labels.ravel()
    return np.bincount(ids, sq.ravel(), minlength=n + 1)[1:] / np.maximum(np.bincount(ids, minlength=n + 1)[1:], 1)


def remove_bad_flow_masks(labels: np.ndarray, flows: np.ndarray, *, threshold: float,
                          recompute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``labels`` (sequential) without the objects whose flow error exceeds ``threshold``."""
    bad = np.flatnonzero(flow_errors(labels, flows, recompute) > threshold) + 1
    out = labels.copy()
    out[np.isin(labels, bad)] = 0
    return out


def fill_holes_and_remove_small(labels: np.ndarray, *, min_size: int = 15) -> np.ndarray:
    """Fill each object's holes, drop objects smaller than ``min_size`` pixels; sequential uint32 labels."""
    out = labels.copy()
    for value, box in enumerate(ndimage.find_objects(labels), 1):
        if box is None:
            continue
        filled = ndimage.binary_fill_holes(labels[box] == value)
        if filled.sum() < min_size:
            out[box][out[box] == value] = 0
        else:
            out[box][filled & (out[box] == 0)] = value
    _, inverse = np.unique(out, return_inverse=True)
    return inverse.reshape(out.shape).astype(np.uint32)


def compute_masks(flows: np.ndarray, prob: np.ndarray, *, prob_thresh: float = 0.5, flow_thresh: float = 0.4,
                  n_iter: int = 200, min_size: int = 15) -> np.ndarray:
    """Label image (H, W) uint32 from predicted unit flows (2, H, W) and cell probability (H, W) in [0, 1].

    ``flow_thresh <= 0`` skips the flow-error check (against Cellpose flows recomputed from the objects).
    """
    h, w = prob.shape
    mask = prob > prob_thresh
    if not mask.any():
        return np.zeros((h, w), np.uint32)
    ends = follow_flows(flows * mask, mask, n_iter=n_iter)
    ids = group_endpoints(ends, (h, w))
    labels = np.zeros((h, w), np.int64)
    labels[mask] = ids
    _, inverse = np.unique(labels, return_inverse=True)
    labels = inverse.reshape(h, w)
    if flow_thresh > 0 and labels.any():
        labels = remove_bad_flow_masks(labels, flows, threshold=flow_thresh, recompute=cellpose_flows)
    return fill_holes_and_remove_small(labels, min_size=min_size)

"""From a predicted flow field to a label image (Cellpose's and Omnipose's ``compute_masks``).

1. :func:`follow_flows`: every pixel above the probability threshold moves along the bilinearly interpolated flow
   by Euler steps (all pixels at once; torch's ``grid_sample`` does the interpolation). Points that have settled
   (moved less than a pixel over the last 10 steps: they oscillate in a sink) stop, so the work shrinks as points
   arrive. Cellpose: 200 steps. Omnipose: ``ceil(1.16 * max distance) + 1`` steps (:func:`omnipose_n_iter`), and
   a point stops for good where the flow is shorter than :data:`OMNIPOSE_STOP`, that is on the medial axis, where
   the distance field's gradient vanishes, so points do not drift along the axis to its discrete local maxima.
2. Grouping of the end points, by variant:

   - Cellpose, :func:`group_endpoints`: a histogram of the rounded end points; its local maxima (5 x 5) with more
     than ``min_count`` points seed objects, which grow 5 times into neighbouring bins holding more than 2 points.
   - Omnipose, :func:`cluster_endpoints`: the end points lie along each object's medial axis, not at one point;
     bins holding at least 2 points that are at most 3 bins apart form one seed (DBSCAN-like), and seeds grow
     twice into neighbouring bins holding any point. The medial axes of two touching cells are about a cell width
     apart and stay separate.

   Every pixel takes the object of the bin it ended in. Objects larger than 40 % of the image are dropped.
3. :func:`remove_bad_flow_masks`: flows recomputed from each object (Cellpose or Omnipose flows) are compared with
   the predicted ones (mean squared error over the object's pixels); objects above ``flow_thresh`` are dropped.
4. :func:`fill_holes_and_remove_small`: objects smaller than ``min_size`` pixels are dropped, holes filled, labels
   made sequential.

Relabelling uses lookup tables (no sort over the image), so the whole chain stays linear in the number of pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import ndimage

from convscope.instances.flows import cellpose_flows, omnipose_flows

if TYPE_CHECKING:
    import torch

__all__ = ["cluster_endpoints", "compute_masks", "compute_masks_sweep", "fill_holes_and_remove_small", "flow_errors",
           "follow_flows", "group_endpoints", "group_pixels", "omnipose_n_iter", "relabel_sequential",
           "remove_bad_flow_masks"]

Variant = Literal["cellpose", "omnipose"]

#: Omnipose: points stop where the (unnormalised) flow is shorter than this, on the medial axis.
OMNIPOSE_STOP = 0.4


def follow_flows(flows: np.ndarray, mask: np.ndarray, *, n_iter: int = 200, step: float = 1.0,
                 settle: float = 1.0, check_every: int = 10, stop_below: float = 0.0) -> np.ndarray:
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
    settle : float
        Every ``check_every`` steps, points that oscillate in a sink stop where they are: those that moved less
        than ``settle`` pixels since the last check although their steps added up to more than twice that
        distance. 0: every point moves for all ``n_iter`` steps.
    check_every : int
        Steps between checks, at least 1.
    stop_below : float
        A point stops for good where the interpolated flow is shorter than this (Omnipose's flows vanish on the
        medial axis: points stay where they reach it instead of drifting along it); 0: never.

    Notes
    -----
    The steps run on one torch thread (the setting is restored after): they are many small operations, which a
    second thread hardly speeds up and slows down several times when the CPU is busy with other work.
    """
    import torch

    rows, cols = np.nonzero(mask)
    points = torch.from_numpy(np.stack([cols, rows]).astype(np.float32))  # (2, N): x, y as grid_sample wants
    if not points.shape[1] or n_iter <= 0:
        return points.numpy().T[:, ::-1].copy()
    field = torch.from_numpy(np.ascontiguousarray(flows[::-1], dtype=np.float32) * np.float32(step))[None]
    active = torch.arange(points.shape[1])
    done = 0
    with torch.no_grad(), _one_torch_thread():
        while done < n_iter and len(active):
            chunk = min(max(check_every, 1), n_iter - done)
            start = points[:, active]
            moved, path, moving = _euler(field, start.clone(), chunk, stop_below * step)
            points[:, active] = moved
            done += chunk
            if settle > 0:
                shift = torch.hypot(*(moved - start))
                moving &= (shift >= settle) | (2 * shift >= path)
            active = active[moving]
    return points.numpy().T[:, ::-1].copy()


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (restored after). Euler steps are many small operations: a second
    thread gains little on them, and loses badly (barriers with a descheduled thread) when the CPU is shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _euler(field: torch.Tensor, points: torch.Tensor, n_iter: int, stop_below: float
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n_iter`` Euler steps of ``points`` (2, N) float32 (x, y) in pixels along ``field`` (1, 2, H, W) float32
    (dx, dy) per step, bilinearly interpolated, positions clipped to the image, in place; points stop where the
    step is shorter than ``stop_below``.

    Returns the points, the length (N,) of their paths and which of them (N,) bool still move.
    """
    import torch
    import torch.nn.functional as F

    h, w = field.shape[-2:]
    to_grid = (2 / max(w - 1, 1), 2 / max(h - 1, 1))  # pixels -> grid_sample's [-1, 1], per axis
    grid = torch.empty_like(points)
    path = torch.zeros(points.shape[1])
    moving = torch.ones(points.shape[1], dtype=torch.bool)
    for _ in range(n_iter):
        for axis in (0, 1):  # row by row: torch is slow on (2, N) with broadcasting or reductions over axis 0
            torch.mul(points[axis], to_grid[axis], out=grid[axis])
            grid[axis] -= 1
        d = F.grid_sample(field, grid.T[None, None], mode="bilinear", align_corners=True)[0, :, 0]
        length = torch.hypot(d[0], d[1])
        if stop_below > 0:
            moving &= length >= stop_below
            d *= moving
            length *= moving
        points += d
        path += length
        points[0].clamp_(0, w - 1)
        points[1].clamp_(0, h - 1)
    return points, path, moving


def _histogram(ends: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Counts (H, W) int64 of the rounded end points (N, 2) and the flat bin (N,) int64 of every end point."""
    h, w = shape
    r = np.clip(np.rint(ends[:, 0]).astype(np.int64), 0, h - 1)
    c = np.clip(np.rint(ends[:, 1]).astype(np.int64), 0, w - 1)
    bins = r * w + c
    return np.bincount(bins, minlength=h * w).reshape(h, w), bins


def _neighbourhood(flat: np.ndarray, shape: tuple[int, int], radius: int) -> np.ndarray:
    """Flat indices (K, (2 radius + 1)**2) of the square neighbourhoods of the flat indices ``flat`` (K,) in an
    image of ``shape``, coordinates clipped to the image (for maxima: the same as a window cut at the border)."""
    h, w = shape
    r, c = np.divmod(flat, w)
    offsets = np.arange(-radius, radius + 1)
    rr = np.clip(r[:, None, None] + offsets[None, :, None], 0, h - 1)
    cc = np.clip(c[:, None, None] + offsets[None, None, :], 0, w - 1)
    return (rr * w + cc).reshape(len(flat), (2 * radius + 1) ** 2)


def _grow(seeds: np.ndarray, allowed: np.ndarray, times: int) -> np.ndarray:
    """``seeds`` (H, W) int grown ``times`` times by one pixel (3 x 3, the larger id wins) into the ``allowed``
    (H, W) bool bins, as ``grey_dilation`` would, but visiting only the allowed bins."""
    flat = seeds.ravel().copy()
    todo = np.flatnonzero(allowed.ravel() & (flat == 0))
    around = _neighbourhood(todo, seeds.shape, 1)
    for _ in range(times):
        if not len(todo):
            break
        grown = flat[around].max(axis=1)
        new = grown > 0
        flat[todo[new]] = grown[new]
        todo, around = todo[~new], around[~new]
    return flat.reshape(seeds.shape)


def _drop_huge(ids: np.ndarray, shape: tuple[int, int], fraction: float = 0.4) -> np.ndarray:
    """Object ids (N,) int64 with objects of more than ``fraction`` of the image's pixels set to 0 (in place)."""
    sizes = np.bincount(ids, minlength=int(ids.max(initial=0)) + 1)
    too_big = sizes > fraction * shape[0] * shape[1]
    too_big[0] = False
    ids[too_big[ids]] = 0
    return ids


def group_endpoints(ends: np.ndarray, shape: tuple[int, int], *, min_count: int = 10) -> np.ndarray:
    """Object id (N,) int64 of every end point (N, 2) in an image of ``shape`` (0 = none), as Cellpose's
    ``get_masks`` (see the module docstring)."""
    counts, bins = _histogram(ends, shape)
    candidates = np.flatnonzero(counts.ravel() > min_count)
    local_max = counts.ravel()[_neighbourhood(candidates, shape, 2)].max(axis=1, initial=0)  # 5 x 5
    peaks = np.zeros(shape, bool)
    peaks.ravel()[candidates[counts.ravel()[candidates] >= local_max]] = True
    seeds, _ = ndimage.label(peaks, structure=np.ones((3, 3)))  # a flat peak of several bins is one seed
    seeds = _grow(seeds, counts > 2, 5)
    return _drop_huge(seeds.ravel()[bins].astype(np.int64), shape)


def cluster_endpoints(ends: np.ndarray, shape: tuple[int, int], *, min_count: int = 2, link: int = 1,
                      grow: int = 2) -> np.ndarray:
    """Object id (N,) int64 of every end point (N, 2) in an image of ``shape`` (0 = none), for end points spread
    along medial axes (Omnipose), like DBSCAN on the bins of the rounded end points.

    Bins holding at least ``min_count`` points are core bins; core bins less than ``2 * link + 2`` bins apart
    (chessboard distance) join one seed (the discrete medial axis is dotted, so its bins are not all adjacent);
    seeds then grow ``grow`` times into neighbouring bins holding any point.
    """
    counts, bins = _histogram(ends, shape)
    core = counts >= min_count
    joined = ndimage.binary_dilation(core, np.ones((3, 3), bool), iterations=link) if link > 0 else core
    seeds, _ = ndimage.label(joined, structure=np.ones((3, 3)))
    seeds = _grow(np.where(core, seeds, 0), counts > 0, grow)
    return _drop_huge(seeds.ravel()[bins].astype(np.int64), shape)


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """``labels`` (H, W) of non-negative ints renumbered 1..n in order of their ids (uint32), by a lookup table."""
    present = np.bincount(labels.ravel(), minlength=1) > 0
    present[0] = False
    lut = (np.cumsum(present) * present).astype(np.uint32)
    return lut[labels]


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
    """``labels`` (H, W, sequential ints) without the objects whose flow error exceeds ``threshold``."""
    keep = np.concatenate([[False], flow_errors(labels, flows, recompute) <= threshold])
    return np.where(keep[labels], labels, 0)


def fill_holes_and_remove_small(labels: np.ndarray, *, min_size: int = 15) -> np.ndarray:
    """Drop objects smaller than ``min_size`` pixels, then fill the remaining objects' holes (background pixels
    enclosed by the object in its bounding box; other objects stay), as Cellpose's ``fill_holes_and_remove_small``.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Label image, 0 background.
    min_size : int
        Smallest object kept, in pixels (before filling).

    Returns
    -------
    ndarray of uint32, shape (H, W)
        Sequential labels 1..n.
    """
    labels = np.asarray(labels)
    sizes = np.bincount(labels.ravel(), minlength=1)
    small = sizes < min_size
    small[0] = False
    out = np.where(small[labels], 0, labels) if small.any() else labels.copy()
    candidates = _enclosing_objects(out)
    boxes = ndimage.find_objects(out) if len(candidates) else []
    for value in candidates:  # filling stays inside the object's box, so the boxes stay valid
        box = boxes[value - 1]
        filled = ndimage.binary_fill_holes(out[box] == value)
        out[box][filled & (out[box] == 0)] = value
    return relabel_sequential(out)


def _enclosing_objects(labels: np.ndarray) -> np.ndarray:
    """Ids (K,) of the objects next to (4-connected) background components that do not reach the image border:
    the only objects whose hole filling can change anything."""
    background, n = ndimage.label(labels == 0)
    if n == 0:
        return np.zeros(0, np.int64)
    enclosed = np.ones(n + 1, bool)
    enclosed[0] = False
    enclosed[np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]])] = False
    if not enclosed.any():
        return np.zeros(0, np.int64)
    holes = enclosed[background]
    rim = ndimage.binary_dilation(holes) & ~holes
    values = np.unique(labels[rim])
    return values[values > 0]


def omnipose_n_iter(dist: np.ndarray) -> int:
    """Euler steps for Omnipose flows: ``ceil(1.16 * max distance) + 1`` (the distance field's maximum)."""
    return math.ceil(1.16 * float(np.max(dist, initial=0.0))) + 1


def compute_masks(flows: np.ndarray, prob: np.ndarray, *, prob_thresh: float = 0.5, flow_thresh: float = 0.4,
                  n_iter: int | None = None, min_size: int = 15, variant: Variant = "cellpose",
                  dist: np.ndarray | None = None) -> np.ndarray:
    """Label image (H, W) uint32 from predicted flows (2, H, W) and cell probability (H, W) in [0, 1].

    Parameters
    ----------
    flows : ndarray of float, shape (2, H, W)
        (dy, dx) in pixels per step: unit vectors (Cellpose) or the distance field's gradient clipped to length 1
        (Omnipose); a network's scaled output already divided by its scale.
    prob : ndarray of float, shape (H, W)
        Cell probability; pixels above ``prob_thresh`` follow the flows.
    prob_thresh : float
        Probability threshold.
    flow_thresh : float
        Objects whose flows, recomputed from their mask, differ from ``flows`` by a mean squared error above this
        are dropped; ``<= 0`` skips the check.
    n_iter : int or None
        Euler steps; None: 200 (Cellpose) or :func:`omnipose_n_iter` of ``dist`` (Omnipose).
    min_size : int
        Smallest object kept, in pixels.
    variant : {"cellpose", "omnipose"}
        Grouping of the end points (:func:`group_endpoints` or :func:`cluster_endpoints`) and the flows of the
        flow-error check (:func:`~convscope.instances.flows.cellpose_flows` or
        :func:`~convscope.instances.flows.omnipose_flows`).
    dist : ndarray of float, shape (H, W), optional
        Omnipose: the predicted distance field, which sets ``n_iter``; None: the distance transform of the mask
        (touching cells then count as one, so more steps than needed).
    """
    labels = group_pixels(flows, prob, prob_thresh=prob_thresh, n_iter=n_iter, variant=variant, dist=dist)
    if flow_thresh > 0 and labels.any():
        labels = remove_bad_flow_masks(labels, flows, threshold=flow_thresh, recompute=_recompute(variant))
    return fill_holes_and_remove_small(labels, min_size=min_size)


def group_pixels(flows: np.ndarray, prob: np.ndarray, *, prob_thresh: float = 0.5, n_iter: int | None = None,
                 variant: Variant = "cellpose", dist: np.ndarray | None = None) -> np.ndarray:
    """Sequential labels (H, W) uint32 of the pixels above ``prob_thresh`` grouped by where their flows end:
    :func:`compute_masks` before the flow-error check and the clean-up (same parameters)."""
    if variant not in ("cellpose", "omnipose"):
        raise ValueError(f"variant must be 'cellpose' or 'omnipose', got {variant!r}")
    h, w = prob.shape
    mask = prob > prob_thresh
    if not mask.any():
        return np.zeros((h, w), np.uint32)
    omni = variant == "omnipose"
    if n_iter is None:
        n_iter = _default_n_iter(mask, dist) if omni else 200
    ends = follow_flows(flows * mask, mask, n_iter=n_iter, stop_below=OMNIPOSE_STOP if omni else 0.0)
    ids = cluster_endpoints(ends, (h, w)) if omni else group_endpoints(ends, (h, w))
    labels = np.zeros((h, w), np.int64)
    labels[mask] = ids
    return relabel_sequential(labels)


def compute_masks_sweep(flows: np.ndarray, prob: np.ndarray, *, prob_thresholds: Sequence[float],
                        flow_thresholds: Sequence[float], n_iter: int | None = None, min_size: int = 15,
                        variant: Variant = "cellpose", dist: np.ndarray | None = None
                        ) -> dict[tuple[float, float], np.ndarray]:
    """:func:`compute_masks` at every (probability, flow-error) threshold pair, sharing the work: the flows are
    followed once per probability threshold and the flow errors computed once per grouping.

    Returns
    -------
    dict
        ``{(prob_thresh, flow_thresh): labels (H, W) uint32}``.
    """
    out = {}
    for p in prob_thresholds:
        grouped = group_pixels(flows, prob, prob_thresh=p, n_iter=n_iter, variant=variant, dist=dist)
        errors = flow_errors(grouped, flows, _recompute(variant)) if grouped.any() else np.zeros(0)
        for f in flow_thresholds:
            keep = np.r_[True, errors <= f] if f > 0 else np.ones(len(errors) + 1, bool)
            labels = np.where(keep[grouped], grouped, 0).astype(np.uint32)
            out[(p, f)] = fill_holes_and_remove_small(labels, min_size=min_size)
    return out


def _recompute(variant: Variant) -> Callable[[np.ndarray], np.ndarray]:
    """The flows the flow-error check recomputes from the masks."""
    return _omnipose_flows_only if variant == "omnipose" else cellpose_flows


def _default_n_iter(mask: np.ndarray, dist: np.ndarray | None) -> int:
    """Omnipose's Euler steps from the predicted distance field inside ``mask``, or from the mask's own."""
    if dist is None:
        return omnipose_n_iter(ndimage.distance_transform_edt(mask))
    return omnipose_n_iter(np.where(mask, dist, 0))


def _omnipose_flows_only(labels: np.ndarray) -> np.ndarray:
    return omnipose_flows(labels)[0]

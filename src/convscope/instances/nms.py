"""Star-convex polygon candidates, greedy non-maximum suppression, and drawing polygons into label images.

numpy + scipy (and numba kernels, see Engines below), importable without torch. The definitions are StarDist's
(https://github.com/stardist/stardist, BSD-3-Clause; Schmidt et al., MICCAI 2018): ``non_maximum_suppression``
and ``_ind_prob_thresh`` of ``stardist/nms.py``, ``c_non_max_suppression_inds`` of ``stardist/lib/stardist2d.cpp``,
``polygons_to_label`` of ``stardist/geometry/geom2d.py``, and ``StarDist2D._instances_from_prediction``. This is an
independent implementation.

Non-maximum suppression
-----------------------
Candidates are the pixels of the (possibly subsampled) prediction with ``prob > prob_thresh``, not closer than
``border`` grid pixels to the image edge, each with the polygon of its predicted ray distances. They are visited by
descending score; a candidate that is still alive is kept and suppresses every lower-scored alive candidate ``j``
whose overlap ``area(P_i & P_j) / min(area(P_i), area(P_j))`` exceeds ``nms_thresh`` (intersection over the
*smaller* polygon, as StarDist; so a small polygon inside a large one is suppressed).

How overlaps are computed (our choice; StarDist clips polygon pairs exactly with Clipper, on vertices truncated
to integers):

1. Neighbours: only candidates whose centres lie within ``r_out_i + max r_out`` of the kept centre (a k-d tree, as
   StarDist; ``r_out`` = the longest ray) and whose bounding boxes intersect can overlap.
2. Bound: the bounding-box intersection area is an upper bound of the polygon intersection; pairs where it is
   too small to exceed ``nms_thresh`` are not measured.
3. The remaining pairs are measured on 32 rows across the kept polygon: on each row the overlap length of the two
   polygons is exact (from the edge crossings, see ``_polygons.crossing_overlaps``), and the area is the sum over
   rows times their spacing (midpoint rule in one direction only; about 1 % error for convex-ish shapes, smaller
   than the error of StarDist's integer vertices for small nuclei). All candidates of one kept polygon are
   measured in one vectorised call, so the Python loop runs once per kept polygon, not per pair.

Engines: with numba installed the greedy loop and the drawing of the label image run compiled
(:mod:`convscope.instances.engines`; the same arithmetic in the same order, so the same labels); ``engine="numpy"``
runs the numpy reference described above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from scipy.spatial import cKDTree

from convscope.instances._polygons import crossing_overlaps, rasterize_polygons, ray_angles, row_crossings
from convscope.instances.engines import Engine, compiled
from convscope.instances.star import _normalize_grid, polygons_from_dist

__all__ = [
    "StarPolygons",
    "candidates",
    "instances_from_prediction",
    "non_maximum_suppression",
    "polygon_nms",
    "polygons_to_label",
]

_ROWS = 32  # rows across the kept polygon at which intersections are measured exactly
_MIN_SPACING = 1 / 64  # rows never closer than this (pixels), bounding the work for tiny kept polygons


@dataclass(frozen=True, eq=False)
class StarPolygons:
    """Star-convex polygons with scores, sorted by descending score.

    Attributes
    ----------
    points : numpy.ndarray
        (N, 2) int64 (row, col) centre of each polygon, in full-resolution pixels.
    scores : numpy.ndarray
        (N,) float32 object probability at the centre.
    dist : numpy.ndarray
        (N, n_rays) float32 ray distances in full-resolution pixels.
    """

    points: np.ndarray
    scores: np.ndarray
    dist: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def coord(self) -> np.ndarray:
        """(N, 2, n_rays) float32 polygon vertices (rows, cols), StarDist's ``coord``."""
        return polygons_from_dist(self.dist, self.points)

    def subset(self, index: np.ndarray) -> StarPolygons:
        """The polygons selected by an index or boolean mask, in the given order."""
        return StarPolygons(self.points[index], self.scores[index], self.dist[index])


def _check_prediction(prob: ArrayLike, dist: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    prob = np.asarray(prob)
    dist = np.asarray(dist)
    if prob.ndim != 2 or dist.ndim != 3 or dist.shape[:2] != prob.shape:
        raise ValueError(f"need prob (H, W) and dist (H, W, n_rays), got {prob.shape} and {dist.shape}")
    if dist.shape[2] < 3:
        raise ValueError(f"need at least 3 rays, got {dist.shape[2]}")
    return prob, dist


def candidates(
    prob: ArrayLike,
    dist: ArrayLike,
    *,
    prob_thresh: float = 0.5,
    grid: tuple[int, int] | int = (1, 1),
    border: int = 2,
    max_candidates: int | None = None,
    min_ray: float = 0.0,
) -> StarPolygons:
    """Candidate polygons: every prediction pixel with ``prob > prob_thresh``, sorted by descending score.

    As StarDist's ``non_maximum_suppression`` (``_ind_prob_thresh``): pixels closer than ``border`` to the edge of
    the prediction are ignored, and prediction pixel ``(i, j)`` is centred at full-resolution pixel
    ``(i * grid[0], j * grid[1])``. Ties keep raster order (stable sort). Negative distances count as 0.

    Parameters
    ----------
    prob : array_like
        (H', W') float object probability.
    dist : array_like
        (H', W', n_rays) float ray distances in full-resolution pixels.
    prob_thresh : float
        Keep pixels with ``prob > prob_thresh``.
    grid : tuple of int or int
        Subsampling of the prediction relative to the image.
    border : int
        Ignore this many prediction pixels at each image edge (StarDist's ``b``; 0 keeps all).
    max_candidates : int, optional
        Keep only this many, those of highest probability (a guard against a model that is sure of nothing, whose
        every pixel would otherwise become an object); None keeps all, as StarDist.
    min_ray : float
        Drop candidates whose longest ray is shorter (in pixels): such a polygon covers at most its own pixel.
        0 keeps all, as StarDist.

    Returns
    -------
    StarPolygons
        The candidates.
    """
    prob, dist = _check_prediction(prob, dist)
    g = _normalize_grid(grid)
    mask = prob > prob_thresh
    if border > 0:
        inner = np.zeros_like(mask)
        inner[border:-border, border:-border] = True
        mask &= inner
    rows, cols = np.nonzero(mask)
    scores = prob[rows, cols].astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    rows, cols = rows[order], cols[order]
    points = np.stack([rows * g[0], cols * g[1]], axis=1).astype(np.int64)
    rays = dist[rows, cols].astype(np.float32)
    if not np.all(np.isfinite(rays)):
        raise ValueError("dist holds non-finite values at candidate pixels")
    scores, rays = scores[order], np.maximum(rays, 0)
    if min_ray > 0:
        big = rays.max(axis=1, initial=0) >= min_ray
        points, scores, rays = points[big], scores[big], rays[big]
    if max_candidates is not None:
        points, scores, rays = points[:max_candidates], scores[:max_candidates], rays[:max_candidates]
    return StarPolygons(points, scores, rays)


@dataclass(frozen=True)
class _Geometry:
    """Per-polygon quantities for the NMS (polygons in descending score order)."""

    centers: np.ndarray  # (N, 2) float64
    dist: np.ndarray  # (N, R) float32, non-negative
    areas: np.ndarray  # (N,) float64
    lo: np.ndarray  # (N, 2) float64 bounding box minimum (row, col)
    hi: np.ndarray  # (N, 2) float64 bounding box maximum (row, col)
    r_out: np.ndarray  # (N,) radius of a disc around the centre containing the polygon
    trig: np.ndarray  # (2, R) float64 sin and cos of the ray angles
    orientation: float  # sign of the signed area of every (non-degenerate) polygon


def _geometry(dist: np.ndarray, points: np.ndarray, chunk: int = 1 << 15) -> _Geometry:
    """Areas and bounding boxes of star-convex polygons, in chunks (vertices are not kept)."""
    dist = np.maximum(np.asarray(dist, np.float32), 0)
    centers = np.asarray(points, np.float64)
    n, n_rays = dist.shape
    phi = ray_angles(n_rays)
    sin, cos = np.sin(phi).astype(np.float32), np.cos(phi).astype(np.float32)
    lo, hi = np.empty((n, 2)), np.empty((n, 2))
    for s in range(0, n, chunk):
        d = dist[s : s + chunk]
        for axis, trig in enumerate((sin, cos)):
            offset = d * trig
            lo[s : s + chunk, axis] = offset.min(axis=1)
            hi[s : s + chunk, axis] = offset.max(axis=1)
    areas = 0.5 * np.sin(2 * np.pi / n_rays) * np.einsum("nk,nk->n", dist, np.roll(dist, -1, axis=1), dtype=np.float64)
    trig = np.stack([np.sin(phi), np.cos(phi)])
    orientation = -1.0 if np.sum(trig[0] * np.roll(trig[1], -1) - trig[1] * np.roll(trig[0], -1)) < 0 else 1.0
    return _Geometry(centers, dist, areas, lo + centers, hi + centers, dist.max(axis=1), trig, orientation)


def _edges(geo: _Geometry, index: np.ndarray) -> np.ndarray:
    """(4, n, R) float64 edges ``y0, x0, y1, x1`` of the selected polygons."""
    d = geo.dist[index].astype(np.float64)
    y0 = geo.centers[index, 0:1] + d * geo.trig[0]
    x0 = geo.centers[index, 1:2] + d * geo.trig[1]
    nxt = np.roll(np.arange(d.shape[1]), -1)
    return np.stack([y0, x0, y0[:, nxt], x0[:, nxt]])


def _suppressed_by(geo: _Geometry, i: int, others: np.ndarray, thresh: float) -> np.ndarray:
    """Which of ``others`` overlap kept polygon ``i`` by more than ``thresh`` (intersection / smaller area)."""
    size = np.minimum(geo.hi[others], geo.hi[i]) - np.maximum(geo.lo[others], geo.lo[i])
    smaller = np.minimum(geo.areas[others], geo.areas[i]) + 1e-10
    out = np.zeros(len(others), bool)
    if geo.areas[i] <= 0:  # a degenerate polygon overlaps nothing (StarDist: intersection 0)
        return out
    maybe = np.flatnonzero(np.clip(size, 0, None).prod(axis=1) > thresh * smaller)
    if maybe.size == 0:
        return out
    spacing = max(float(geo.hi[i, 0] - geo.lo[i, 0]) / _ROWS, _MIN_SPACING)
    rows_i = (int(np.ceil(geo.lo[i, 0] / spacing)), int(np.ceil(geo.hi[i, 0] / spacing)))
    index = np.concatenate([[i], others[maybe]])
    ids, rows, x, entering = row_crossings(_edges(geo, index), np.full(index.size, geo.orientation), spacing, rows_i)
    first = ids == 0
    rest = ~first
    inter = crossing_overlaps(
        (ids[first], rows[first], x[first], entering[first]),
        (ids[rest] - 1, rows[rest], x[rest], entering[rest]),
        maybe.size,
    )
    out[maybe] = inter * spacing > thresh * smaller[maybe]
    return out


def polygon_nms(dist: ArrayLike, points: ArrayLike, scores: ArrayLike, *, nms_thresh: float = 0.4,
                engine: Engine = "auto") -> np.ndarray:
    """Greedy non-maximum suppression of star-convex polygons (StarDist's ``non_maximum_suppression_inds``).

    Polygon ``i`` suppresses a lower-scored polygon ``j`` when ``area(P_i & P_j) / min(area(P_i), area(P_j)) >
    nms_thresh``; suppressed polygons suppress nothing. See the module notes for how overlaps are computed.

    Parameters
    ----------
    dist : array_like
        (N, n_rays) float ray distances.
    points : array_like
        (N, 2) float or int (row, col) polygon centres.
    scores : array_like
        (N,) float scores; ties are visited in input order.
    nms_thresh : float
        Overlap above which the lower-scored polygon is suppressed.
    engine : {"auto", "numba", "numpy"}
        Compiled kernels or the numpy reference (:mod:`convscope.instances.engines`); the result is the same.

    Returns
    -------
    numpy.ndarray
        (N,) bool, True for the polygons kept, in input order.
    """
    dist = np.asarray(dist)
    scores = np.asarray(scores)
    points = np.asarray(points)
    if not nms_thresh >= 0:
        raise ValueError(f"nms_thresh must be >= 0, got {nms_thresh}")
    if dist.ndim != 2 or points.shape != (len(dist), 2) or scores.shape != (len(dist),):
        shapes = f"{dist.shape}, {points.shape}, {scores.shape}"
        raise ValueError(f"need dist (N, n_rays), points (N, 2) and scores (N,), got {shapes}")
    if not (np.isfinite(dist).all() and np.isfinite(points).all()):
        raise ValueError("dist and points must be finite")
    order = np.argsort(-scores, kind="stable")
    keep = np.zeros(len(order), bool)
    if len(order) == 0:
        return keep
    geo = _geometry(dist[order], points[order])
    kernels = compiled(engine)
    if kernels is not None:
        keep = kernels.greedy_nms(geo.centers, geo.dist, geo.areas, geo.lo, geo.hi, geo.r_out, geo.trig,
                                  geo.orientation, float(nms_thresh), _ROWS, _MIN_SPACING)
    else:
        _greedy(geo, keep, float(nms_thresh))
    result = np.zeros(len(order), bool)
    result[order] = keep
    return result


def _greedy(geo: _Geometry, keep: np.ndarray, thresh: float) -> None:
    """The greedy loop of :func:`polygon_nms` in numpy (the reference): sets ``keep`` (N,) bool in place."""
    tree = cKDTree(geo.centers)
    reach = geo.r_out.max()
    alive = np.ones(len(keep), bool)
    for i in range(len(keep)):
        if not alive[i]:
            continue
        keep[i] = True
        near = np.asarray(tree.query_ball_point(geo.centers[i], geo.r_out[i] + reach), dtype=np.int64)
        near = near[(near > i)]
        near = near[alive[near]]
        if near.size:
            alive[near[_suppressed_by(geo, i, near, thresh)]] = False


def non_maximum_suppression(
    prob: ArrayLike,
    dist: ArrayLike,
    *,
    prob_thresh: float = 0.5,
    nms_thresh: float = 0.4,
    grid: tuple[int, int] | int = (1, 1),
    border: int = 2,
    max_candidates: int | None = None,
    min_ray: float = 0.0,
    engine: Engine = "auto",
) -> StarPolygons:
    """The polygons that survive non-maximum suppression of a dense prediction (StarDist's ``non_maximum_suppression``).

    Parameters
    ----------
    prob : array_like
        (H', W') float object probability.
    dist : array_like
        (H', W', n_rays) float ray distances in full-resolution pixels.
    prob_thresh : float
        Candidates have ``prob > prob_thresh``.
    nms_thresh : float
        Overlap (intersection / smaller area) above which the lower-scored polygon is suppressed.
    grid : tuple of int or int
        Subsampling of the prediction relative to the image.
    border : int
        Ignore this many prediction pixels at each image edge (StarDist's ``b``).
    max_candidates, min_ray
        Guards of :func:`candidates` (default: none, as StarDist).
    engine : {"auto", "numba", "numpy"}
        See :func:`polygon_nms`.

    Returns
    -------
    StarPolygons
        Kept polygons, by descending score.
    """
    cands = candidates(prob, dist, prob_thresh=prob_thresh, grid=grid, border=border, max_candidates=max_candidates,
                       min_ray=min_ray)
    keep = polygon_nms(cands.dist, cands.points, cands.scores, nms_thresh=nms_thresh, engine=engine)
    return cands.subset(keep)


def polygons_to_label(
    coords: ArrayLike, scores: ArrayLike | None, shape: tuple[int, int], *, dtype: DTypeLike = np.uint32,
    engine: Engine = "auto",
) -> np.ndarray:
    """Draw polygons into a label image; where they overlap, the higher score wins.

    As StarDist's ``polygons_to_label``: polygon ``n`` gets label ``n + 1`` (input order), and polygons are
    painted by ascending score, so higher scores win overlaps (equal scores: the later polygon wins). A pixel
    belongs to a polygon when its centre is inside (scanline fill; polygons sharing an edge share no pixel);
    polygons are clipped to the image.

    Parameters
    ----------
    coords : array_like
        (N, 2, n_vertices) float vertices (rows, cols), e.g. :attr:`StarPolygons.coord`.
    scores : array_like or None
        (N,) float priorities; None paints in input order (later wins).
    shape : tuple of int
        (H, W) of the label image.
    dtype : numpy dtype
        Unsigned integer label dtype (uint16 or uint32); must hold N.
    engine : {"auto", "numba", "numpy"}
        Compiled kernels or the numpy reference (:mod:`convscope.instances.engines`); the result is the same.

    Raises
    ------
    ValueError
        If ``dtype`` is not an unsigned integer type that holds N, or the scores do not match the polygons.

    Returns
    -------
    numpy.ndarray
        (H, W) label image of ``dtype``, 0 = background.
    """
    coords = np.asarray(coords)
    n = len(coords)
    if np.dtype(dtype).kind != "u" or n > np.iinfo(dtype).max:
        raise ValueError(f"labels need an unsigned integer dtype that holds {n} polygons, got {np.dtype(dtype).name}")
    scores = np.arange(n, dtype=np.float64) if scores is None else np.asarray(scores, np.float64)
    if scores.shape != (n,):
        raise ValueError(f"need one score per polygon: {n} polygons, scores of shape {scores.shape}")
    h, w = (int(v) for v in shape)
    if n == 0:
        return np.zeros((h, w), dtype)
    kernels = compiled(engine)
    if kernels is not None and coords.ndim == 3 and coords.shape[1] == 2 and coords.shape[2] >= 3 \
            and np.isfinite(coords).all():  # anything else goes to the reference, which says what is wrong
        labels = np.zeros((h, w), dtype)
        kernels.paint_polygons(np.ascontiguousarray(coords, np.float64), np.argsort(scores, kind="stable"),
                               np.arange(1, n + 1, dtype=dtype), labels)
        return labels
    ids, rows, cols = rasterize_polygons(coords, (h, w))
    rank = np.empty(n, np.int64)
    rank[np.argsort(scores, kind="stable")] = np.arange(1, n + 1)
    best = np.zeros(h * w, np.int32 if n < np.iinfo(np.int32).max else np.int64)
    np.maximum.at(best, rows * w + cols, rank[ids])
    label_of_rank = np.zeros(n + 1, dtype)
    label_of_rank[rank] = np.arange(1, n + 1)
    return label_of_rank[best].reshape(h, w)


def instances_from_prediction(
    prob: ArrayLike,
    dist: ArrayLike,
    *,
    prob_thresh: float = 0.5,
    nms_thresh: float = 0.4,
    grid: tuple[int, int] | int = (1, 1),
    border: int = 2,
    shape: tuple[int, int] | None = None,
    max_candidates: int | None = None,
    min_ray: float = 0.0,
    engine: Engine = "auto",
) -> tuple[np.ndarray, StarPolygons]:
    """Label image from a dense star-convex prediction: candidates, NMS, polygons drawn by score.

    StarDist's ``_instances_from_prediction`` for 2D: label ``n`` is the ``n``-th kept polygon by descending score
    (label 1 = highest score); a polygon completely covered by higher-scored ones leaves its label unused.

    Parameters
    ----------
    prob : array_like
        (H', W') float object probability.
    dist : array_like
        (H', W', n_rays) float ray distances in full-resolution pixels.
    prob_thresh : float
        Candidates have ``prob > prob_thresh``.
    nms_thresh : float
        Overlap (intersection / smaller area) above which the lower-scored polygon is suppressed.
    grid : tuple of int or int
        Subsampling of the prediction relative to the image.
    border : int
        Ignore this many prediction pixels at each image edge (StarDist's ``b``).
    shape : tuple of int, optional
        (H, W) of the label image; default ``(H' * grid[0], W' * grid[1])``.
    max_candidates, min_ray
        Guards of :func:`candidates` (default: none, as StarDist).
    engine : {"auto", "numba", "numpy"}
        Compiled kernels or the numpy reference (:mod:`convscope.instances.engines`); the result is the same.

    Returns
    -------
    labels : numpy.ndarray
        (H, W) uint32 label image.
    polygons : StarPolygons
        The kept polygons; ``polygons.coord`` gives their vertices.
    """
    prob, dist = _check_prediction(prob, dist)
    g = _normalize_grid(grid)
    if shape is None:
        shape = (prob.shape[0] * g[0], prob.shape[1] * g[1])
    kept = non_maximum_suppression(prob, dist, prob_thresh=prob_thresh, nms_thresh=nms_thresh, grid=g, border=border,
                                   max_candidates=max_candidates, min_ray=min_ray, engine=engine)
    return polygons_to_label(kept.coord, kept.scores, shape, dtype=np.uint32, engine=engine), kept

"""Star-convex object geometry (StarDist-style): radial distances, object probability, polygons, fidelity.

Plain numpy + scipy, importable without torch. The definitions are those of StarDist
(https://github.com/stardist/stardist, BSD-3-Clause; Schmidt et al., "Cell Detection with Star-convex
Polygons", MICCAI 2018): ``star_dist`` of ``stardist/geometry/geom2d.py`` and ``c_star_dist`` of
``stardist/lib/stardist2d.cpp``, ``edt_prob`` of ``stardist/utils.py``, ``dist_to_coord`` and
``relabel_image_stardist`` of ``geom2d.py``. This is an independent, vectorised implementation.

Conventions
-----------
- A label image is a (H, W) array of non-negative integers, 0 = background; labels need not be sequential.
- Ray ``k`` of ``n_rays`` has angle ``phi_k = 2 pi k / n_rays`` and steps ``(drow, dcol) = (sin phi_k, cos phi_k)``.
- Polygon vertices are ``(row, col) = centre + d_k (sin phi_k, cos phi_k)`` with pixel centres at integer
  coordinates; arrays of polygons have shape (N, 2, n_rays) (rows, then cols).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from convscope.instances._polygons import rasterize_polygons, ray_angles
from convscope.instances.engines import Engine, compiled

__all__ = [
    "StarConvexityWarning",
    "StarFidelity",
    "edt_prob",
    "fidelity",
    "polygons_from_dist",
    "ray_angles",
    "star_dist",
    "star_dist_at",
]

_GROUP_BUDGET = 1 << 21  # padded crop pixels walked together (bool arrays of ~2 MB stay in cache)
_GROUP_GROWTH = 1.25  # objects whose crops differ by more than this factor go to different groups


class StarConvexityWarning(UserWarning):
    """Some objects are poorly represented by star-convex polygons (see :func:`fidelity`)."""


def _check_labels(labels: ArrayLike) -> np.ndarray:
    """Validate a (H, W) label image of non-negative integers; return it without copying."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"labels must be a 2D (H, W) label image, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"labels must hold integer object ids, got dtype {arr.dtype}")
    if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
        raise ValueError(f"labels must be non-negative (0 = background), got min {arr.min()}")
    return arr


def _compact_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sequential ids ``0..N`` (0 stays background) and the original value of every id.

    Only relabels (one ``np.unique``) when ids are too large for :func:`scipy.ndimage.find_objects`.
    """
    top = int(labels.max()) if labels.size else 0
    if top <= max(labels.size, 1 << 16):
        return labels.astype(np.intp, copy=False), np.arange(top + 1, dtype=np.int64)
    values, inverse = np.unique(labels, return_inverse=True)
    if values[0] != 0:
        values = np.concatenate([[0], values])
        inverse = inverse + 1
    return inverse.reshape(labels.shape).astype(np.intp), values.astype(np.int64)


def _normalize_grid(grid: tuple[int, int] | int) -> tuple[int, int]:
    """A (row, col) subsampling grid of positive ints."""
    g = (grid, grid) if np.isscalar(grid) else tuple(grid)
    if len(g) != 2 or any(int(v) != v or int(v) < 1 for v in g):
        raise ValueError(f"grid must be two positive integers, got {grid!r}")
    return int(g[0]), int(g[1])


def _check_rays(n_rays: int) -> int:
    if int(n_rays) != n_rays or n_rays < 3:
        raise ValueError(f"need an integer n_rays >= 3, got {n_rays!r}")
    return int(n_rays)


@lru_cache(maxsize=16)
def _ray_tables(n_rays: int, n_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float32 ray positions after steps 1..n_steps and the corrected distance when stopping there (read-only and
    cached: training computes the targets of every patch with the same tables).

    Follows ``c_star_dist``: ``phi = k * (float)(2 pi / n_rays)``, ``x += sin(phi)`` and ``y += cos(phi)`` in float32;
    a ray that meets a foreign pixel at step ``n`` is pulled back by ``1 - 0.5 / max(|sin phi|, |cos phi|)`` steps
    (StarDist's sub-pixel correction), so that it ends half a pixel behind its last object pixel.

    Returns
    -------
    rows, cols, exit_dist : numpy.ndarray
        (n_rays, n_steps) float32 each: cumulative row and column offsets, and the distance if the ray stops
        at that step.
    """
    phi = np.arange(n_rays, dtype=np.float32) * np.float32(2 * np.pi / n_rays)
    drow = np.sin(phi.astype(np.float64)).astype(np.float32)
    dcol = np.cos(phi.astype(np.float64)).astype(np.float32)
    rows = np.cumsum(np.repeat(drow[:, None], n_steps, axis=1), axis=1, dtype=np.float32)
    cols = np.cumsum(np.repeat(dcol[:, None], n_steps, axis=1), axis=1, dtype=np.float32)
    back = np.float32(0.5) / np.maximum(np.abs(drow), np.abs(dcol)) - np.float32(1)
    end_r = rows + (back * drow)[:, None]
    end_c = cols + (back * dcol)[:, None]
    tables = rows, cols, np.sqrt(end_r * end_r + end_c * end_c)
    for table in tables:
        table.flags.writeable = False
    return tables


def _index_free(steps: np.ndarray, extent: int) -> np.ndarray:
    """Which rays move by the same integer offsets ``lrint(i + x_n) - i`` from every start index ``0 <= i < extent``.

    ``c_star_dist`` rounds the float32 sum ``i + x_n`` half to even, so a ray position within float32 rounding of
    a half-integer (e.g. ``cos(120 deg) = -0.5`` with ``n_rays`` a multiple of 12) moves differently from even and
    odd, small and large start indices. Only those steps are checked against every start index.

    Returns
    -------
    numpy.ndarray
        (n_rays,) bool.
    """
    near = np.abs(np.abs(steps - np.floor(steps)) - 0.5) <= 2.0**-22 * (extent + steps.shape[1] + 2)
    free = np.ones(len(steps), bool)
    starts = np.arange(extent, dtype=np.float32)[:, None]
    for k in np.flatnonzero(near.any(axis=1)):
        x = steps[k, near[k]][None, :]
        moves = np.rint(starts + x) - starts
        free[k] = bool(np.all(moves == moves[:1]))
    return free


def _walk_points(
    labels: np.ndarray, pts: np.ndarray, rays: np.ndarray, tables: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """Walk the given rays from the given object pixels exactly as ``c_star_dist`` (vectorised over rays).

    Returns
    -------
    numpy.ndarray
        (len(pts), len(rays)) float32 distances (0 for background pixels).
    """
    rows, cols, exit_dist = tables
    h, w = labels.shape
    out = np.zeros((len(pts), len(rays)), np.float32)
    value = labels[pts[:, 0], pts[:, 1]]
    point, slot = np.nonzero(np.repeat(value[:, None] != 0, len(rays), axis=1))
    ray = rays[slot]
    i0, j0, val = pts[point, 0].astype(np.float32), pts[point, 1].astype(np.float32), value[point]
    for step in range(rows.shape[1]):
        if point.size == 0:
            return out
        ii = np.rint(i0 + rows[ray, step]).astype(np.int64)
        jj = np.rint(j0 + cols[ray, step]).astype(np.int64)
        inside = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
        same = np.zeros_like(inside)
        same[inside] = labels[ii[inside], jj[inside]] == val[inside]
        stop = ~same
        out[point[stop], slot[stop]] = exit_dist[ray[stop], step]
        point, slot, ray, i0, j0, val = point[same], slot[same], ray[same], i0[same], j0[same], val[same]
    if point.size:
        raise RuntimeError("star_dist: a ray outlived the image (internal error)")
    return out


def star_dist_at(labels: ArrayLike, points: ArrayLike, n_rays: int = 32) -> np.ndarray:
    """Star distances at a few pixels, walking every ray exactly as StarDist's ``c_star_dist``.

    Parameters
    ----------
    labels : array_like
        (H, W) integer label image, 0 = background.
    points : array_like
        (N, 2) integer (row, col) pixel coordinates inside the image.
    n_rays : int
        Number of equiangular rays (>= 3).

    Returns
    -------
    numpy.ndarray
        (N, n_rays) float32 distances; 0 for background points. See :func:`star_dist`.
    """
    labels = _check_labels(labels)
    n_rays = _check_rays(n_rays)
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    h, w = labels.shape
    if pts.size and (pts.min() < 0 or pts[:, 0].max() >= h or pts[:, 1].max() >= w):
        raise ValueError(f"points must lie inside the image of shape {labels.shape}")
    tables = _ray_tables(n_rays, math.ceil(math.hypot(h, w)) + 2)
    return _walk_points(labels, pts, np.arange(n_rays), tables)


def _object_boxes(labels: np.ndarray, align: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Bounding boxes of all objects, their origins rounded down to multiples of ``align``.

    Returns (ids, r0, c0, heights, widths) as int64 arrays.
    """
    boxes = [(i, s) for i, s in enumerate(ndimage.find_objects(labels), 1) if s is not None]
    if not boxes:
        return tuple(np.zeros(0, np.int64) for _ in range(5))
    ids = np.array([i for i, _ in boxes], np.int64)
    raw = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop) for _, s in boxes], np.int64)
    r0 = raw[:, 0] // align[0] * align[0]
    c0 = raw[:, 2] // align[1] * align[1]
    return ids, r0, c0, raw[:, 1] - r0, raw[:, 3] - c0


def _group_objects(heights: np.ndarray, widths: np.ndarray) -> list[np.ndarray]:
    """Split objects into groups of similar crop size, each small enough to walk at once."""
    size = np.maximum(heights, widths)
    order = np.argsort(size, kind="stable")
    groups, start = [], 0
    while start < len(order):
        limit = _GROUP_GROWTH * size[order[start]] + 4
        stop, gh, gw = start, 0, 0
        while stop < len(order) and size[order[stop]] <= limit:
            nh, nw = max(gh, heights[order[stop]]), max(gw, widths[order[stop]])
            if stop > start and (stop - start + 1) * nh * nw > _GROUP_BUDGET:
                break
            gh, gw, stop = nh, nw, stop + 1
        groups.append(order[start:stop])
        start = stop
    return groups


def _valid_range(stride: int, count: int, offset: int, size: int) -> tuple[int, int]:
    """Indices ``q`` in [0, count) with ``0 <= stride * q + offset < size``, as a (lo, hi) range."""
    lo = max(0, -(offset // stride))
    hi = min(count, (size - 1 - offset) // stride + 1)
    return lo, max(lo, hi)


def _walk(mask: np.ndarray, stride: tuple[int, int], off_r: np.ndarray, off_c: np.ndarray) -> np.ndarray:
    """Steps survived inside the object by one ray from every lattice pixel of a stack of object crops.

    ``mask`` (h, w, G) bool holds one object per crop along the last axis (so that shifted sub-arrays are long
    contiguous runs). The lattice is ``mask[::stride[0], ::stride[1]]``; at step ``n`` every surviving lattice
    pixel looks at its pixel shifted by ``(off_r[n], off_c[n])`` and dies when that is not its object (or outside
    the crop, hence outside the object).

    Returns
    -------
    numpy.ndarray
        (Q0, Q1, G) unsigned counts of survived steps (the ray stops at step ``count + 1``).
    """
    h, w, _ = mask.shape
    alive = mask[:: stride[0], :: stride[1]].copy()
    nq, np_ = alive.shape[:2]
    small = len(off_r) < 255
    counts = np.zeros(alive.shape, np.uint8 if small else np.uint32)
    step = alive.view(np.uint8) if small else alive
    for di, dj in zip(off_r.tolist(), off_c.tolist(), strict=True):
        q0, q1 = _valid_range(stride[0], nq, di, h)
        p0, p1 = _valid_range(stride[1], np_, dj, w)
        if q0 >= q1 or p0 >= p1:
            return counts
        alive[:q0] = False
        alive[q1:] = False
        alive[:, :p0] = False
        alive[:, p1:] = False
        r, c = stride[0] * q0 + di, stride[1] * p0 + dj
        rows = slice(r, r + stride[0] * (q1 - q0 - 1) + 1, stride[0])
        cols = slice(c, c + stride[1] * (p1 - p0 - 1) + 1, stride[1])
        target = mask[rows, cols]
        sub = alive[q0:q1, p0:p1]
        np.logical_and(sub, target, out=sub)
        np.add(counts, step, out=counts)
        if not alive.any():
            return counts
    raise RuntimeError("star_dist: a ray outlived its crop (internal error)")


def star_dist(labels: ArrayLike, n_rays: int = 32, *, grid: tuple[int, int] | int = (1, 1),
              engine: Engine = "auto") -> np.ndarray:
    """Distances from every object pixel to its object's boundary along ``n_rays`` equiangular rays.

    StarDist's ``star_dist`` (``c_star_dist`` in ``stardist/lib/stardist2d.cpp``): from pixel ``(i, j)`` with
    label ``v != 0``, ray ``k`` steps by ``(sin phi_k, cos phi_k)``, rounding each position to the nearest pixel,
    until that pixel is outside the image or has a label other than ``v``; the distance is then pulled back by
    ``1 - 0.5 / max(|sin phi_k|, |cos phi_k|)`` steps, so it ends on the far edge of the last object pixel
    (a 21 x 21 square gets 10.5 from its centre along the axes). Background pixels get 0.

    The walk is vectorised: objects are cropped to their bounding boxes, grouped by size, and every ray is
    advanced for all pixels of a group at once with boolean masks. The arithmetic is StarDist's (float32 ray
    positions, ``lrint`` rounding), so results equal ``c_star_dist``'s; rays whose rounding depends on the start
    pixel (``n_rays`` a multiple of 12, where ``sin`` or ``cos`` is 0.5) are walked pixel by pixel, more slowly.

    Parameters
    ----------
    labels : array_like
        (H, W) integer label image, 0 = background; labels need not be sequential.
    n_rays : int
        Number of rays (>= 3).
    grid : tuple of int or int
        Output subsampling (StarDist's ``grid``): distances at pixels ``(i * grid[0], j * grid[1])``.
    engine : {"auto", "numba", "numpy"}
        The compiled walk (:func:`convscope.instances._compiled.star_dist_grid`: the ``c_star_dist`` loop, pixel by
        pixel, several times faster) or the vectorised numpy one; identical results (see
        :mod:`convscope.instances.engines`).

    Returns
    -------
    numpy.ndarray
        ((H - 1) // grid[0] + 1, (W - 1) // grid[1] + 1, n_rays) float32 distances in pixels.
    """
    labels = _check_labels(labels)
    n_rays = _check_rays(n_rays)
    g = _normalize_grid(grid)
    h, w = labels.shape
    out = np.zeros(((h - 1) // g[0] + 1 if h else 0, (w - 1) // g[1] + 1 if w else 0, n_rays), np.float32)
    kernels = compiled(engine)
    if kernels is not None and out.size:
        rows, cols, exit_dist = _ray_tables(n_rays, math.ceil(math.hypot(h, w)) + 2)
        kernels.star_dist_grid(np.ascontiguousarray(labels), g[0], g[1], rows, cols, exit_dist, out)
        return out
    compact, _ = _compact_labels(labels)
    ids, r0, c0, heights, widths = _object_boxes(compact, g)
    if ids.size == 0:
        return out
    tables = _ray_tables(n_rays, math.ceil(math.hypot(heights.max(), widths.max())) + 2)
    free = _index_free(tables[0], h) & _index_free(tables[1], w)
    off_r = np.rint(tables[0]).astype(np.int64)
    off_c = np.rint(tables[1]).astype(np.int64)
    for group in _group_objects(heights, widths):
        mask = _crop_stack(compact, ids[group], r0[group], c0[group], heights[group], widths[group])
        lattice = mask[:: g[0], :: g[1]]
        flat = np.flatnonzero(lattice)
        q, p, members = np.unravel_index(flat, lattice.shape)
        values = np.empty((n_rays, flat.size), np.float32)
        for k in np.flatnonzero(free):
            counts = _walk(mask, g, off_r[k], off_c[k])
            values[k] = tables[2][k, counts.reshape(-1)[flat]]
        rows = r0[group][members] + g[0] * q
        cols = c0[group][members] + g[1] * p
        if not free.all():  # rays whose rounding depends on the start pixel: walk them pixel by pixel
            bound = np.flatnonzero(~free)
            values[bound] = _walk_points(compact, np.stack([rows, cols], axis=1), bound, tables).T
        out[rows // g[0], cols // g[1]] = values.T
    return out


def _crop_stack(
    labels: np.ndarray, ids: np.ndarray, r0: np.ndarray, c0: np.ndarray, heights: np.ndarray, widths: np.ndarray
) -> np.ndarray:
    """(max height, max width, G) bool stack of object masks cropped at ``(r0, c0)`` (zero beyond the image)."""
    gh, gw = int(heights.max()), int(widths.max())
    mask = np.zeros((len(ids), gh, gw), bool)
    for n, (value, r, c) in enumerate(zip(ids.tolist(), r0.tolist(), c0.tolist(), strict=True)):
        crop = labels[r : r + gh, c : c + gw]
        mask[n, : crop.shape[0], : crop.shape[1]] = crop == value
    return np.ascontiguousarray(mask.transpose(1, 2, 0))


def _object_edt(labels: np.ndarray, box: tuple[slice, slice], value: int) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance transform of one object inside its bounding box, as StarDist's ``edt_prob``.

    The box is grown by one pixel on every side that is not the image border, so object pixels next to other
    labels or background get distance 1; the image border itself is not background.

    Returns
    -------
    mask, edt : numpy.ndarray
        (h, w) bool object mask in ``box`` and (h, w) float64 distances (0 outside the object).
    """
    grow = [(s.start > 0, s.stop < n) for s, n in zip(box, labels.shape, strict=True)]
    grown = tuple(slice(s.start - a, s.stop + b) for s, (a, b) in zip(box, grow, strict=True))
    inner = tuple(slice(int(a), (-1 if b else None)) for a, b in grow)
    grown_mask = labels[grown] == value
    if grown_mask.all():  # the object fills the whole image: no background to measure from
        edt = np.ones(grown_mask.shape)
    else:
        edt = ndimage.distance_transform_edt(grown_mask)
    return grown_mask[inner], edt[inner]


def edt_prob(labels: ArrayLike) -> np.ndarray:
    """Object probability: each object's Euclidean distance transform divided by its maximum.

    StarDist's ``edt_prob`` (``stardist/utils.py``): the distance of every object pixel to the nearest pixel
    not of its object (background or another label), normalised per object to a maximum of 1 (at the most
    interior pixel); background 0. As in StarDist the image border does not count as background, so objects
    cut by the border peak at the border side.

    Parameters
    ----------
    labels : array_like
        (H, W) integer label image, 0 = background; labels need not be sequential.

    Returns
    -------
    numpy.ndarray
        (H, W) float32 in [0, 1].
    """
    labels = _check_labels(labels)
    compact, _ = _compact_labels(labels)
    prob = np.zeros(labels.shape, np.float32)
    for value, box in enumerate(ndimage.find_objects(compact), 1):
        if box is None:
            continue
        mask, edt = _object_edt(compact, box, value)
        inside = edt[mask]
        prob[box][mask] = inside / (inside.max() + 1e-10)
    return prob


def polygons_from_dist(dist: ArrayLike, centers: ArrayLike) -> np.ndarray:
    """Polygon vertices from ray distances and centre points (StarDist's ``dist_to_coord``).

    Parameters
    ----------
    dist : array_like
        (N, n_rays) float distances.
    centers : array_like
        (N, 2) (row, col) centre coordinates.

    Returns
    -------
    numpy.ndarray
        (N, 2, n_rays) float32: ``[:, 0]`` rows ``= center_row + d sin(phi)``, ``[:, 1]`` cols
        ``= center_col + d cos(phi)``.
    """
    dist = np.asarray(dist, np.float64)
    centers = np.asarray(centers, np.float64)
    if dist.ndim != 2 or centers.shape != (len(dist), 2):
        raise ValueError(f"need dist (N, n_rays) and centers (N, 2), got {dist.shape} and {centers.shape}")
    phi = ray_angles(dist.shape[1])
    coord = dist[:, None, :] * np.stack([np.sin(phi), np.cos(phi)])[None] + centers[:, :, None]
    return coord.astype(np.float32)


@dataclass(frozen=True, eq=False)
class StarFidelity:
    """How well star-convex polygons reconstruct the objects of a label image (see :func:`fidelity`).

    Attributes
    ----------
    n_rays : int
        Number of rays.
    min_iou : float
        Objects with a lower IoU are reported as poorly represented (e.g. not star-convex).
    labels : numpy.ndarray
        (N,) int64 object ids, ascending.
    ious : numpy.ndarray
        (N,) float64 IoU of each object with its polygon.
    points : numpy.ndarray
        (N, 2) int64 (row, col) pixel whose distances made the polygon.
    """

    n_rays: int
    min_iou: float
    labels: np.ndarray
    ious: np.ndarray
    points: np.ndarray

    @property
    def mean_iou(self) -> float:
        """Mean IoU over objects (StarDist's ``mean_true_score`` at threshold 0); 0.0 without objects."""
        return float(self.ious.mean()) if self.ious.size else 0.0

    @property
    def poorly_represented(self) -> tuple[int, ...]:
        """Ids of the objects with IoU below ``min_iou``."""
        return tuple(int(v) for v in self.labels[self.ious < self.min_iou])


def _centre_points(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """One pixel per object: the truncated centroid (as StarDist), or the deepest pixel when that is outside."""
    flat = labels.ravel()
    size = np.bincount(flat, minlength=len(ids) + 1)[ids].astype(np.float64)
    rr, cc = np.indices(labels.shape)
    rows = np.bincount(flat, weights=rr.ravel(), minlength=len(ids) + 1)[ids] / size
    cols = np.bincount(flat, weights=cc.ravel(), minlength=len(ids) + 1)[ids] / size
    points = np.stack([rows, cols], axis=1).astype(np.int64)
    boxes = ndimage.find_objects(labels)
    for n in np.flatnonzero(labels[points[:, 0], points[:, 1]] != ids):
        box = boxes[ids[n] - 1]
        _, edt = _object_edt(labels, box, int(ids[n]))
        r, c = np.unravel_index(np.argmax(edt), edt.shape)
        points[n] = (box[0].start + r, box[1].start + c)
    return points


def fidelity(labels: ArrayLike, n_rays: int = 32, *, min_iou: float = 0.8) -> StarFidelity:
    """IoU of every object with its ``n_rays``-ray star-convex polygon, and the objects it fails.

    The reconstruction check of StarDist's data notebook (``relabel_image_stardist`` then ``matching``'s
    ``mean_true_score``), computed per object: the polygon of an object uses the star distances (:func:`star_dist`)
    at its centroid truncated to integers, as ``relabel_image_stardist`` does; when that pixel is not in the
    object (e.g. a C shape), at its most interior pixel instead (StarDist would get an empty polygon there).
    Overlaps between polygons are ignored. Objects with IoU below ``min_iou`` are listed in
    :attr:`StarFidelity.poorly_represented` and reported with a :class:`StarConvexityWarning`.

    Parameters
    ----------
    labels : array_like
        (H, W) integer label image, 0 = background; labels need not be sequential.
    n_rays : int
        Number of rays (>= 3).
    min_iou : float
        IoU below which an object is reported.

    Returns
    -------
    StarFidelity
        Per-object IoUs, ``mean_iou``, and the poorly represented objects.
    """
    labels = _check_labels(labels)
    n_rays = _check_rays(n_rays)
    compact, values = _compact_labels(labels)
    ids = np.array([i for i, s in enumerate(ndimage.find_objects(compact), 1) if s is not None], np.int64)
    if ids.size == 0:
        none = np.zeros(0, np.int64)
        return StarFidelity(n_rays, float(min_iou), none, np.zeros(0), none.reshape(0, 2))
    points = _centre_points(compact, ids)
    coords = polygons_from_dist(star_dist_at(compact, points, n_rays), points)
    poly, rr, cc = rasterize_polygons(coords, labels.shape)
    hit = compact[rr, cc] == ids[poly]
    inter = np.bincount(poly, weights=hit, minlength=len(ids))
    poly_area = np.bincount(poly, minlength=len(ids))
    obj_area = np.bincount(compact.ravel(), minlength=int(ids.max()) + 1)[ids]
    ious = inter / (poly_area + obj_area - inter)
    result = StarFidelity(n_rays, float(min_iou), values[ids], ious, points)
    poor = result.poorly_represented
    if poor:
        shown = ", ".join(map(str, poor[:10])) + (", ..." if len(poor) > 10 else "")
        warnings.warn(
            f"{len(poor)} of {len(ids)} objects are poorly represented by {n_rays}-ray star-convex polygons "
            f"(IoU < {min_iou}; not star-convex?): labels {shown}",
            StarConvexityWarning,
            stacklevel=2,
        )
    return result

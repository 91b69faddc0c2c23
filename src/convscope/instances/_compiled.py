"""Compiled (numba) kernels of the star-convex geometry: greedy polygon NMS and drawing polygons into a label image
(the decode), and the star distances of a label image (the training targets).

Imported only through :func:`convscope.instances.engines.compiled` (numba is optional). Each kernel repeats the
arithmetic of its numpy reference operation for operation, in the same order, so that results are identical, not
merely close: :func:`greedy_nms` that of ``nms._suppressed_by`` (``_polygons.row_crossings`` and
``_polygons.crossing_overlaps``: the same crossings, and the overlap terms summed in the order ``np.bincount``
sums them), :func:`paint_polygons` that of ``_polygons.rasterize_polygons`` and ``nms.polygons_to_label``,
:func:`star_dist_grid` that of ``star._walk_points`` (StarDist's ``c_star_dist``).
Compiled once per machine and cached beside this file (numba's ``cache=True``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["greedy_nms", "paint_polygons", "star_dist_grid"]


@numba.njit(cache=True, nogil=True)
def _neighbour_cells(centers: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Counting sort of the centres into square cells of side at least ``cell`` (larger when the centres are sparse,
    so that there are not many more cells than centres): (start, members, cell of each, rows of cells, columns of
    cells); ``members[start[c]:start[c + 1]]`` ascending."""
    n = centers.shape[0]
    y0, x0 = centers[:, 0].min(), centers[:, 1].min()
    ny = int((centers[:, 0].max() - y0) // cell) + 1
    nx = int((centers[:, 1].max() - x0) // cell) + 1
    while ny * nx > 4 * n + 1024:
        cell *= 2
        ny = int((centers[:, 0].max() - y0) // cell) + 1
        nx = int((centers[:, 1].max() - x0) // cell) + 1
    which = np.empty(n, np.int64)
    counts = np.zeros(ny * nx + 1, np.int64)
    for i in range(n):
        c = int((centers[i, 0] - y0) // cell) * nx + int((centers[i, 1] - x0) // cell)
        which[i] = c
        counts[c + 1] += 1
    start = np.cumsum(counts)
    fill = start[:-1].copy()
    members = np.empty(n, np.int64)
    for i in range(n):
        members[fill[which[i]]] = i
        fill[which[i]] += 1
    return start, members, which, ny, nx


@numba.njit(cache=True, nogil=True)
def _clip(v: float, lo: float, hi: float) -> float:
    return min(max(v, lo), hi)


@numba.njit(cache=True, nogil=True)
def _edge(cy: float, cx: float, d: np.ndarray, trig: np.ndarray, k: int, orientation: float, spacing: float,
          r_lo: float, r_hi: float) -> tuple[float, float, float, float, int, int, float]:
    """Edge ``k`` of a polygon as ``row_crossings`` sees it: (s0, s1, x0, x1) (rows in units of ``spacing``), the
    rows ``lo <= r < hi`` it crosses within ``[r_lo, r_hi)``, and +1 / -1 for entering / leaving."""
    k1 = (k + 1) % d.shape[0]
    s0 = (cy + d[k] * trig[0, k]) / spacing
    s1 = (cy + d[k1] * trig[0, k1]) / spacing
    x0 = cx + d[k] * trig[1, k]
    x1 = cx + d[k1] * trig[1, k1]
    lo = int(_clip(math.ceil(min(s0, s1)), r_lo, r_hi))
    hi = int(_clip(math.ceil(max(s0, s1)), r_lo, r_hi))
    return s0, s1, x0, x1, lo, hi, (1.0 if s1 > s0 else -1.0) * orientation


@numba.njit(cache=True, nogil=True)
def _kept_crossings(cy: float, cx: float, d: np.ndarray, trig: np.ndarray, orientation: float, spacing: float,
                    r_lo: float, r_hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crossings of one polygon with the rows ``r_lo <= r < r_hi`` as ``row_crossings``, stably sorted by row
    (edge order within a row, as ``crossing_overlaps`` sorts them): (row start offsets, x, entering)."""
    first = int(r_lo)
    counts = np.zeros(int(r_hi) - first + 1, np.int64)
    for k in range(d.shape[0]):
        lo, hi = _edge(cy, cx, d, trig, k, orientation, spacing, r_lo, r_hi)[4:6]
        for r in range(lo, hi):
            counts[r - first + 1] += 1
    start = np.cumsum(counts)
    fill = start[:-1].copy()
    xs = np.empty(start[-1], np.float64)
    es = np.empty(start[-1], np.float64)
    for k in range(d.shape[0]):
        s0, s1, x0, x1, lo, hi, e = _edge(cy, cx, d, trig, k, orientation, spacing, r_lo, r_hi)
        for r in range(lo, hi):
            slot = fill[r - first]
            xs[slot] = x0 + (r - s0) * ((x1 - x0) / (s1 - s0))
            es[slot] = e
            fill[r - first] += 1
    return start, xs, es


@numba.njit(cache=True, nogil=True)
def _overlap(cy: float, cx: float, d: np.ndarray, trig: np.ndarray, orientation: float, spacing: float,
             r_lo: float, r_hi: float, start: np.ndarray, xs: np.ndarray, es: np.ndarray) -> float:
    """Summed overlap length of one polygon with the kept one (its crossings ``start, xs, es``) over the rows, as
    ``crossing_overlaps``: the terms in the order of this polygon's crossings, then of the kept polygon's."""
    first = int(r_lo)
    inter = 0.0
    for k in range(d.shape[0]):
        s0, s1, x0, x1, lo, hi, e = _edge(cy, cx, d, trig, k, orientation, spacing, r_lo, r_hi)
        for r in range(lo, hi):
            x = x0 + (r - s0) * ((x1 - x0) / (s1 - s0))
            for a in range(start[r - first], start[r - first + 1]):
                inter += -es[a] * e * max(xs[a], x)
    return inter


@numba.njit(cache=True, nogil=True)
def greedy_nms(centers: np.ndarray, dist: np.ndarray, areas: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               r_out: np.ndarray, trig: np.ndarray, orientation: float, thresh: float, rows: int,
               min_spacing: float) -> np.ndarray:
    """Greedy NMS of polygons in descending score order, as ``nms.polygon_nms``'s loop.

    Parameters
    ----------
    centers : (N, 2) float64
    dist : (N, R) float32, non-negative
    areas : (N,) float64
    lo, hi : (N, 2) float64 bounding boxes
    r_out : (N,) float32 longest ray
    trig : (2, R) float64 sin and cos of the ray angles
    orientation : float
        Sign of the polygons' signed area.
    thresh : float
        NMS threshold (intersection over the smaller area).
    rows, min_spacing
        ``nms._ROWS`` and ``nms._MIN_SPACING``.

    Returns
    -------
    (N,) bool, True for the kept polygons.
    """
    n = centers.shape[0]
    keep = np.zeros(n, np.bool_)
    if n == 0:
        return keep
    alive = np.ones(n, np.bool_)
    reach = r_out.max()
    cell = max(2.0 * float(reach), 1.0)
    start, members, which, ny, nx = _neighbour_cells(centers, cell)
    for i in range(n):
        if not alive[i]:
            continue
        keep[i] = True
        if areas[i] <= 0:  # a degenerate polygon overlaps nothing
            continue
        radius = float(r_out[i] + reach)
        spacing = max(float(hi[i, 0] - lo[i, 0]) / rows, min_spacing)
        r_lo = float(math.ceil(lo[i, 0] / spacing))
        r_hi = float(math.ceil(hi[i, 0] / spacing))
        a_start = np.zeros(0, np.int64)
        a_x = np.zeros(0, np.float64)
        a_e = np.zeros(0, np.float64)
        measured = False
        ci, cj = which[i] // nx, which[i] % nx
        for gy in range(max(ci - 1, 0), min(ci + 2, ny)):
            for gx in range(max(cj - 1, 0), min(cj + 2, nx)):
                c = gy * nx + gx
                for m in range(start[c], start[c + 1]):
                    j = members[m]
                    if j <= i or not alive[j]:
                        continue
                    dy, dx = centers[j, 0] - centers[i, 0], centers[j, 1] - centers[i, 1]
                    if math.sqrt(dy * dy + dx * dx) > radius:
                        continue
                    size0 = max(min(hi[j, 0], hi[i, 0]) - max(lo[j, 0], lo[i, 0]), 0.0)
                    size1 = max(min(hi[j, 1], hi[i, 1]) - max(lo[j, 1], lo[i, 1]), 0.0)
                    smaller = min(areas[j], areas[i]) + 1e-10
                    if not size0 * size1 > thresh * smaller:
                        continue
                    if not measured:
                        a_start, a_x, a_e = _kept_crossings(centers[i, 0], centers[i, 1], dist[i], trig,
                                                            orientation, spacing, r_lo, r_hi)
                        measured = True
                    inter = _overlap(centers[j, 0], centers[j, 1], dist[j], trig, orientation, spacing, r_lo, r_hi,
                                     a_start, a_x, a_e)
                    if inter * spacing > thresh * smaller:
                        alive[j] = False
    return keep


@numba.njit(cache=True, nogil=True)
def paint_polygons(coords: np.ndarray, order: np.ndarray, label_of: np.ndarray, out: np.ndarray) -> None:
    """Draw polygons into ``out`` one after the other in ``order`` (later ones cover earlier ones), polygon ``p``
    with value ``label_of[p]``; pixels as ``rasterize_polygons`` (half-open rows and columns, even-odd rule).

    Parameters
    ----------
    coords : (N, 2, R) float32 or float64 vertices (rows, cols), finite
    order : (N,) int64 drawing order
    label_of : (N,) values to draw
    out : (H, W) label image, written in place
    """
    h, w = out.shape
    n_rays = coords.shape[2]
    for p in order:
        y = coords[p, 0].astype(np.float64)
        x = coords[p, 1].astype(np.float64)
        top = max(math.ceil(y.min()), 0.0)
        bottom = min(math.ceil(y.max()), float(h))
        if bottom <= top:
            continue
        r0 = int(top)
        n_rows = int(bottom) - r0
        counts = np.zeros(n_rows + 1, np.int64)
        for k in range(n_rays):
            k1 = (k + 1) % n_rays
            lo = _clip(math.ceil(min(y[k], y[k1])), 0.0, float(h))
            hi = _clip(math.ceil(max(y[k], y[k1])), 0.0, float(h))
            for r in range(int(lo), int(hi)):
                counts[r - r0 + 1] += 1
        start = np.cumsum(counts)
        fill = start[:-1].copy()
        xs = np.empty(start[-1], np.float64)
        for k in range(n_rays):
            k1 = (k + 1) % n_rays
            lo = _clip(math.ceil(min(y[k], y[k1])), 0.0, float(h))
            hi = _clip(math.ceil(max(y[k], y[k1])), 0.0, float(h))
            for r in range(int(lo), int(hi)):
                xs[fill[r - r0]] = x[k] + (r - y[k]) * ((x[k1] - x[k]) / (y[k1] - y[k]))
                fill[r - r0] += 1
        value = label_of[p]
        for row in range(n_rows):
            cross = np.sort(xs[start[row]:start[row + 1]])
            for c in range(0, cross.shape[0] - 1, 2):
                c_in = int(_clip(math.ceil(cross[c]), 0.0, float(w)))
                c_out = int(_clip(math.ceil(cross[c + 1]), 0.0, float(w)))
                for col in range(c_in, c_out):
                    out[r0 + row, col] = value


@numba.njit(cache=True, nogil=True)
def star_dist_grid(labels: np.ndarray, g0: int, g1: int, rows: np.ndarray, cols: np.ndarray,
                   exit_dist: np.ndarray, out: np.ndarray) -> None:
    """Star distances of every object pixel on the grid ``(q0 * g0, q1 * g1)`` into ``out`` (Q0, Q1, n_rays) float32
    (zeros expected at background pixels): ray ``k`` from pixel ``(i, j)`` stops at the first step ``n`` where
    ``(rint(i + rows[k, n]), rint(j + cols[k, n]))`` (float32 sums, half to even) leaves the image or the object,
    and gets ``exit_dist[k, n]``. ``rows``, ``cols``, ``exit_dist``: ``star._ray_tables``, with at least
    ``hypot(H, W) + 2`` steps."""
    h, w = labels.shape
    n_rays, n_steps = rows.shape
    for qi in range(out.shape[0]):
        i = qi * g0
        fi = np.float32(i)
        for qj in range(out.shape[1]):
            j = qj * g1
            v = labels[i, j]
            if v == 0:
                continue
            fj = np.float32(j)
            for k in range(n_rays):
                for n in range(n_steps):
                    ii = int(np.rint(fi + rows[k, n]))
                    jj = int(np.rint(fj + cols[k, n]))
                    if ii < 0 or ii >= h or jj < 0 or jj >= w or labels[ii, jj] != v:
                        out[qi, qj, k] = exit_dist[k, n]
                        break

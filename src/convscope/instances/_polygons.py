"""Polygon primitives shared by :mod:`convscope.instances.star` and :mod:`convscope.instances.nms`.

Plain numpy. A polygon set is an array ``coords`` of shape (N, 2, R): ``coords[n, 0]`` are the row (y)
and ``coords[n, 1]`` the column (x) coordinates of the R vertices of polygon ``n``, in pixel units where
the centre of pixel ``(r, c)`` is the point ``(r, c)`` (StarDist's ``dist_to_coord`` convention).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "crossing_overlaps",
    "polygon_areas",
    "rasterize_polygons",
    "ray_angles",
    "row_crossings",
]


def ray_angles(n_rays: int) -> np.ndarray:
    """Equiangular ray directions, as StarDist's ``ray_angles``.

    Parameters
    ----------
    n_rays : int
        Number of rays.

    Returns
    -------
    numpy.ndarray
        (n_rays,) float64, ``2 pi k / n_rays``. Ray ``k`` points along ``(row, col) = (sin, cos)`` of its angle.
    """
    return np.linspace(0, 2 * np.pi, n_rays, endpoint=False)


def polygon_areas(coords: np.ndarray) -> np.ndarray:
    """Areas of simple polygons (shoelace formula).

    Parameters
    ----------
    coords : numpy.ndarray
        (N, 2, R) float vertex coordinates (rows, cols).

    Returns
    -------
    numpy.ndarray
        (N,) float64 areas in pixels.
    """
    y = coords[:, 0, :].astype(np.float64)
    x = coords[:, 1, :].astype(np.float64)
    cross = y * np.roll(x, -1, axis=1) - x * np.roll(y, -1, axis=1)
    return 0.5 * np.abs(cross.sum(axis=1))


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for every (s, c); int64."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    begin = np.cumsum(counts) - counts
    return np.repeat(starts.astype(np.int64) - begin, counts) + np.arange(total, dtype=np.int64)


def _scanline_crossings(coords: np.ndarray, shape: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Edge crossings of every integer row, sorted by (polygon, row, x).

    An edge from ``y0`` to ``y1`` crosses row ``r`` when ``min(y0, y1) <= r < max(y0, y1)`` (half-open), so every
    (polygon, row) has an even number of crossings and consecutive pairs delimit the inside (even-odd rule).
    """
    n, _, n_rays = coords.shape
    y0 = coords[:, 0, :].astype(np.float64).ravel()
    x0 = coords[:, 1, :].astype(np.float64).ravel()
    y1 = np.roll(coords[:, 0, :], -1, axis=1).astype(np.float64).ravel()
    x1 = np.roll(coords[:, 1, :], -1, axis=1).astype(np.float64).ravel()
    lo = np.ceil(np.minimum(y0, y1))
    hi = np.ceil(np.maximum(y0, y1))
    if shape is not None:
        lo = np.clip(lo, 0, shape[0])
        hi = np.clip(hi, 0, shape[0])
    counts = np.maximum(hi - lo, 0).astype(np.int64)
    edge = np.repeat(np.arange(n * n_rays, dtype=np.int64), counts)
    row = _ranges(lo, counts)
    e_y0, e_x0 = y0[edge], x0[edge]
    x = e_x0 + (row - e_y0) * ((x1[edge] - e_x0) / (y1[edge] - e_y0))
    poly = edge // n_rays
    row_min = int(row.min()) if row.size else 0
    span = (int(row.max()) - row_min + 1) if row.size else 1
    order = np.lexsort((x, poly * span + (row - row_min)))
    return poly[order], row[order], x[order]


def rasterize_polygons(
    coords: np.ndarray, shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels whose centres lie inside each polygon (vectorised scanline fill, even-odd rule).

    A pixel centre ``(r, c)`` is inside when it lies between an entering and a leaving edge crossing of row ``r``,
    with the left crossing included and the right one excluded (``ceil(x_in) <= c < ceil(x_out)``), so polygons
    that share an edge do not share pixels. Works for any simple polygon (convex or not).

    Parameters
    ----------
    coords : numpy.ndarray
        (N, 2, R) float vertex coordinates (rows, cols); must be finite.
    shape : tuple of int, optional
        (H, W): keep only pixels inside the image. None: no clipping (coordinates may be negative).

    Returns
    -------
    ids, rows, cols : numpy.ndarray
        Three (P,) int64 arrays: for every covered pixel, the polygon index and the pixel coordinates,
        grouped by polygon (ascending) and row.
    """
    coords = np.asarray(coords)
    if coords.ndim != 3 or coords.shape[1] != 2:
        raise ValueError(f"coords must have shape (N, 2, n_rays), got {coords.shape}")
    if not np.all(np.isfinite(coords)):
        raise ValueError("coords must be finite")
    empty = np.zeros(0, np.int64)
    if coords.shape[0] == 0 or coords.shape[2] < 3:
        return empty, empty, empty
    poly, row, x = _scanline_crossings(coords, shape)
    if poly.size == 0:
        return empty, empty, empty
    c_in = np.ceil(x[0::2])
    c_out = np.ceil(x[1::2])
    if shape is not None:
        c_in = np.clip(c_in, 0, shape[1])
        c_out = np.clip(c_out, 0, shape[1])
    counts = np.maximum(c_out - c_in, 0).astype(np.int64)
    ids = np.repeat(poly[0::2], counts)
    rows = np.repeat(row[0::2], counts)
    cols = _ranges(c_in, counts)
    return ids, rows, cols


def row_crossings(
    edges: np.ndarray, orientation: np.ndarray, spacing: float, row_range: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where the edges of polygons cross the rows ``y = spacing * r`` (r integer), unsorted.

    Parameters
    ----------
    edges : numpy.ndarray
        (4, N, R) float64 ``y0, x0, y1, x1``: edge ``k`` of polygon ``n`` runs from ``(y0, x0)`` to ``(y1, x1)``.
    orientation : numpy.ndarray
        (N,) +1 or -1, the sign of each polygon's signed area.
    spacing : float
        Distance between rows (> 0).
    row_range : tuple of int, optional
        Only rows ``lo <= r < hi``.

    Returns
    -------
    ids, rows, x, entering : numpy.ndarray
        (C,) arrays: polygon index, row index, crossing column, and +1 where the row enters the polygon when
        going to larger x (-1 where it leaves). Half-open rule ``min(y0, y1) <= y < max(y0, y1)``.
    """
    y0, x0, y1, x1 = edges
    n, n_rays = y0.shape
    s0, s1 = y0 / spacing, y1 / spacing
    lo = np.ceil(np.minimum(s0, s1)).ravel()
    hi = np.ceil(np.maximum(s0, s1)).ravel()
    if row_range is not None:
        lo, hi = np.clip(lo, *row_range), np.clip(hi, *row_range)
    counts = (hi - lo).astype(np.int64)
    edge = np.repeat(np.arange(n * n_rays), counts)
    rows = _ranges(lo, counts)
    e_s0, e_x0 = s0.ravel()[edge], x0.ravel()[edge]
    x = e_x0 + (rows - e_s0) * ((x1.ravel()[edge] - e_x0) / (s1.ravel()[edge] - e_s0))
    ids = edge // n_rays
    entering = np.where(s1.ravel()[edge] > e_s0, 1.0, -1.0) * orientation[ids]
    return ids, rows, x, entering


def crossing_overlaps(
    one: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    many: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    n_many: int,
) -> np.ndarray:
    """Summed overlap length, over rows, of ONE polygon's cross-sections with each of ``n_many`` polygons.

    On a row, a polygon's indicator is ``sum_c e_c H(x - x_c)`` over its crossings (``e_c`` = +1 entering,
    -1 leaving, summing to 0), so the overlap length of two polygons on that row is
    ``-sum_{c, d} e_c e_d max(x_c, x_d)``: exact, for any simple polygons, without sorting crossings.

    Parameters
    ----------
    one, many : tuple of numpy.ndarray
        Outputs of :func:`row_crossings` with the same spacing (``one`` for a single polygon).
    n_many : int
        Number of polygons in ``many``.

    Returns
    -------
    numpy.ndarray
        (n_many,) float64 overlap lengths summed over rows (times the spacing: intersection areas).
    """
    _, row_a, x_a, e_a = one
    order = np.argsort(row_a, kind="stable")
    row_a, x_a, e_a = row_a[order], x_a[order], e_a[order]
    id_b, row_b, x_b, e_b = many
    lo = np.searchsorted(row_a, row_b, side="left")
    counts = np.searchsorted(row_a, row_b, side="right") - lo
    which_b = np.repeat(np.arange(len(row_b)), counts)
    which_a = _ranges(lo, counts)
    terms = -e_a[which_a] * e_b[which_b] * np.maximum(x_a[which_a], x_b[which_b])
    return np.bincount(id_b[which_b], weights=terms, minlength=n_many)

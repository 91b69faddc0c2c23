"""Synthetic phase-contrast bacteria with instance labels: the embedded default for segmentation demos and tests.

Every cell is a capsule (all points within half the cell width of a centre line). Centre lines are straight,
circular arcs (C-shaped cells) or S-shaped (curvature changing sign along the cell); cells are 10-60 px long and
6-12 px wide, in random orientations. Some cells are placed next to an existing one (side by side or end to end,
as in a microcolony) and some are dividing (one capsule split into two daughters), so images range from sparse
to crowded with many touching cells. Labels never overlap: a new cell only takes free pixels, and it is rejected
when it would lose more than a fifth of its area, fall apart into pieces, or end up smaller than
:data:`MIN_CELL_AREA` pixels.

Rendering imitates phase contrast: dark cell bodies with soft edges, a bright halo around them, a faint bright
line where two cells touch, smooth uneven illumination (tilt and vignetting), blur, then Poisson (shot) noise
and Gaussian read noise on a camera offset. All parameters vary per image. Pure numpy and deterministic: image
``i`` depends only on ``seed`` and ``i``, so ``make_synthetic_bacteria(8, seed=s)[0][:4]`` equals
``make_synthetic_bacteria(4, seed=s)[0]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

#: Smallest number of pixels a labelled cell (or each daughter of a dividing cell) has in the image.
MIN_CELL_AREA = 25
#: Camera offset added to 16-bit images (counts), as on a real sCMOS camera.
CAMERA_OFFSET = 100

_LENGTH_RANGE = (10.0, 60.0)  # total cell length, caps included (px)
_WIDTH_RANGE = (6.0, 12.0)
_MAX_OVERLAP = 0.2  # fraction of a new cell that may already be taken by older cells
_EDGE_REACH = 3.0  # px beyond a cell edge in which the soft edge is computed
_MAX_ATTEMPTS = 600  # cell proposals per image
_MAX_FAILURES = 100  # consecutive rejected proposals after which an image counts as full


@dataclass(frozen=True)
class _Style:
    """Per-image appearance and layout parameters."""

    width: float  # typical cell width (px)
    length: float  # typical cell length (px)
    p_curved: float  # probability that a cell is curved
    p_cluster: float  # probability that a cell is placed next to an existing one
    p_divide: float  # probability that a long cell is dividing
    darkness: float  # cell body darkness (fraction of the background)
    halo: float  # halo brightness (fraction of the background)
    halo_width: float  # px
    contact: float  # how much lighter a contact line between touching cells is (0..1 of the darkness)
    edge: float  # edge softness (px)
    blur: float  # gaussian sigma (px)
    photons: float  # background photons per pixel (sets the shot noise)
    read_noise: float  # gaussian read noise (counts)


@dataclass(frozen=True)
class _Cell:
    """A capsule: centre line nodes ``(K, 2)`` as (y, x), its radius (half width) and centre line length."""

    nodes: np.ndarray
    radius: float
    line: float

    @property
    def length(self) -> float:
        """Total length: centre line plus both caps."""
        return self.line + 2 * self.radius


class _Canvas:
    """The label image under construction plus the fields the renderer needs."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.labels = np.zeros(shape, np.int32)
        self.depth = np.zeros(shape, np.float32)  # inside a cell: distance to its capsule edge
        self.outside = np.full(shape, np.float32(_EDGE_REACH))  # distance to the nearest edge, capped
        self.darkness = np.zeros(shape, np.float32)  # per-cell body darkness, on cell pixels
        self.cells: list[_Cell] = []
        self.n_labels = 0
        self.area = 0


def make_synthetic_bacteria(
    n: int,
    *,
    size: tuple[int, int] = (256, 256),
    density: float | tuple[float, float] = (0.1, 0.45),
    seed: int = 0,
    dtype: Literal["uint16", "uint8"] = "uint16",
) -> tuple[np.ndarray, np.ndarray]:
    """Generate phase-contrast-like images of rod-shaped and curved bacteria with instance labels.

    Parameters
    ----------
    n : int
        Number of images.
    size : (int, int)
        Image (height, width) in pixels, each at least 32.
    density : float or (float, float)
        Target fraction of pixels covered by cells, in (0, 0.7]; a pair draws one value per image uniformly
        from that range. Crowded images (about 0.35 and up) have many touching cells. The reached fraction
        can fall short of the target when no more cells fit.
    seed : int
        Image ``i`` depends only on ``seed`` and ``i``.
    dtype : {"uint16", "uint8"}
        ``uint16``: camera counts (offset :data:`CAMERA_OFFSET` plus a few hundred to a few thousand photons);
        ``uint8``: background around 100, never saturating except for rare noise peaks.

    Returns
    -------
    images : ndarray, shape (N, H, W), dtype uint16 or uint8
        Axes "NYX", raw intensities (normalise explicitly before training).
    labels : ndarray, shape (N, H, W), dtype uint16
        Instance labels: 0 background, cells ``1..K`` per image (sequential, in the order they were placed),
        each one 4-connected, with at least :data:`MIN_CELL_AREA` pixels.
    """
    height, width, low, high = check_generator_options(n, size, density, dtype, min_n=0, max_density=0.7)
    images = np.empty((n, height, width), dtype)
    labels = np.empty((n, height, width), np.uint16)
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        rng = np.random.default_rng(child)
        style = _draw_style(rng)
        canvas = _place_cells(rng, (height, width), style, float(rng.uniform(low, high)))
        images[i] = _render(rng, canvas, style, dtype)
        labels[i] = canvas.labels
    return images, labels


def check_generator_options(n: int, size: tuple[int, int], density: float | tuple[float, float], dtype: str, *,
                            min_n: int, max_density: float) -> tuple[int, int, float, float]:
    """Checked options of a synthetic-image generator: (height, width, density low, density high).

    Raises
    ------
    ValueError
        ``n < min_n``, a side below 32 pixels, a dtype other than uint16/uint8, or a density range outside
        (0, ``max_density``].
    """
    height, width = (int(v) for v in size)
    if n < min_n or height < 32 or width < 32:
        raise ValueError(f"need n >= {min_n} and size >= (32, 32), got n={n}, size={size}")
    if dtype not in ("uint16", "uint8"):
        raise ValueError(f"dtype must be 'uint16' or 'uint8', got {dtype!r}")
    low, high = (density, density) if np.isscalar(density) else density  # type: ignore[misc]
    if not 0.0 < low <= high <= max_density:
        raise ValueError(f"density must be in (0, {max_density:g}] (a value or a (low, high) range), got {density}")
    return height, width, float(low), float(high)


def foreground(labels: np.ndarray) -> np.ndarray:
    """Foreground mask of a label image.

    Parameters
    ----------
    labels : ndarray of int, any shape
        Instance (or class) labels, 0 = background.

    Returns
    -------
    ndarray of bool, same shape
        True where ``labels > 0``.
    """
    return np.asarray(labels) > 0


# ---------------------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------------------

def _draw_style(rng: np.random.Generator) -> _Style:
    return _Style(
        width=rng.uniform(6.5, 11.0), length=rng.uniform(16.0, 44.0), p_curved=rng.uniform(0.15, 0.6),
        p_cluster=rng.uniform(0.3, 0.85), p_divide=rng.uniform(0.05, 0.3), darkness=rng.uniform(0.35, 0.6),
        halo=rng.uniform(0.3, 0.7), halo_width=rng.uniform(1.5, 3.0), contact=rng.uniform(0.15, 0.6),
        edge=rng.uniform(0.3, 0.6), blur=rng.uniform(0.6, 1.4), photons=rng.uniform(300.0, 3000.0),
        read_noise=rng.uniform(2.0, 8.0),
    )


def _place_cells(rng: np.random.Generator, shape: tuple[int, int], style: _Style, density: float) -> _Canvas:
    """Propose cells until ``density`` of the image is covered or the attempts run out."""
    canvas = _Canvas(shape)
    target = density * shape[0] * shape[1]
    failures = 0
    for _ in range(_MAX_ATTEMPTS):
        if canvas.area >= target or failures >= _MAX_FAILURES:
            break
        cell = _propose(rng, canvas, style)
        split = rng.uniform(-0.1, 0.1) if cell.length >= 26 and rng.random() < style.p_divide else None
        added = _try_add(canvas, cell, split, style.darkness * rng.uniform(0.85, 1.15))
        failures = 0 if added else failures + 1
    return canvas


def _propose(rng: np.random.Generator, canvas: _Canvas, style: _Style) -> _Cell:
    """A random cell: free-standing, or next to a random existing cell (side by side or end to end)."""
    width = _clip(style.width * rng.uniform(0.88, 1.12), *_WIDTH_RANGE)
    length = _clip(rng.normal(style.length, 0.25 * style.length), max(_LENGTH_RANGE[0], width), _LENGTH_RANGE[1])
    radius, line = width / 2, length - width
    if canvas.cells and rng.random() < style.p_cluster:
        neighbour = canvas.cells[rng.integers(len(canvas.cells))]
        centre, heading = _next_to(rng, neighbour, radius, line)
    else:
        centre = rng.uniform((0.0, 0.0), canvas.shape)
        heading = rng.uniform(0.0, 2 * np.pi)
    k0, k1 = _curvature(rng, style, radius, line)
    return _Cell(_centre_line(centre, heading, line, k0, k1), radius, line)


def _clip(value: float, low: float, high: float) -> float:
    return min(max(float(value), low), high)


def _next_to(rng: np.random.Generator, cell: _Cell, radius: float, line: float) -> tuple[np.ndarray, float]:
    """Centre and heading of a new cell touching ``cell``."""
    nodes = cell.nodes
    if len(nodes) > 1 and rng.random() < 0.65:  # side by side, roughly parallel
        j = rng.integers(len(nodes) - 1)
        t = rng.uniform(0.0, 1.0)
        point = nodes[j] + t * (nodes[j + 1] - nodes[j])
        direction = _unit(nodes[j + 1] - nodes[j])
        normal = np.array([-direction[1], direction[0]]) * rng.choice([-1.0, 1.0])
        gap = (cell.radius + radius) * rng.uniform(0.9, 1.05)
        centre = point + normal * gap + direction * rng.uniform(-0.3, 0.3) * line
        heading = np.arctan2(direction[0], direction[1]) + rng.normal(0.0, 0.15)
    else:  # end to end, as after a division
        end = rng.integers(2)
        tip, before = (nodes[0], nodes[min(1, len(nodes) - 1)]) if end == 0 else (nodes[-1], nodes[-2 if len(
            nodes) > 1 else -1])
        direction = _unit(tip - before) if len(nodes) > 1 else _unit(rng.normal(size=2))
        centre = tip + direction * ((cell.radius + radius) * rng.uniform(0.85, 1.0) + line / 2)
        heading = np.arctan2(direction[0], direction[1]) + rng.normal(0.0, 0.25)
    return centre, float(heading)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.hypot(*v))
    return v / norm if norm > 1e-9 else np.array([0.0, 1.0])


def _curvature(rng: np.random.Generator, style: _Style, radius: float, line: float) -> tuple[float, float]:
    """(k0, k1) of the curvature ``k(s) = k0 + k1 s`` along the centre line; (0, 0) for straight cells."""
    if line < 8 or rng.random() >= style.p_curved:
        return 0.0, 0.0
    turn = rng.uniform(0.5, 1.8) * rng.choice([-1.0, 1.0])  # total change of direction (radians)
    limit = 1.0 / (radius + 1.5)  # the inner side of the bend must not fold over
    if rng.random() < 0.7:  # C-shaped: constant curvature
        return _clip(turn / line, -limit, limit), 0.0
    k1 = 4 * turn / line**2  # S-shaped: curvature changes sign at the middle
    return 0.0, _clip(k1, -2 * limit / line, 2 * limit / line)


def _centre_line(centre: np.ndarray, heading: float, line: float, k0: float, k1: float) -> np.ndarray:
    """Nodes ``(K, 2)`` (y, x) of a centre line of length ``line`` through ``centre``."""
    if k0 == 0.0 and k1 == 0.0:
        half = 0.5 * line * np.array([np.sin(heading), np.cos(heading)])
        return np.stack([centre - half, centre + half])
    n_seg = max(2, int(np.ceil(line / 4)))
    n_seg += n_seg % 2  # even, so the middle node is the centre
    fine = 4 * n_seg
    s = np.linspace(-line / 2, line / 2, fine + 1)
    theta = heading + k0 * s + k1 * s**2 / 2
    ds = line / fine
    mid = (theta[:-1] + theta[1:]) / 2
    steps = np.stack([np.sin(mid), np.cos(mid)], axis=1) * ds
    points = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    points += centre - points[fine // 2]
    return points[::4]


# ---------------------------------------------------------------------------------------------------------
# Drawing one cell into the canvas
# ---------------------------------------------------------------------------------------------------------

def _window(cell: _Cell, shape: tuple[int, int], reach: float) -> tuple[slice, slice] | None:
    """Bounding box of the cell plus ``reach`` px, clipped to the image; None when outside."""
    low = np.floor(cell.nodes.min(axis=0) - cell.radius - reach).astype(int)
    high = np.ceil(cell.nodes.max(axis=0) + cell.radius + reach).astype(int) + 1
    y0, x0 = max(low[0], 0), max(low[1], 0)
    y1, x1 = min(high[0], shape[0]), min(high[1], shape[1])
    if y1 <= y0 or x1 <= x0:
        return None
    return slice(y0, y1), slice(x0, x1)


def _polyline_distance(nodes: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of pixel centres to a polyline and the arc length of their nearest point on it.

    Parameters
    ----------
    nodes : ndarray, shape (K, 2), float
        (y, x) nodes; K >= 2.
    ys, xs : ndarray, shape (h,) and (w,), float
        Pixel centre coordinates.

    Returns
    -------
    dist, arc : ndarray, shape (h, w), float32
        Euclidean distance, and arc length from the middle of the line (negative towards the first node).
    """
    a, d = nodes[:-1], np.diff(nodes, axis=0)
    seg_len = np.hypot(d[:, 0], d[:, 1])
    col = lambda v: v.astype(np.float32)[:, None, None]  # noqa: E731
    py = ys.astype(np.float32)[None, :, None] - col(a[:, 0])
    px = xs.astype(np.float32)[None, None, :] - col(a[:, 1])
    dy, dx = col(d[:, 0]), col(d[:, 1])
    t = np.clip((py * dy + px * dx) / col(np.maximum(seg_len**2, 1e-12)), 0.0, 1.0)
    dist2 = (py - t * dy) ** 2 + (px - t * dx) ** 2
    start = (np.concatenate([[0.0], np.cumsum(seg_len)[:-1]]) - seg_len.sum() / 2).astype(np.float32)
    if len(d) == 1:
        return np.sqrt(dist2[0]), start[0] + t[0] * np.float32(seg_len[0])
    nearest = np.argmin(dist2, axis=0)
    rows, cols = np.indices(nearest.shape, sparse=True)
    dist = np.sqrt(dist2[nearest, rows, cols])
    arc = start[nearest] + t[nearest, rows, cols] * seg_len.astype(np.float32)[nearest]
    return dist, arc


def _try_add(canvas: _Canvas, cell: _Cell, split: float | None, darkness: float) -> bool:
    """Label the free pixels of ``cell`` (two daughters when ``split`` is given); False if rejected."""
    window = _window(cell, canvas.shape, _EDGE_REACH)
    if window is None or _centre_line_taken(canvas, cell):
        return False
    low, high = cell.nodes.min(axis=0) - cell.radius, cell.nodes.max(axis=0) + cell.radius
    clipped = bool((low < 0).any() or (high > np.array(canvas.shape)).any())
    ys = np.arange(window[0].start, window[0].stop) + 0.5
    xs = np.arange(window[1].start, window[1].stop) + 0.5
    dist, arc = _polyline_distance(cell.nodes, ys, xs)
    inside = dist <= cell.radius
    n_inside = int(inside.sum())
    free = inside & (canvas.labels[window] == 0)
    n_taken = n_inside - int(free.sum())
    if n_inside < MIN_CELL_AREA or n_taken > _MAX_OVERLAP * n_inside:
        return False
    if split is None:
        parts = [free]
    else:
        cut = split * cell.line
        parts = [free & (arc < cut), free & (arc >= cut)]
    # a convex (straight) capsule cut by the image border stays connected; anything else is checked
    check = n_taken > 0 or (clipped and len(cell.nodes) > 2)
    if any(part.sum() < MIN_CELL_AREA or (check and not _is_connected(part)) for part in parts):
        return False
    labels, depth, dark = canvas.labels[window], canvas.depth[window], canvas.darkness[window]
    for part in parts:
        canvas.n_labels += 1
        labels[part] = canvas.n_labels
        depth[part] = (cell.radius - dist)[part]
        dark[part] = darkness
        canvas.area += int(part.sum())
    np.minimum(canvas.outside[window], dist - cell.radius, out=canvas.outside[window])
    canvas.cells.append(cell)
    return True


def _centre_line_taken(canvas: _Canvas, cell: _Cell) -> bool:
    """True if a node of the centre line falls on an existing cell (a cheap test before drawing)."""
    yx = np.floor(cell.nodes).astype(int)
    yx = yx[((yx >= 0) & (yx < np.array(canvas.shape))).all(axis=1)]
    return bool(canvas.labels[yx[:, 0], yx[:, 1]].any())


def _is_connected(mask: np.ndarray) -> bool:
    """True if the True pixels of a small 2-D mask form one 4-connected component (False if empty).

    Every pixel starts with its own number; numbers spread as the minimum over runs of True pixels,
    alternately along rows and columns, until nothing changes. Capsules settle in a few sweeps.
    """
    ys, xs = np.nonzero(mask)  # row-major order
    if ys.size == 0:
        return False
    row_runs = _run_starts(ys, xs)
    to_columns = np.lexsort((ys, xs))  # column-major order of the same pixels
    column_runs = _run_starts(xs[to_columns], ys[to_columns])
    values = np.arange(ys.size)
    while True:
        spread = _run_minimum(values, row_runs)
        spread[to_columns] = _run_minimum(spread[to_columns], column_runs)
        if np.array_equal(spread, values):
            return bool((spread == spread[0]).all())
        values = spread


def _run_starts(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """Starts of runs of pixels sorted by (major, minor): same ``major``, consecutive ``minor``."""
    start = np.ones(major.size, bool)
    start[1:] = (major[1:] != major[:-1]) | (minor[1:] != minor[:-1] + 1)
    return np.flatnonzero(start)


def _run_minimum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Every element replaced by the minimum of its run."""
    counts = np.diff(np.append(starts, values.size))
    return np.repeat(np.minimum.reduceat(values, starts), counts)


# ---------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------

def _render(rng: np.random.Generator, canvas: _Canvas, style: _Style, dtype: str) -> np.ndarray:
    """Phase-contrast-like image (H, W) of the canvas, with illumination, blur and noise."""
    cell = canvas.labels > 0
    signed = np.where(cell, canvas.depth, -canvas.outside)  # distance to the nearest edge, positive inside
    body = (1.0 / (1.0 + np.exp(-np.clip(signed, -_EDGE_REACH, None) / style.edge))).astype(np.float32)
    darkness = np.where(cell, canvas.darkness, style.darkness)
    darkness = darkness * (1.0 - style.contact * _contacts(canvas.labels))
    # the halo is a low-pass copy of the cells, seen outside them (as in a phase-contrast optical model)
    halo = style.halo * (1.0 - body) * np.minimum(2.0 * _gaussian_blur(body, style.halo_width), 1.0)
    image = (1.0 - darkness * body + halo).astype(np.float32)
    image = _gaussian_blur(image, style.blur)
    image *= _illumination(rng, canvas.shape)
    counts = rng.poisson(np.maximum(image, 0.0) * style.photons).astype(np.float32)
    counts += rng.normal(0.0, style.read_noise, counts.shape).astype(np.float32)
    if dtype == "uint8":
        values = counts * (rng.uniform(85.0, 115.0) / style.photons)
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return np.clip(np.rint(counts + CAMERA_OFFSET), 0, 65535).astype(np.uint16)


def _contacts(labels: np.ndarray) -> np.ndarray:
    """(H, W) float32: 1 on cell pixels with a 4-neighbour in another cell, else 0."""
    out = np.zeros(labels.shape, np.float32)
    for axis in (0, 1):
        a = labels[:-1, :] if axis == 0 else labels[:, :-1]
        b = labels[1:, :] if axis == 0 else labels[:, 1:]
        touch = (a != b) & (a > 0) & (b > 0)
        if axis == 0:
            out[:-1, :][touch] = 1.0
            out[1:, :][touch] = 1.0
        else:
            out[:, :-1][touch] = 1.0
            out[:, 1:][touch] = 1.0
    return out


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable gaussian blur of an (H, W) float32 image, reflecting at the borders."""
    radius = max(1, int(np.ceil(3 * sigma)))
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    for axis in (0, 1):
        padded = np.pad(image, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="reflect")
        n = image.shape[axis]
        out = np.zeros_like(image)
        for k, weight in enumerate(kernel):
            out += weight * (padded[k:k + n] if axis == 0 else padded[:, k:k + n])
        image = out
    return image


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Smooth multiplicative field (H, W) float32: a tilt plus vignetting around an off-centre point."""
    y = np.linspace(-0.5, 0.5, shape[0], dtype=np.float32)[:, None]
    x = np.linspace(-0.5, 0.5, shape[1], dtype=np.float32)[None, :]
    tilt = 1.0 + rng.uniform(-0.3, 0.3) * y + rng.uniform(-0.3, 0.3) * x
    cy, cx = rng.uniform(-0.2, 0.2, 2)
    vignette = 1.0 - rng.uniform(0.0, 0.35) * ((y - cy) ** 2 + (x - cx) ** 2) / 0.5
    return (tilt * vignette).astype(np.float32)

"""Synthetic fluorescence nuclei with instance labels: the embedded default for star-convex instance segmentation.

Every nucleus is a filled ellipse (semi-axes 3-18 px, aspect ratio up to 2, random orientation), hence star-convex
as StarDist assumes. As in the fluorescence images of DSB 2018, images range from sparse to crowded: some nuclei are
placed next to an existing one so that the two ellipses overlap a little, and each pixel of an overlap goes to the
nucleus with the smaller normalised ellipse distance, which draws a boundary line between the touching pair. Nuclei
may be cut by the image border; no nucleus covers the centre of another, and pieces smaller than
:data:`MIN_NUCLEUS_AREA` pixels are dropped.

Rendering imitates widefield fluorescence: each nucleus has its own brightness, a smooth texture and a dimmer rim,
on a dark background with an offset and a gentle gradient; then blur (PSF), shot and read noise (Gaussian with the
Poisson variance plus the read noise variance: much cheaper than Poisson draws). All parameters vary per image.
Deterministic: image ``i`` depends only on ``seed`` and ``i``, so ``make_synthetic_nuclei(8, seed=s)[0][:4]``
equals ``make_synthetic_nuclei(4, seed=s)[0]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from convscope.datasets.bacteria import CAMERA_OFFSET, check_generator_options

#: Smallest number of pixels of a labelled nucleus (smaller pieces, e.g. cut by the border, are dropped).
MIN_NUCLEUS_AREA = 12

_AXIS_RANGE = (3.0, 18.0)  # semi-axes (px)
_RADIUS_RANGE = (6.0, 12.0)  # typical equivalent radius sqrt(a * b) per image (px)
_COUNT_RANGE = (10.0, 60.0)  # typical number of nuclei per 256 x 256 pixels
_MAX_TAKEN = 0.3  # fraction of a new nucleus that may already belong to older ones
_MAX_ATTEMPTS = 300  # proposals per image
_MAX_FAILURES = 40  # consecutive rejected proposals after which an image counts as full


@dataclass(frozen=True)
class _Style:
    """Per-image appearance and layout parameters."""

    radius: float  # typical equivalent radius (px)
    p_touch: float  # probability that a nucleus is placed next to an existing one
    p_tiny: float  # probability of a tiny nucleus (micronucleus, debris)
    spread: float  # log-normal sigma of the per-nucleus brightness
    rim: float  # relative dimming at the rim
    texture: float  # relative texture amplitude
    grain: float  # texture length scale (px)
    background: float  # background level, relative to a typical nucleus
    blur: float  # PSF gaussian sigma (px)
    photons: float  # photons per pixel of a typical nucleus (sets the shot noise)
    read_noise: float  # gaussian read noise (counts)


def make_synthetic_nuclei(
    n: int,
    *,
    size: tuple[int, int] = (256, 256),
    density: float | tuple[float, float] = (0.05, 0.3),
    seed: int = 0,
    dtype: Literal["uint16", "uint8"] = "uint16",
) -> tuple[np.ndarray, np.ndarray]:
    """Generate fluorescence-like images of touching nuclei (ellipses) with instance labels.

    Parameters
    ----------
    n : int
        Number of images, at least 1.
    size : (int, int)
        Image (height, width) in pixels, each at least 32.
    density : float or (float, float)
        Target fraction of pixels covered by nuclei, in (0, 0.5]; a pair draws one value per image uniformly from
        that range. The nucleus size is drawn per image so that a 256 x 256 image holds roughly 10-60 nuclei
        (proportionally more or fewer for other sizes).
    seed : int
        Image ``i`` depends only on ``seed`` and ``i``.
    dtype : {"uint16", "uint8"}
        ``uint16``: camera counts (offset :data:`CAMERA_OFFSET` plus up to a few thousand photons); ``uint8``:
        scaled per image so that the brightest nucleus stays below 255, background around 5-40.

    Returns
    -------
    images : ndarray, shape (N, H, W), dtype uint16 or uint8
        Axes "NYX", raw intensities (normalise explicitly before training); nuclei bright on dark background.
    labels : ndarray, shape (N, H, W), dtype uint16
        Instance labels: 0 background, nuclei ``1..K`` per image (sequential), each one 4-connected and
        star-convex, with at least :data:`MIN_NUCLEUS_AREA` pixels.
    """
    height, width, low, high = check_generator_options(n, size, density, dtype, min_n=1, max_density=0.5)
    images, labels = np.empty((n, height, width), dtype), np.empty((n, height, width), np.uint16)
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(n)):
        rng = np.random.default_rng(child)
        target = float(rng.uniform(low, high))
        style = _draw_style(rng, target, height * width)
        labels[i], depth = _place_nuclei(rng, (height, width), style, target)
        images[i] = _render(rng, labels[i], depth, style, dtype)
    return images, labels


def _draw_style(rng: np.random.Generator, density: float, area: int) -> _Style:
    count = max(rng.uniform(*_COUNT_RANGE) * area / 65536, 1.0)
    radius = float(np.clip(np.sqrt(density * area / (np.pi * count)), *_RADIUS_RANGE))
    return _Style(
        radius=radius, p_touch=rng.uniform(0.25, 0.75), p_tiny=rng.uniform(0.0, 0.06), spread=rng.uniform(0.1, 0.4),
        rim=rng.uniform(0.15, 0.45), texture=rng.uniform(0.05, 0.25), grain=rng.uniform(1.0, 2.5),
        background=rng.uniform(0.03, 0.15), blur=rng.uniform(0.6, 1.5), photons=rng.uniform(80.0, 2000.0),
        read_noise=rng.uniform(1.0, 6.0),
    )


def _ellipse_distance(e: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Normalised distance (< 1 inside) of points (y, x) to ellipse(s) ``e = (cy, cx, a, b, theta)`` (broadcast)."""
    dy, dx = y - e[0], x - e[1]
    cos, sin = np.cos(e[4]), np.sin(e[4])
    return np.sqrt(((dx * cos + dy * sin) / e[2]) ** 2 + ((dy * cos - dx * sin) / e[3]) ** 2)


def _reach(e: np.ndarray, phi: float) -> float:
    """Distance from the centre of ellipse ``e`` to its edge in direction ``phi`` ((sin, cos) as (y, x))."""
    rel = phi - e[4]
    return float(1.0 / np.hypot(np.cos(rel) / e[2], np.sin(rel) / e[3]))


def _propose(rng: np.random.Generator, shape: tuple[int, int], style: _Style, nuclei: list[np.ndarray]) -> np.ndarray:
    """A random ellipse ``(cy, cx, a, b, theta)``: free-standing or overlapping a random existing one a little."""
    radius = rng.uniform(2.5, 4.0) if rng.random() < style.p_tiny else style.radius * rng.lognormal(0.0, 0.2)
    aspect = np.sqrt(1.0 + rng.beta(1.2, 2.5))  # a / b = aspect**2 in [1, 2]
    a, b = (min(max(v, _AXIS_RANGE[0]), _AXIS_RANGE[1]) for v in (radius * aspect, radius / aspect))
    e = np.array([0.0, 0.0, a, b, rng.uniform(0.0, np.pi)])
    if nuclei and rng.random() < style.p_touch:
        other = nuclei[rng.integers(len(nuclei))]
        phi = rng.uniform(0.0, 2 * np.pi)
        gap = (_reach(other, phi) + _reach(e, phi)) * rng.uniform(0.8, 0.97)
        e[:2] = other[:2] + gap * np.array([np.sin(phi), np.cos(phi)])
    else:
        e[:2] = rng.uniform((0.0, 0.0), shape)
    return e


class _Canvas:
    """The labels under construction, each owner's normalised ellipse distance, the nuclei and their centres."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.labels, self.dist = np.zeros(shape, np.int32), np.full(shape, np.inf, np.float32)
        self.centres, self.nuclei, self.damaged = np.zeros(shape, bool), list[np.ndarray](), set[int]()


def _place_nuclei(
    rng: np.random.Generator, shape: tuple[int, int], style: _Style, density: float
) -> tuple[np.ndarray, np.ndarray]:
    """Label image (H, W) uint16 and normalised ellipse distance (H, W) float32 (1 on background)."""
    canvas = _Canvas(shape)
    covered, target, failures = 0, density * shape[0] * shape[1], 0
    for _ in range(_MAX_ATTEMPTS):
        if covered >= target or failures >= _MAX_FAILURES:
            break
        added = _try_add(canvas, _propose(rng, shape, style, canvas.nuclei))
        failures = 0 if added >= 0 else failures + 1
        covered += max(added, 0)
    labels = _finish(canvas.labels, canvas.damaged)
    return labels, np.where(labels > 0, canvas.dist, np.float32(1.0))


def _try_add(canvas: _Canvas, e: np.ndarray) -> int:
    """Draw ellipse ``e`` where it is nearer than the owner: newly covered pixels, or -1 if rejected (centre taken,
    covers an older centre, too much of it taken, or too little of it in the image)."""
    (h, w), (cy, cx) = canvas.labels.shape, (int(np.floor(e[0])), int(np.floor(e[1])))
    if 0 <= cy < h and 0 <= cx < w and canvas.labels[cy, cx]:
        return -1
    reach = int(np.ceil(e[2])) + 1
    window = (slice(max(cy - reach, 0), min(cy + reach + 2, h)), slice(max(cx - reach, 0), min(cx + reach + 2, w)))
    ys = np.arange(window[0].start, window[0].stop, dtype=np.float32)[:, None]
    d = _ellipse_distance(e, ys, np.arange(window[1].start, window[1].stop, dtype=np.float32))
    inside = d < 1
    owner, best = canvas.labels[window], canvas.dist[window]
    n_inside, n_taken = int(inside.sum()), int(np.count_nonzero(owner[inside]))
    if n_inside - n_taken < MIN_NUCLEUS_AREA or n_taken > _MAX_TAKEN * n_inside or canvas.centres[window][inside].any():
        return -1
    won = inside & (d < best)
    if n_taken:
        canvas.damaged.update(np.unique(owner[won]).tolist())
    canvas.nuclei.append(e)
    owner[won], best[won] = len(canvas.nuclei), d[won]
    if 0 <= cy < h and 0 <= cx < w:
        canvas.centres[cy, cx] = True
    return n_inside - n_taken


def _finish(labels: np.ndarray, damaged: set[int]) -> np.ndarray:
    """Keep the largest 4-connected piece of damaged nuclei, drop small ones, relabel ``1..K`` (uint16)."""
    boxes = ndimage.find_objects(labels)
    for k in damaged - {0}:
        if boxes[k - 1] is None:
            continue
        window = labels[boxes[k - 1]]
        pieces, n_pieces = ndimage.label(window == k)
        if n_pieces > 1:
            window[(pieces > 0) & (pieces != np.argmax(np.bincount(pieces.ravel())[1:]) + 1)] = 0
    keep = (np.bincount(labels.ravel(), minlength=len(boxes) + 1) >= MIN_NUCLEUS_AREA) & (np.arange(len(boxes) + 1) > 0)
    lut = np.zeros(keep.size, np.uint16)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    return lut[labels]


def _render(rng: np.random.Generator, labels: np.ndarray, dist: np.ndarray, style: _Style, dtype: str) -> np.ndarray:
    """Fluorescence-like image (H, W) of the labels: textured nuclei with dim rims, background, blur and noise."""
    h, w = labels.shape
    brightness = rng.lognormal(-style.spread**2 / 2, style.spread, int(labels.max()) + 1).astype(np.float32)
    brightness[0] = 0.0  # background
    grain = ndimage.gaussian_filter(rng.standard_normal((h, w), np.float32), style.grain)
    texture = np.maximum(1.0 + style.texture * 2 * np.sqrt(np.pi) * style.grain * grain, 0.2)
    tilt = rng.uniform(-0.3, 0.3, 2)  # background gradient along y and x
    background = style.background * (1.0 + tilt[0] * np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
                                      + tilt[1] * np.linspace(-0.5, 0.5, w, dtype=np.float32))
    image = brightness[labels] * (1.0 - style.rim * dist**2) * texture + background
    image = ndimage.gaussian_filter(image, style.blur)
    photons = image * style.photons  # shot and read noise: gaussian with variance photons + read_noise**2
    counts = photons + np.sqrt(photons + style.read_noise**2) * rng.standard_normal(image.shape, np.float32)
    if dtype == "uint8":
        peak = (brightness.max() * (1.0 + 2 * style.texture) + 1.3 * style.background) * style.photons
        return np.clip(np.rint(counts * (rng.uniform(200.0, 240.0) / peak)), 0, 255).astype(np.uint8)
    return np.clip(np.rint(counts + CAMERA_OFFSET), 0, 65535).astype(np.uint16)

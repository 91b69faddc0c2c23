"""Synthetic brightfield cell crops: a small, offline stand-in for the red-blood-cell data set.

Each crop shows one dark cell on a lighter background. ``normal`` cells are round or slightly elliptical
discs, most with a central pallor; ``abnormal`` cells are deformed: spiky (echinocyte / burr cell),
teardrop (dacrocyte) or elongated and possibly bent (elliptocyte / sickle cell). Size, position,
rotation, contrast, background, blur and noise vary in both classes, so the class is in the outline,
not in the mean intensity. Everything is vectorised numpy and deterministic per seed.
"""

from __future__ import annotations

import numpy as np

from convscope.datasets.base import ImageSet

SYNTHETIC_CLASSES: tuple[str, ...] = ("abnormal", "normal")
_ABNORMAL, _NORMAL = 0, 1
_SPIKY, _TEARDROP, _ELONGATED = 0, 1, 2


def make_synthetic_cells(n: int, *, size: int = 40, seed: int = 0) -> ImageSet:
    """Generate ``n`` crops of one cell each, classes balanced (``abnormal`` gets the odd one).

    Parameters
    ----------
    n : int
        Number of crops.
    size : int
        Crop height and width in pixels (at least 16).
    seed : int
        Seed of the generator; the same (n, size, seed) always gives the same crops.

    Returns
    -------
    ImageSet
        Images ``(n, size, size, 1)`` uint8, labels int64 (0 = abnormal, 1 = normal), class names
        ``("abnormal", "normal")``, paths ``"synthetic_cells:<seed>/<index>"``.
    """
    if n < 1 or size < 16:
        raise ValueError(f"need n >= 1 and size >= 16, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2 == 1).astype(np.int64)  # 1 = normal
    params = _draw_shapes(rng, labels, size)
    dist, radius = _normalised_distance(params, size)
    images = _render(rng, params, dist, radius)
    images = _blur(images, rng.uniform(0.4, 1.1, n))
    images += rng.normal(0.0, 1.0, images.shape).astype(np.float32) * rng.uniform(2.0, 7.0, (n, 1, 1)).astype(
        np.float32)
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8)[..., None]
    paths = tuple(f"synthetic_cells:{seed}/{i}" for i in range(n))
    return ImageSet(images, labels, SYNTHETIC_CLASSES, paths)


def _draw_shapes(rng: np.random.Generator, labels: np.ndarray, size: int) -> dict[str, np.ndarray]:
    """Per-cell shape parameters, each an (n,) array."""
    n = len(labels)
    normal = labels == _NORMAL
    kind = rng.integers(0, 3, n)
    spiky, tear, long_ = (~normal & (kind == k) for k in (_SPIKY, _TEARDROP, _ELONGATED))
    p = {
        "radius": rng.uniform(0.25, 0.33, n) * size,
        "cx": size / 2 + rng.uniform(-0.05, 0.05, n) * size,
        "cy": size / 2 + rng.uniform(-0.05, 0.05, n) * size,
        "angle": rng.uniform(0.0, 2 * np.pi, n),
        # axis ratio: normal discs up to 1.2, elongated cells 1.7-3.0
        "ratio": np.where(long_, rng.uniform(1.7, 3.0, n), rng.uniform(1.0, 1.2, n)),
        "bend": np.where(long_ & (rng.random(n) < 0.5), rng.uniform(0.2, 0.6, n), 0.0),
        "spikes": np.where(spiky, rng.integers(6, 12, n), 0).astype(np.float64),
        "spike_amp": np.where(spiky, rng.uniform(0.15, 0.3, n), 0.0),
        "tail": np.where(tear, rng.uniform(0.5, 0.9, n), 0.0),
        "tail_width": rng.uniform(0.25, 0.45, n),
        "wobble": rng.uniform(0.0, 0.04, n),
        "wobble_phase": rng.uniform(0.0, 2 * np.pi, (n, 2)),
        # central pallor: clear in normal discs, faint or absent in deformed cells
        "pallor": np.where(normal, rng.uniform(0.3, 0.6, n), rng.uniform(0.0, 0.35, n)),
        "edge": rng.uniform(0.5, 1.4, n),
    }
    return p


def _normalised_distance(p: dict[str, np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, size, size) distance from the centre divided by the outline radius at that angle, and radius."""
    coords = np.arange(size, dtype=np.float32) + 0.5
    col = lambda a: a.astype(np.float32)[:, None, None]  # noqa: E731
    dx, dy = coords[None, None, :] - col(p["cx"]), coords[None, :, None] - col(p["cy"])
    cos, sin = np.cos(col(p["angle"])), np.sin(col(p["angle"]))
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    radius = col(p["radius"])
    v = v - col(p["bend"]) * u**2 / radius  # bent (sickle-like) cells
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    ratio = np.sqrt(col(p["ratio"]))
    a, b = radius * ratio, radius / ratio  # semi-axes with the area of the disc
    outline = a * b / np.sqrt((b * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2)
    spikes = ((np.cos(col(p["spikes"]) * theta) + 1) / 2) ** 3
    tail = np.exp(-((theta / col(p["tail_width"])) ** 2))
    phase = p["wobble_phase"]
    wobble = (np.cos(3 * theta + col(phase[:, 0])) + np.cos(5 * theta + col(phase[:, 1]))) / 2
    outline = outline * (1 + col(p["spike_amp"]) * spikes + col(p["tail"]) * tail + col(p["wobble"]) * wobble)
    return rho / outline, radius


def _render(rng: np.random.Generator, p: dict[str, np.ndarray], dist: np.ndarray,
            radius: np.ndarray) -> np.ndarray:
    """Dark cell with a soft edge and optional central pallor on a lightly shaded background."""
    n, size = dist.shape[0], dist.shape[1]
    col = lambda a: np.asarray(a, dtype=np.float32)[:, None, None]  # noqa: E731
    body = 0.5 * (1 + np.tanh((1 - dist) * radius / (2 * col(p["edge"]))))  # logistic edge
    pallor = col(p["pallor"]) * np.exp(-((dist / 0.45) ** 2))
    background = col(rng.uniform(140, 215, n))
    contrast = col(rng.uniform(50, 110, n))
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    tilt_y, tilt_x = col(rng.uniform(-12, 12, n)), col(rng.uniform(-12, 12, n))
    shading = tilt_y * ramp[None, :, None] + tilt_x * ramp[None, None, :]
    return (background + shading - contrast * body * (1 - pallor)).astype(np.float32)


def _blur(images: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Separable gaussian blur with one sigma per image, (n, S, S) float32 -> same."""
    size = images.shape[1]
    x = np.arange(size, dtype=np.float32)
    var = 2 * sigma.astype(np.float32)[:, None, None] ** 2
    kernel = np.exp(-((x[None, :, None] - x[None, None, :]) ** 2) / var)
    kernel /= kernel.sum(axis=2, keepdims=True)  # (n, S, S), rows sum to 1 (edges renormalised)
    return kernel @ images @ kernel.transpose(0, 2, 1)

"""Explicit intensity normalisation: per-image bounds, applied to float batches.

Every mode maps an image to ``(x - low) / (high - low)`` with its own ``low``/``high``:

- ``scale``: ``low = 0``, ``high = max_value`` (default: the dtype's maximum, 255 for uint8).
- ``percentile``: ``low``/``high`` = the image's ``cfg.low``/``cfg.high`` percentiles (over all channels).
- ``none``: ``low = 0``, ``high = 1`` (values unchanged).

The mode and its settings are saved with the model, so prediction normalises exactly as training did.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from convscope.sections import Section


class NormalizeConfig(Section):
    """Explicit intensity normalisation, recorded with the model.

    ``scale``: divide by ``max_value`` (default: the dtype's maximum, 255 for uint8, 65535 for uint16).
    ``percentile``: map the per-image ``low``/``high`` percentiles to 0/1 (StarDist/CSBDeep style).
    ``none``: cast to float32 unchanged.
    """

    mode: Literal["scale", "percentile", "none"] = "scale"
    max_value: float | None = None
    low: float = 1.0
    high: float = 99.8


def normalization_bounds(images: np.ndarray, cfg: NormalizeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-image normalisation bounds.

    Parameters
    ----------
    images : ndarray, shape (N, H, W, C), integer or float dtype
    cfg : NormalizeConfig

    Returns
    -------
    low, high : ndarray, shape (N,), float32
        ``high > low`` always (a flat image gets ``high = low + 1``).
    """
    n = len(images)
    if cfg.mode == "percentile":
        flat = images.reshape(n, -1)
        low, high = np.percentile(flat, [cfg.low, cfg.high], axis=1).astype(np.float32)
    elif cfg.mode == "scale":
        top = cfg.max_value if cfg.max_value is not None else _dtype_max(images.dtype)
        low, high = np.zeros(n, np.float32), np.full(n, top, np.float32)
    else:
        low, high = np.zeros(n, np.float32), np.ones(n, np.float32)
    high = np.where(high > low, high, low + 1).astype(np.float32)
    return low, high


def _dtype_max(dtype: np.dtype) -> float:
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return 1.0


def bounds_from_histogram(counts: np.ndarray | None, cfg: NormalizeConfig, dtype: np.dtype) -> tuple[float, float]:
    """The normalisation bounds (low, high) of one image from the counts of its values, equal to
    :func:`normalization_bounds` of the image itself (numpy's linear percentile), for images too large to hold.

    Parameters
    ----------
    counts : ndarray, (V,) integer, or None
        ``counts[v]`` pixels (over all channels) have the value ``v`` (an unsigned integer image). Only
        ``percentile`` needs them.
    cfg : NormalizeConfig
    dtype : numpy dtype
        The image's dtype.

    Returns
    -------
    low, high : float
        float32 values as floats; ``high > low``.
    """
    if cfg.mode == "percentile":
        if counts is None:
            raise ValueError("percentile bounds need the value counts")
        low, high = (_percentile_of_counts(counts, q) for q in (cfg.low, cfg.high))
    elif cfg.mode == "scale":
        low, high = 0.0, cfg.max_value if cfg.max_value is not None else _dtype_max(dtype)
    else:
        low, high = 0.0, 1.0
    low32, high32 = np.float32(low), np.float32(high)
    return float(low32), float(high32 if high32 > low32 else low32 + 1)


def _percentile_of_counts(counts: np.ndarray, q: float) -> float:
    """numpy's linear percentile ``q`` of the values ``v`` repeated ``counts[v]`` times."""
    cum = np.cumsum(counts, dtype=np.int64)
    n = int(cum[-1])
    index = (n - 1) * (np.float64(q) / 100)
    below = int(np.floor(index))
    gamma = index - below
    a = float(np.searchsorted(cum, below, side="right"))
    b = float(np.searchsorted(cum, min(below + 1, n - 1), side="right"))
    return b - (b - a) * (1 - gamma) if gamma >= 0.5 else a + (b - a) * gamma


def normalize_image(image: np.ndarray, cfg: NormalizeConfig) -> np.ndarray:
    """One image normalised for a network: ``(x - low) / (high - low)`` in float32, channels first.

    The values equal ``(image.astype(float32) - low) / (high - low)`` with the bounds of
    :func:`normalization_bounds`, bit for bit. For uint8 and uint16 images the bounds come from the counts of the
    values (:func:`bounds_from_histogram`, no sort) and the scaling is a lookup in a table of every value's result:
    two passes over the pixels instead of a partial sort and three float passes.

    Parameters
    ----------
    image : ndarray, shape (H, W, C), any real dtype
    cfg : NormalizeConfig

    Returns
    -------
    ndarray, shape (C, H, W), float32
        A transposed view of an (H, W, C) array when C > 1.
    """
    if image.dtype in (np.uint8, np.uint16):
        counts = np.bincount(image.ravel(), minlength=1) if cfg.mode == "percentile" else None
        low, high = (np.float32(v) for v in bounds_from_histogram(counts, cfg, image.dtype))
        table = (np.arange(np.iinfo(image.dtype).max + 1, dtype=np.float32) - low) / (high - low)
        return table[image].transpose(2, 0, 1)
    low_n, high_n = normalization_bounds(image[None], cfg)
    return ((image.astype(np.float32) - low_n[0]) / (high_n[0] - low_n[0])).transpose(2, 0, 1)

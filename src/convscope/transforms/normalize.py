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

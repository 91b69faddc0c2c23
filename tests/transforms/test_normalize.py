"""Normalisation bounds from value counts equal those of the image itself (numpy's percentiles)."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.transforms.normalize import NormalizeConfig, bounds_from_histogram, normalization_bounds


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_bounds_from_counts_equal_the_percentiles_of_the_image(dtype: type) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    cfg = NormalizeConfig(mode="percentile", low=3.0, high=99.8)
    for n in (1, 2, 7, 1000, 4099):
        image = rng.integers(info.min, info.max, size=(n, 1, 1), endpoint=True).astype(dtype)
        image[: n // 3] = image[0]  # ties
        counts = np.bincount(image.ravel(), minlength=1 << (8 * image.dtype.itemsize))
        low, high = normalization_bounds(image[None], cfg)
        assert bounds_from_histogram(counts, cfg, image.dtype) == (float(low[0]), float(high[0]))


def test_scale_and_flat_images() -> None:
    assert bounds_from_histogram(None, NormalizeConfig(mode="scale"), np.dtype(np.uint16)) == (0.0, 65535.0)
    assert bounds_from_histogram(None, NormalizeConfig(mode="none"), np.dtype(np.float32)) == (0.0, 1.0)
    flat = np.zeros(256, np.int64)
    flat[9] = 100
    assert bounds_from_histogram(flat, NormalizeConfig(mode="percentile"), np.dtype(np.uint8)) == (9.0, 10.0)

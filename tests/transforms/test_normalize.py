"""Normalisation bounds from value counts equal those of the image itself (numpy's percentiles)."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.transforms.normalize import (
    NormalizeConfig,
    bounds_from_histogram,
    normalization_bounds,
    normalize_image,
)


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



def _formula(image: np.ndarray, cfg: NormalizeConfig) -> np.ndarray:
    low, high = normalization_bounds(image[None], cfg)
    return ((image.astype(np.float32) - low[0]) / (high[0] - low[0])).transpose(2, 0, 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
@pytest.mark.parametrize("cfg", [NormalizeConfig(mode="percentile"),
                                 NormalizeConfig(mode="percentile", low=0, high=100),
                                 NormalizeConfig(mode="scale"), NormalizeConfig(mode="scale", max_value=1000.0),
                                 NormalizeConfig(mode="none")], ids=["pct", "pct-0-100", "scale", "scale-1000", "none"])
@pytest.mark.parametrize("channels", [1, 3])
def test_normalize_image_is_the_formula_bit_for_bit(dtype: type, cfg: NormalizeConfig, channels: int) -> None:
    rng = np.random.default_rng(1)
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    image = (rng.random((37, 29, channels)) * top).astype(dtype)
    image[:5] = image[0, 0]  # ties
    got = normalize_image(image, cfg)
    assert got.dtype == np.float32 and got.shape == (channels, 37, 29)
    np.testing.assert_array_equal(got, _formula(image, cfg))
    flat = np.full((4, 4, 1), 7, dtype)  # percentile: high == low, so high = low + 1
    np.testing.assert_array_equal(normalize_image(flat, cfg), _formula(flat, cfg))

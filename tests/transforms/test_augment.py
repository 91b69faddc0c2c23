from __future__ import annotations

import numpy as np
import torch

from convscope.config import AugmentConfig, NormalizeConfig
from convscope.transforms import build_augmentation, normalization_bounds


def test_nothing_enabled_gives_no_module() -> None:
    assert build_augmentation(AugmentConfig()) is None


def test_flips_only_mirror_the_image() -> None:
    torch.manual_seed(0)
    x = torch.rand(64, 1, 8, 8)
    out = build_augmentation(AugmentConfig(flip_horizontal=True))(x)
    flipped = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)])
    kept = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x, strict=True)])
    assert bool((flipped | kept).all()) and 10 < int(flipped.sum()) < 54


def test_full_circle_rotation_keeps_shape_and_fills_corners_by_reflection() -> None:
    torch.manual_seed(0)
    x = torch.ones(16, 3, 33, 33)
    out = build_augmentation(AugmentConfig(rotation=180))(x)
    assert out.shape == x.shape
    # reflect fill: a constant image stays constant (zero fill would darken the corners)
    assert torch.allclose(out, x, atol=1e-5)
    y = torch.zeros(1, 1, 33, 33)
    y[..., 16, :] = 1.0  # a horizontal line turns into some other direction
    torch.manual_seed(1)
    rotated = build_augmentation(AugmentConfig(rotation=180))(y.repeat(8, 1, 1, 1))
    assert not torch.allclose(rotated, y.repeat(8, 1, 1, 1), atol=1e-3)


def test_brightness_and_contrast_change_intensity_within_bounds() -> None:
    torch.manual_seed(0)
    x = torch.full((32, 1, 4, 4), 0.5)
    out = build_augmentation(AugmentConfig(brightness=0.2))(x)
    shift = out.mean(dim=(1, 2, 3)) - 0.5
    assert shift.abs().max() <= 0.2 + 1e-6 and shift.std() > 0.01
    out = build_augmentation(AugmentConfig(contrast=0.5))(x)
    factor = out.mean(dim=(1, 2, 3)) / 0.5
    assert factor.min() >= 0.5 - 1e-6 and factor.max() <= 1.5 + 1e-6 and factor.std() > 0.01


def test_normalization_bounds_per_mode() -> None:
    rng = np.random.default_rng(0)
    img8 = rng.integers(0, 256, (3, 5, 5, 1), dtype=np.uint8)
    low, high = normalization_bounds(img8, NormalizeConfig(mode="scale"))
    assert np.all(low == 0) and np.all(high == 255)
    img16 = rng.integers(100, 4000, (2, 10, 10, 1)).astype(np.uint16)
    low, high = normalization_bounds(img16, NormalizeConfig(mode="percentile", low=0, high=100))
    assert np.allclose(low, img16.reshape(2, -1).min(1)) and np.allclose(high, img16.reshape(2, -1).max(1))
    flat = np.full((1, 4, 4, 1), 7, np.uint8)
    low, high = normalization_bounds(flat, NormalizeConfig(mode="percentile"))
    assert high[0] > low[0]  # no division by zero on a flat image

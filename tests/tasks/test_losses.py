"""Segmentation losses: reference values, perfect predictions, weights, masks and the factory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convscope.errors import ConvscopeError
from convscope.tasks.losses import (
    BINARY_LOSSES,
    LOSSES,
    bce,
    bce_dice,
    ce_dice,
    class_weights_from_frequencies,
    focal_loss,
    make_loss,
    soft_dice_loss,
    weighted_bce,
)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 8, 6, generator=g) * 3
    target = (torch.rand(2, 1, 8, 6, generator=g) < 0.25).float()
    return logits, target


def test_bce_matches_torch_and_hand_value(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, target = batch
    assert torch.allclose(bce(logits, target), F.binary_cross_entropy_with_logits(logits, target))
    one = bce(torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))
    assert one.item() == pytest.approx(math.log(2))


def test_bce_is_finite_on_saturated_logits() -> None:
    logits = torch.tensor([[[[200.0, -200.0]]]], requires_grad=True)
    target = torch.tensor([[[[0.0, 1.0]]]])
    for fn in (bce, weighted_bce, focal_loss, soft_dice_loss, bce_dice):
        loss = fn(logits, target)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(logits.grad).all(), fn.__name__
        logits.grad = None
    assert bce(logits, target).item() == pytest.approx(200.0)


def test_mask_excludes_pixels(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, target = batch
    mask = torch.zeros_like(target, dtype=torch.bool)
    mask[0] = True
    assert torch.allclose(bce(logits, target, mask=mask), bce(logits[:1], target[:1]))
    assert torch.allclose(soft_dice_loss(logits, target, mask=mask), soft_dice_loss(logits[:1], target[:1]))
    empty = torch.zeros_like(mask)
    for name in sorted(BINARY_LOSSES):
        assert make_loss(name)(logits, target, empty).item() == 0.0, name


def test_perfect_prediction_has_near_zero_dice_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    _, target = batch
    perfect = (target * 2 - 1) * 30
    assert soft_dice_loss(perfect, target).item() < 1e-6
    assert bce_dice(perfect, target).item() < 1e-6
    wrong = -perfect
    assert soft_dice_loss(wrong, target).item() > 0.98
    # an empty target predicted empty is perfect too (smoothing), not 0/0
    assert soft_dice_loss(torch.full((1, 1, 4, 4), -30.0), torch.zeros(1, 1, 4, 4)).item() < 1e-6


def test_soft_dice_hand_value() -> None:
    logits = torch.zeros(1, 1, 1, 4)  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]])
    # 1 - (2 * 1.0 + 1) / (2.0 + 2.0 + 1)
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 - 3 / 5)
    assert soft_dice_loss(logits, target, smooth=0.0).item() == pytest.approx(0.5)


def test_class_weights_are_inverse_frequencies() -> None:
    masks = [np.array([[0, 0, 0], [0, 0, 1]]), np.zeros((1, 2), dtype=np.uint8)]  # 7 background, 1 foreground
    w = class_weights_from_frequencies(masks)
    assert w.dtype == np.float64
    np.testing.assert_allclose(w, [8 / (2 * 7), 8 / (2 * 1)])
    assert w[1] / w[0] == pytest.approx(7.0)
    # frequency-weighted mean weight is 1: the loss keeps its scale
    assert (7 * w[0] + 1 * w[1]) / 8 == pytest.approx(1.0)
    np.testing.assert_allclose(class_weights_from_frequencies(np.zeros((3, 3), dtype=bool)), [1.0, 1.0])
    np.testing.assert_allclose(class_weights_from_frequencies(torch.tensor([0, 1, 2, 2]), num_classes=3),
                               [4 / 3, 4 / 3, 2 / 3])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        class_weights_from_frequencies(np.array([0, 3]))
    with pytest.raises(ValueError, match="dtype"):
        class_weights_from_frequencies(np.array([0.0, 1.0]))


def test_weighted_bce_matches_torch_weights(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, target = batch
    weights = class_weights_from_frequencies(target.to(torch.int64))
    pixel_w = torch.where(target > 0, float(weights[1]), float(weights[0]))
    reference = F.binary_cross_entropy_with_logits(logits, target, weight=pixel_w)
    assert torch.allclose(weighted_bce(logits, target, weights=weights), reference)
    # weights omitted: computed from this batch, the same numbers
    assert torch.allclose(weighted_bce(logits, target), reference)
    assert torch.allclose(weighted_bce(logits, target, weights=(1.0, 1.0)), bce(logits, target))
    # a batch without foreground: its only class gets weight 1, as class_weights_from_frequencies says
    empty = torch.zeros_like(target)
    assert torch.allclose(weighted_bce(logits, empty), bce(logits, empty))


def test_weighted_bce_balances_rare_foreground() -> None:
    target = torch.zeros(1, 1, 10, 10)
    target[..., 0, :1] = 1  # 1 foreground pixel, 99 background
    logits = torch.zeros_like(target, requires_grad=True)
    weighted_bce(logits, target).backward()
    g = logits.grad.abs()
    # balanced weights: the single foreground pixel pulls as hard as all 99 background pixels together
    assert g[target > 0].sum().item() == pytest.approx(g[target == 0].sum().item(), rel=1e-5)


def test_focal_reduces_easy_pixels_more_than_hard() -> None:
    target = torch.ones(1, 1, 1, 2)
    logits = torch.tensor([[[[4.0, -1.0]]]])  # easy (p=0.98) and hard (p=0.27) foreground pixels
    plain = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten()
    focal = torch.stack([focal_loss(logits[..., i : i + 1], target[..., i : i + 1]) for i in range(2)])
    ratio = focal / plain
    assert ratio[0] < 0.001 < ratio[1]
    p = torch.sigmoid(logits).flatten()
    assert torch.allclose(ratio, (1 - p) ** 2, rtol=1e-4)
    assert focal_loss(logits, target).item() < bce(logits, target).item()


def test_focal_gamma_zero_is_bce_and_alpha_weights(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, target = batch
    assert torch.allclose(focal_loss(logits, target, gamma=0.0), bce(logits, target))
    a = focal_loss(logits, target, alpha=0.25)
    fg_only = focal_loss(logits, target, alpha=1.0)
    bg_only = focal_loss(logits, target, alpha=0.0)
    assert torch.allclose(a, 0.25 * fg_only + 0.75 * bg_only)
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(logits, target, alpha=1.5)


def test_ce_dice_three_classes() -> None:
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 3, (2, 5, 7), generator=g)
    logits = torch.randn(2, 3, 5, 7, generator=g)
    ce_only = ce_dice(logits, target, dice_weight=0.0)
    assert torch.allclose(ce_only, F.cross_entropy(logits, target))
    # dice term by hand: per class over the batch, then the mean over the classes
    p = torch.softmax(logits, 1)
    t = F.one_hot(target, 3).permute(0, 3, 1, 2).float()
    inter = (p * t).sum((0, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((0, 2, 3)) + t.sum((0, 2, 3)) + 1)
    assert torch.allclose(ce_dice(logits, target, ce_weight=0.0), dice.mean())
    perfect = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 40 - 20
    assert ce_dice(perfect, target).item() < 1e-6
    assert ce_dice(logits, target).item() > 0.5


def test_ce_dice_mask_and_class_weights() -> None:
    target = torch.tensor([[[0, 1, 2, 255]]])  # 255 = unlabelled, outside the mask
    logits = torch.randn(1, 3, 1, 4)
    mask = target != 255
    loss = ce_dice(logits, target, mask=mask)
    assert torch.allclose(loss, ce_dice(logits[..., :3], target[..., :3]))
    weighted = ce_dice(logits[..., :3], target[..., :3], dice_weight=0.0, class_weights=[1.0, 2.0, 0.0])
    ref = F.cross_entropy(logits[..., :3], target[..., :3], reduction="none") * torch.tensor([1.0, 2.0, 0.0])
    assert torch.allclose(weighted, ref.mean())
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        ce_dice(logits, target)
    with pytest.raises(ValueError, match="int64"):
        ce_dice(logits, target.to(torch.int32), mask=mask)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same shape"):
        bce(torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        soft_dice_loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4))


def test_make_loss_builds_named_losses(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    logits, target = batch
    assert set(LOSSES) == {"bce", "weighted_bce", "dice", "bce_dice", "focal", "ce_dice"}
    focal = make_loss("focal", gamma=1.0, alpha=0.5)
    assert focal.binary and not make_loss("ce_dice").binary
    assert torch.allclose(focal(logits, target), focal_loss(logits, target, gamma=1.0, alpha=0.5))
    assert torch.allclose(make_loss("dice")(logits, target), soft_dice_loss(logits, target))
    with pytest.raises(ConvscopeError, match=r"unknown loss 'dicee'.*bce, bce_dice, ce_dice, dice, focal"):
        make_loss("dicee")
    with pytest.raises(ConvscopeError, match=r"loss 'focal' has no option 'gama'.*gamma, alpha"):
        make_loss("focal", gama=2)
    with pytest.raises(ConvscopeError, match="no option 'mask'"):
        make_loss("bce", mask=None)

"""Segmentation losses on logits: binary (BCE, class-weighted BCE, soft Dice, BCE + Dice, focal) and
multi-class (cross-entropy + soft Dice).

Conventions
-----------
- Binary losses take ``logits`` of shape (N, 1, H, W) and a ``target`` of the same shape holding 0/1
  (float, or bool/int which is cast to the logits' dtype). Shapes must match exactly: no broadcasting,
  which would silently compare every pixel with every other.
- ``ce_dice`` takes ``logits`` (N, K, H, W) and an int64 ``target`` (N, H, W) of class indices in [0, K).
- ``mask`` (optional) marks the valid pixels (bool or 0/1, the target's shape); invalid pixels contribute
  nothing. Pixel-wise losses are averaged over the valid pixels; with no valid pixel the loss is 0 (still
  attached to the graph), never NaN.
- Everything works on logits (``logsigmoid``, ``log_softmax``, ``binary_cross_entropy_with_logits``), never
  on probabilities passed through ``log``, so saturated logits give finite losses and gradients.
- Soft Dice is computed over the whole batch (intersections and sums pooled over the images), which is
  stable for patches without foreground: ``1 - (2 * sum(p * t) + smooth) / (sum(p) + sum(t) + smooth)``.

Use :func:`make_loss` to build a loss from a recipe name and options.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from convscope.errors import ConvscopeError

__all__ = [
    "BINARY_LOSSES",
    "LOSSES",
    "MULTICLASS_LOSSES",
    "Loss",
    "bce",
    "bce_dice",
    "ce_dice",
    "class_weights_from_frequencies",
    "focal_loss",
    "make_loss",
    "soft_dice_loss",
    "weighted_bce",
]


def _binary_inputs(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check shapes; return the float target and the float valid-pixel mask (ones when ``mask`` is None)."""
    if logits.shape != target.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape")
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"binary losses expect logits of shape (N, 1, H, W), got {tuple(logits.shape)}")
    valid = _valid(mask, target.shape, logits)
    return target.to(logits.dtype), valid


def _valid(mask: torch.Tensor | None, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return torch.ones(shape, dtype=like.dtype, device=like.device)
    if mask.shape != shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the target's shape {tuple(shape)}")
    return mask.to(dtype=like.dtype, device=like.device)


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the valid pixels; 0 (attached to the graph) when there are none."""
    return (values * valid).sum() / valid.sum().clamp_min(1.0)


def bce(logits: torch.Tensor, target: torch.Tensor, *, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy on logits, averaged over the valid pixels.

    Parameters
    ----------
    logits : Tensor, shape (N, 1, H, W), float
    target : Tensor, shape (N, 1, H, W), 0/1
    mask : Tensor, shape (N, 1, H, W), bool or 0/1, optional

    Returns
    -------
    Tensor
        A scalar.
    """
    target, valid = _binary_inputs(logits, target, mask)
    return _masked_mean(F.binary_cross_entropy_with_logits(logits, target, reduction="none"), valid)


def class_weights_from_frequencies(
    masks: np.ndarray | torch.Tensor | Iterable[np.ndarray | torch.Tensor], *, num_classes: int = 2
) -> np.ndarray:
    """Inverse-frequency ("balanced") class weights from label images.

    ``weight[k] = n_pixels / (n_present * n_pixels_of_class_k)`` where ``n_present`` is the number of classes
    that occur (``num_classes`` when all do: scikit-learn's "balanced" weights). Every present class then has
    the same weighted pixel count and the frequency-weighted mean weight is 1 (the loss keeps its scale). A
    class absent from all masks gets weight 1.0.

    Parameters
    ----------
    masks : array or tensor of int/bool, or an iterable of them, any shape
        Class indices in ``[0, num_classes)`` (for binary masks: 0 = background, 1 = foreground).
    num_classes : int
        K >= 2.

    Returns
    -------
    ndarray of float64, shape (K,)
        For binary masks ``(w_background, w_foreground)``, the ``weights`` of :func:`weighted_bce`.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    items = [masks] if isinstance(masks, np.ndarray | torch.Tensor) else list(masks)
    counts = np.zeros(num_classes, dtype=np.int64)
    for item in items:
        arr = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
        if arr.dtype.kind not in "biu":
            raise ValueError(f"masks must hold integer class indices or bools, got dtype {arr.dtype}")
        arr = arr.reshape(-1).astype(np.int64, copy=False)
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"mask values must be in [0, {num_classes}), got min {arr.min()}, max {arr.max()}")
        counts += np.bincount(arr, minlength=num_classes)
    total = counts.sum()
    weights = np.ones(num_classes, dtype=np.float64)
    present = counts > 0
    weights[present] = total / (present.sum() * counts[present])
    return weights


def _two_weights(weights: Sequence[float] | np.ndarray | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64) if not isinstance(weights, torch.Tensor) else weights)
    if w.shape != (2,) or not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be two finite non-negative numbers (background, foreground), got {weights}")
    return w.to(dtype=like.dtype, device=like.device)


def _batch_weights(target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(background, foreground) weights of :func:`class_weights_from_frequencies` from one batch's valid pixels."""
    counts = torch.stack([((1 - target) * valid).sum(), (target * valid).sum()]).detach()
    present = counts > 0
    balanced = counts.sum() / (present.sum().clamp_min(1) * counts.clamp_min(1.0))
    return torch.where(present, balanced, torch.ones_like(counts))


def weighted_bce(
    logits: torch.Tensor, target: torch.Tensor, *, weights: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class-weighted binary cross-entropy on logits.

    Each pixel's BCE is multiplied by ``weights[1]`` (foreground) or ``weights[0]`` (background) and the sum is
    divided by the number of valid pixels (as ``torch``'s ``weight=`` argument does).

    Parameters
    ----------
    logits : Tensor, shape (N, 1, H, W), float
    target : Tensor, shape (N, 1, H, W), 0/1
    weights : sequence of 2 floats, optional
        (background, foreground), e.g. from :func:`class_weights_from_frequencies` over the training masks.
        When omitted, they are computed from the valid pixels of this batch.
    mask : Tensor, shape (N, 1, H, W), bool or 0/1, optional

    Returns
    -------
    Tensor
        A scalar.
    """
    target, valid = _binary_inputs(logits, target, mask)
    w = _batch_weights(target, valid) if weights is None else _two_weights(weights, logits)
    pixel_weights = w[0] + (w[1] - w[0]) * target
    losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return _masked_mean(pixel_weights * losses, valid)


def _soft_dice(probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, smooth: float,
               dims: tuple[int, ...]) -> torch.Tensor:
    """``1 - soft Dice`` summed over ``dims`` (the remaining axes are kept)."""
    p = probs * valid
    t = target * valid
    intersection = (p * t).sum(dim=dims)
    denominator = p.sum(dim=dims) + t.sum(dim=dims)
    return 1 - (2 * intersection + smooth) / (denominator + smooth)


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, *, mask: torch.Tensor | None = None, smooth: float = 1.0
) -> torch.Tensor:
    """``1 - soft Dice`` of the foreground probabilities, pooled over the batch.

    Parameters
    ----------
    logits : Tensor, shape (N, 1, H, W), float
    target : Tensor, shape (N, 1, H, W), 0/1
    mask : Tensor, shape (N, 1, H, W), bool or 0/1, optional
    smooth : float
        Added to numerator and denominator: a batch without foreground predicted as background scores 0.

    Returns
    -------
    Tensor
        A scalar in [0, 1]; near 0 for a confident perfect prediction.
    """
    target, valid = _binary_inputs(logits, target, mask)
    return _soft_dice(torch.sigmoid(logits), target, valid, smooth, dims=tuple(range(logits.ndim)))


def bce_dice(
    logits: torch.Tensor, target: torch.Tensor, *, mask: torch.Tensor | None = None, bce_weight: float = 1.0,
    dice_weight: float = 1.0, smooth: float = 1.0,
) -> torch.Tensor:
    """``bce_weight * bce + dice_weight * soft_dice_loss`` (shapes as :func:`bce`); a scalar."""
    return bce_weight * bce(logits, target, mask=mask) + dice_weight * soft_dice_loss(
        logits, target, mask=mask, smooth=smooth
    )


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0, alpha: float | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Focal loss (Lin et al., 2017): BCE scaled by ``(1 - p_t) ** gamma``, which down-weights easy pixels.

    Parameters
    ----------
    logits : Tensor, shape (N, 1, H, W), float
    target : Tensor, shape (N, 1, H, W), 0/1
    gamma : float
        Focusing parameter >= 0; ``gamma=0`` without ``alpha`` is plain BCE.
    alpha : float in [0, 1], optional
        Weight of the foreground pixels (background: ``1 - alpha``); None = no class weighting.
    mask : Tensor, shape (N, 1, H, W), bool or 0/1, optional

    Returns
    -------
    Tensor
        A scalar, averaged over the valid pixels.
    """
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] or None, got {alpha}")
    target, valid = _binary_inputs(logits, target, mask)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    # p_t = exp(-ce) is the probability of the true class, computed stably from the logits.
    losses = (1 - torch.exp(-ce)).pow(gamma) * ce
    if alpha is not None:
        losses = (alpha * target + (1 - alpha) * (1 - target)) * losses
    return _masked_mean(losses, valid)


def ce_dice(
    logits: torch.Tensor, target: torch.Tensor, *, mask: torch.Tensor | None = None, ce_weight: float = 1.0,
    dice_weight: float = 1.0, class_weights: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    smooth: float = 1.0,
) -> torch.Tensor:
    """Multi-class cross-entropy + mean soft Dice over the classes.

    Parameters
    ----------
    logits : Tensor, shape (N, K, H, W), float
    target : Tensor, shape (N, H, W), int64
        Class indices in [0, K) (any value at pixels outside ``mask``).
    mask : Tensor, shape (N, H, W), bool or 0/1, optional
    ce_weight, dice_weight : float
        Weights of the two terms.
    class_weights : sequence of K floats, optional
        Per-class weights of the cross-entropy term (e.g. :func:`class_weights_from_frequencies`); the sum of
        weighted pixel losses is divided by the number of valid pixels.
    smooth : float
        Dice smoothing, per class; each class's Dice is pooled over the batch, then averaged over the K classes.

    Returns
    -------
    Tensor
        A scalar.
    """
    if logits.ndim != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"ce_dice expects logits (N, K, H, W) and target (N, H, W), got "
                         f"{tuple(logits.shape)} and {tuple(target.shape)}")
    if target.dtype != torch.int64:
        raise ValueError(f"ce_dice expects an int64 target of class indices, got {target.dtype}")
    k = logits.shape[1]
    valid = _valid(mask, target.shape, logits)
    target = torch.where(valid > 0, target, torch.zeros_like(target))
    if target.numel() and (target.min() < 0 or target.max() >= k):
        raise ValueError(f"target classes must be in [0, {k}), got min {int(target.min())}, max {int(target.max())}")
    ce = F.cross_entropy(logits, target, reduction="none")
    if class_weights is not None:
        w = torch.as_tensor(np.asarray(class_weights, dtype=np.float64) if not isinstance(class_weights, torch.Tensor)
                            else class_weights).to(dtype=logits.dtype, device=logits.device)
        if w.shape != (k,):
            raise ValueError(f"class_weights must have {k} entries, got shape {tuple(w.shape)}")
        ce = ce * w[target]
    one_hot = F.one_hot(target, k).permute(0, 3, 1, 2).to(logits.dtype)
    dice = _soft_dice(torch.softmax(logits, dim=1), one_hot, valid.unsqueeze(1), smooth, dims=(0, 2, 3))
    return ce_weight * _masked_mean(ce, valid) + dice_weight * dice.mean()


LossFn = Callable[..., torch.Tensor]

LOSSES: Mapping[str, LossFn] = {
    "bce": bce,
    "weighted_bce": weighted_bce,
    "dice": soft_dice_loss,
    "bce_dice": bce_dice,
    "focal": focal_loss,
    "ce_dice": ce_dice,
}
BINARY_LOSSES = frozenset({"bce", "weighted_bce", "dice", "bce_dice", "focal"})
MULTICLASS_LOSSES = frozenset({"ce_dice"})


@dataclass(frozen=True)
class Loss:
    """A named loss with its options, as built by :func:`make_loss`: ``loss(logits, target, mask=None)``."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def binary(self) -> bool:
        """True for losses on one foreground logit (N, 1, H, W), False for K-class logits."""
        return self.name in BINARY_LOSSES

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return LOSSES[self.name](logits, target, mask=mask, **self.options)


def make_loss(name: str, **options: Any) -> Loss:
    """Build a loss by name.

    Parameters
    ----------
    name : str
        One of ``bce``, ``weighted_bce``, ``dice``, ``bce_dice``, ``focal`` (binary: logits (N, 1, H, W)) or
        ``ce_dice`` (multi-class: logits (N, K, H, W), int64 target (N, H, W)).
    **options
        Keyword options of that loss function (e.g. ``gamma=2.0`` for ``focal``, ``weights=(0.6, 3.1)`` for
        ``weighted_bce``), except ``mask`` which is passed at call time.

    Raises
    ------
    ConvscopeError
        For an unknown name or option, listing the known ones.
    """
    if name not in LOSSES:
        raise ConvscopeError(f"unknown loss '{name}'; known losses: {', '.join(sorted(LOSSES))}")
    params = inspect.signature(LOSSES[name]).parameters
    allowed = [p for p, spec in params.items() if spec.kind is spec.KEYWORD_ONLY and p != "mask"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        known = ", ".join(allowed) or "none"
        raise ConvscopeError(f"loss '{name}' has no option '{unknown[0]}'; its options are: {known}")
    return Loss(name, dict(options))

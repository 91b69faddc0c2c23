"""Random augmentation of training batches on the device (kornia), for images normalised to ~[0, 1]."""

from __future__ import annotations

import kornia.augmentation as K
from torch import nn

from convscope.training.config import AugmentConfig


def build_augmentation(cfg: AugmentConfig) -> nn.Module | None:
    """A module that augments a float batch ``(N, C, H, W)``, or ``None`` when nothing is enabled.

    - flips: horizontal / vertical, each with probability 0.5;
    - rotation: uniform in ``[-rotation, rotation]`` degrees (180 = the full circle), bilinear
      interpolation, reflect fill at the corners;
    - brightness: additive shift uniform in ``[-brightness, brightness]`` (normalised units);
    - contrast: multiplication by a factor uniform in ``[1 - contrast, 1 + contrast]``.

    Each image of the batch draws its own parameters.
    """
    if not cfg.enabled:
        return None
    ops: list[nn.Module] = []
    if cfg.flip_horizontal:
        ops.append(K.RandomHorizontalFlip(p=0.5))
    if cfg.flip_vertical:
        ops.append(K.RandomVerticalFlip(p=0.5))
    if cfg.rotation:
        ops.append(K.RandomAffine(degrees=cfg.rotation, resample="bilinear", padding_mode="reflection", p=1.0))
    if cfg.brightness:
        ops.append(K.RandomBrightness((1 - cfg.brightness, 1 + cfg.brightness), clip_output=False, p=1.0))
    if cfg.contrast:
        ops.append(K.RandomContrast((1 - cfg.contrast, 1 + cfg.contrast), clip_output=False, p=1.0))
    return K.AugmentationSequential(*ops)

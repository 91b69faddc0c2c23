"""Random augmentation of training batches on the device (kornia), for images normalised to ~[0, 1]."""

from __future__ import annotations

import warnings

import kornia.augmentation as K
from pydantic import Field
from torch import nn

from convscope.sections import Section


class AugmentConfig(Section):
    """Random augmentation of training batches (never of validation or test data).

    ``rotation``: maximum angle in degrees (180 = the full circle), reflect fill, bilinear.
    ``brightness`` / ``contrast``: maximum relative change (0.2 = +-20 %).
    """

    flip_horizontal: bool = False
    flip_vertical: bool = False
    rotate90: bool = False
    rotation: float = Field(0.0, ge=0.0, le=180.0)
    elastic: float = Field(0.0, ge=0.0, description="elastic deformation strength (kornia alpha; 0 = off)")
    brightness: float = Field(0.0, ge=0.0, le=1.0)
    contrast: float = Field(0.0, ge=0.0, le=1.0)
    noise: float = Field(0.0, ge=0.0, description="std of added Gaussian noise (normalised units; 0 = off)")

    @property
    def enabled(self) -> bool:
        return any((self.flip_horizontal, self.flip_vertical, self.rotate90, self.rotation, self.elastic,
                    self.brightness, self.contrast, self.noise))


def build_augmentation(cfg: AugmentConfig, *, with_mask: bool = False) -> nn.Module | None:
    """A module that augments a float batch ``(N, C, H, W)``, or ``None`` when nothing is enabled.

    - flips: horizontal / vertical, each with probability 0.5;
    - rotation: uniform in ``[-rotation, rotation]`` degrees (180 = the full circle), bilinear
      interpolation, reflect fill at the corners;
    - brightness: additive shift uniform in ``[-brightness, brightness]`` (normalised units);
    - contrast: multiplication by a factor uniform in ``[1 - contrast, 1 + contrast]``.

    - rotate90: a random multiple of 90 degrees (exact, no interpolation);
    - elastic: random elastic deformation of strength ``elastic``;
    - noise: Gaussian noise of standard deviation ``noise``.

    Each image of the batch draws its own parameters. With ``with_mask`` the module takes and returns
    ``(image, mask)``, the mask (B, 1, H, W) float transformed by the same geometry with nearest-neighbour
    interpolation and left alone by the intensity changes.
    """
    if not cfg.enabled:
        return None
    ops: list[nn.Module] = []
    if cfg.flip_horizontal:
        ops.append(K.RandomHorizontalFlip(p=0.5))
    if cfg.flip_vertical:
        ops.append(K.RandomVerticalFlip(p=0.5))
    if cfg.rotate90:
        ops.append(K.RandomRotation90(times=(0, 3), p=1.0))
    if cfg.rotation:
        ops.append(K.RandomAffine(degrees=cfg.rotation, resample="bilinear", padding_mode="reflection", p=1.0))
    if cfg.elastic:
        # kornia's elastic transform builds its grid without align_corners and warns on every call
        warnings.filterwarnings("ignore", message="Default grid_sample and affine_grid behavior")
        ops.append(K.RandomElasticTransform(alpha=(cfg.elastic, cfg.elastic), padding_mode="reflection", p=0.5))
    if cfg.brightness:
        ops.append(K.RandomBrightness((1 - cfg.brightness, 1 + cfg.brightness), clip_output=False, p=1.0))
    if cfg.contrast:
        ops.append(K.RandomContrast((1 - cfg.contrast, 1 + cfg.contrast), clip_output=False, p=1.0))
    if cfg.noise:
        ops.append(K.RandomGaussianNoise(std=cfg.noise, p=1.0))
    if with_mask:
        return K.AugmentationSequential(*ops, data_keys=["input", "mask"])
    return K.AugmentationSequential(*ops)

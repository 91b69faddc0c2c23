"""Normalisation (explicit, recorded with the model) and batch augmentation."""

from convscope.transforms.augment import build_augmentation
from convscope.transforms.normalize import normalization_bounds

__all__ = ["build_augmentation", "normalization_bounds"]

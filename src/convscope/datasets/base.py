"""In-memory image sets for classification: the types every data set loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageSet:
    """One split of a classification data set, held in memory.

    Attributes
    ----------
    images : ndarray, shape (N, H, W, C), dtype uint8 or uint16
        The images, axes "NYXC"; never rescaled (normalisation happens explicitly later).
    labels : ndarray, shape (N,), dtype int64
        Class indices into ``class_names``.
    class_names : tuple of str
        Sorted class names (folder names for folder data sets).
    paths : tuple of str, optional
        Source file per image (or ``"mnist:train/123"``-style ids), for reports and predictions.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    paths: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {self.images.shape}")
        if len(self.labels) != len(self.images) or len(self.paths) != len(self.images):
            raise ValueError("images, labels and paths must have the same length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def truths(self) -> np.ndarray:
        """The ground truth of the split: the class index (N,) int of every image."""
        return self.labels

    def subset(self, index: np.ndarray) -> ImageSet:
        """The images at ``index`` (int array), as a new set."""
        return ImageSet(self.images[index], self.labels[index], self.class_names,
                        tuple(self.paths[i] for i in index))


@dataclass(frozen=True)
class ClassificationData:
    """Train, validation and test splits. ``test`` is never used for training or model selection."""

    train: ImageSet
    val: ImageSet
    test: ImageSet | None

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

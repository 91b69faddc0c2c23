"""Object size: rescale an image so that its objects match the model's training diameter (Cellpose's
``diameter``, StarDist's ``scale``), segment, and return labels at the original size.

Works with anything that has ``segment(image) -> labels`` (a trained instance run or a built-in model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage

from convscope.errors import ConvscopeError


class _Segments(Protocol):
    def segment(self, image: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class RescaledLabels:
    """Labels at the original size and how they were obtained.

    Attributes
    ----------
    labels : ndarray, (H, W) uint32
        Instance labels of the image as given; 0 = background.
    diameter : float
        The object diameter (pixels) used: given by the user, or estimated (see :func:`diameter_scale`).
    estimated : bool
        Whether ``diameter`` was estimated (median object diameter of a first pass at scale 1, measured again
        by a second pass at the scale it asks for; see :func:`diameter_scale`).
    scale : float
        The factor the image was resized by before segmenting (``model_diameter / diameter``).
    """

    labels: np.ndarray
    diameter: float
    estimated: bool
    scale: float


def object_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent-circle diameters ``sqrt(4 * area / pi)`` (pixels, float64) of the objects of a label image."""
    areas = np.bincount(np.asarray(labels).ravel().astype(np.int64))[1:]
    return np.sqrt(4.0 * areas[areas > 0] / np.pi)


def median_diameter(labels: np.ndarray | list[np.ndarray]) -> float:
    """Median equivalent-circle diameter of all objects of one or more label images; NaN without objects."""
    stack = [labels] if isinstance(labels, np.ndarray) else labels
    diameters = np.concatenate([object_diameters(y) for y in stack]) if stack else np.empty(0)
    return float(np.median(diameters)) if len(diameters) else float("nan")


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize ``image`` (H, W[, C]) to ``shape`` (h, w) with linear interpolation (float32 out; when shrinking,
    a Gaussian of sigma ``(1/scale - 1) / 2`` first, against aliasing)."""
    x = np.asarray(image, dtype=np.float32)
    factors = (shape[0] / x.shape[0], shape[1] / x.shape[1])
    sigma = [max(0.0, (1 / f - 1) / 2) for f in factors] + [0.0] * (x.ndim - 2)
    if any(s > 0 for s in sigma):
        x = ndimage.gaussian_filter(x, sigma)
    zoom = list(factors) + [1.0] * (x.ndim - 2)
    out = ndimage.zoom(x, zoom, order=1, mode="nearest", grid_mode=True)
    return out[: shape[0], : shape[1]]


def resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a label image to ``shape`` (h, w) by nearest neighbour (pixel centres), dtype kept."""
    h, w = labels.shape
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]


def rescaled_shape(shape: tuple[int, ...], scale: float, *, min_size: int = 16) -> tuple[int, int]:
    """(h, w) of an image of ``shape`` (H, W[, C]) resized by ``scale``, at least ``min_size`` on each side."""
    return max(min_size, round(shape[0] * scale)), max(min_size, round(shape[1] * scale))


def diameter_scale(segmenter: _Segments, image: np.ndarray, *, model_diameter: float,
                   diameter: float | None = None) -> tuple[float, bool, float, np.ndarray | None]:
    """The object diameter to use for ``image`` and the factor that brings it to the model's training diameter.

    Parameters
    ----------
    segmenter : object with ``segment(image) -> labels``
    image : ndarray, (H, W) or (H, W, C)
    model_diameter : float
        Median object diameter (pixels) of the model's training data.
    diameter : float, optional
        The user's object diameter in pixels; without it it is estimated: a first pass at scale 1 gives the
        median diameter of the objects found (with none found: the model's own diameter, scale 1); when that
        asks for another scale, a second pass at that scale measures it again, as Cellpose refines its size
        model's guess (objects much larger than the training size are split by a pass at scale 1, so the
        first guess is low).

    Returns
    -------
    diameter : float
        The diameter used (pixels).
    estimated : bool
        Whether it was estimated.
    scale : float
        ``model_diameter / diameter``, or exactly 1.0 when within 0.1 % of it.
    first : ndarray or None
        The labels (H, W) of the first pass when there was one (reusable when the scale is 1).
    """
    if diameter is not None and not (np.isfinite(diameter) and diameter > 0):
        raise ConvscopeError(f"diameter {diameter}: give the objects' diameter in pixels, a positive number")
    if not (np.isfinite(model_diameter) and model_diameter > 0):
        raise ConvscopeError(f"model diameter {model_diameter}: the model records no training diameter")
    if diameter is not None:
        return float(diameter), False, _snap(float(model_diameter) / float(diameter)), None
    first = segmenter.segment(image)
    guess = median_diameter(first)
    if not np.isfinite(guess):
        return float(model_diameter), True, 1.0, first
    scale = _snap(float(model_diameter) / guess)
    if scale == 1.0:
        return guess, True, 1.0, first
    h, w = image.shape[:2]
    second = segmenter.segment(resize_image(image, rescaled_shape(image.shape, scale)))
    refined = median_diameter(resize_labels(second, (h, w)))
    if np.isfinite(refined):
        guess, scale = refined, _snap(float(model_diameter) / refined)
    return guess, True, scale, first


def _snap(scale: float) -> float:
    """``scale``, or exactly 1.0 when within 0.1 % of it (the image is then segmented as it is)."""
    return 1.0 if abs(scale - 1.0) < 1e-3 else scale


def segment_at_diameter(segmenter: _Segments, image: np.ndarray, *, model_diameter: float,
                        diameter: float | None = None, min_size: int = 16) -> RescaledLabels:
    """Segment ``image`` with its objects rescaled to the model's training diameter.

    Parameters
    ----------
    segmenter : object with ``segment(image) -> labels``
        E.g. :class:`convscope.inference.Predictor`.
    image : ndarray, (H, W) or (H, W, C)
    model_diameter : float
        Median object diameter (pixels) of the model's training data (the model card's ``diameter``).
    diameter : float, optional
        The user's object diameter in pixels. Without it it is estimated by one or two passes (see
        :func:`diameter_scale`); with no object found the image is segmented as it is.
    min_size : int
        The rescaled image is at least this many pixels on each side.

    Returns
    -------
    RescaledLabels
        ``labels`` (H, W) uint32 at the original size (nearest neighbour), the diameter used and the scale.
    """
    used, estimated, scale, first = diameter_scale(segmenter, image, model_diameter=model_diameter,
                                                   diameter=diameter)
    if scale == 1.0:
        labels = first if first is not None else segmenter.segment(image)
        return RescaledLabels(labels.astype(np.uint32, copy=False), used, estimated, 1.0)
    h, w = image.shape[:2]
    labels = segmenter.segment(resize_image(image, rescaled_shape(image.shape, scale, min_size=min_size)))
    return RescaledLabels(resize_labels(labels, (h, w)).astype(np.uint32, copy=False), used, estimated, scale)

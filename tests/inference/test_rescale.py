"""Object-size rescaling around any segmenter (synthetic disks, a thresholding segmenter)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from convscope.errors import ConvscopeError
from convscope.inference.rescale import (
    median_diameter,
    object_diameters,
    resize_image,
    resize_labels,
    segment_at_diameter,
)


class Threshold:
    """Labels the connected components above 0.5 and records the shapes it was given."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def segment(self, image: np.ndarray) -> np.ndarray:
        self.shapes.append(image.shape)
        return ndimage.label(image > 0.5)[0].astype(np.uint32)


class SplitsLarge(Threshold):
    """Like a network with a bounded field of view: an object wider than ``limit`` pixels comes out as 4 quarters."""

    def __init__(self, limit: float) -> None:
        super().__init__()
        self.limit = limit

    def segment(self, image: np.ndarray) -> np.ndarray:
        labels = super().segment(image)
        for k, d in enumerate(object_diameters(labels), start=1):
            if d > self.limit:
                rows, cols = np.nonzero(labels == k)
                quarter = 2 * (rows > rows.mean()) + (cols > cols.mean())
                labels[rows, cols] = np.where(quarter == 0, k, labels.max() + quarter)
        return labels


def _disks(size: int = 120, radius: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.uint32)
    for k, (cy, cx) in enumerate(np.array([(30, 30), (30, 85), (85, 50)]) * size / 120, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = k
    return (labels > 0).astype(np.float32), labels


def test_object_diameters_of_a_square() -> None:
    y = np.zeros((10, 10), np.uint16)
    y[2:6, 2:6] = 3
    np.testing.assert_allclose(object_diameters(y), [np.sqrt(4 * 16 / np.pi)])
    assert np.isnan(median_diameter(np.zeros((4, 4), np.uint8)))


def test_resize_labels_nearest_keeps_ids_and_shape() -> None:
    y = np.arange(16, dtype=np.uint16).reshape(4, 4)
    up = resize_labels(y, (8, 8))
    assert up.dtype == np.uint16 and up.shape == (8, 8)
    np.testing.assert_array_equal(up[::2, ::2], y)
    np.testing.assert_array_equal(resize_labels(up, (4, 4)), y)
    assert resize_image(np.ones((10, 6, 3)), (5, 3)).shape == (5, 3, 3)


def test_given_diameter_rescales_and_returns_labels_at_the_original_size() -> None:
    image, truth = _disks(radius=10.0)
    seg = Threshold()
    out = segment_at_diameter(seg, image, model_diameter=10.0, diameter=20.0)
    assert seg.shapes == [(60, 60)] and out.scale == pytest.approx(0.5) and not out.estimated
    assert out.labels.shape == truth.shape and out.labels.dtype == np.uint32
    assert len(np.unique(out.labels)) == 4
    overlap = np.logical_and(out.labels > 0, truth > 0).sum() / np.logical_or(out.labels > 0, truth > 0).sum()
    assert overlap > 0.9


def test_without_diameter_a_first_pass_estimates_it() -> None:
    image, truth = _disks(radius=10.0)
    seg = Threshold()
    out = segment_at_diameter(seg, image, model_diameter=40.0)
    assert out.estimated and out.diameter == pytest.approx(median_diameter(truth))
    assert out.scale == pytest.approx(40.0 / out.diameter)
    assert seg.shapes[0] == (120, 120) and seg.shapes[1][0] > 200


def test_an_estimate_from_over_split_objects_is_measured_again_at_its_scale() -> None:
    """Disks of diameter ~60 split in quarters (diameter ~30) at scale 1: the first guess is half the truth; the
    pass at that guess's scale sees whole disks and measures the true diameter, which sets the final scale."""
    image, truth = _disks(size=240, radius=30.0)
    seg = SplitsLarge(limit=50.0)
    out = segment_at_diameter(seg, image, model_diameter=20.0)
    assert out.estimated and out.diameter == pytest.approx(median_diameter(truth), rel=0.05)
    first, second, final = (shape[0] for shape in seg.shapes)
    assert first == 240 and second == pytest.approx(240 * 20 / (out.diameter / 2), rel=0.05)
    assert final == round(240 * out.scale) and out.scale == pytest.approx(20 / out.diameter)
    assert out.labels.max() == 3


def test_nothing_found_segments_as_is_and_bad_diameters_are_refused() -> None:
    seg = Threshold()
    out = segment_at_diameter(seg, np.zeros((32, 32), np.float32), model_diameter=10.0)
    assert out.scale == 1.0 and out.labels.max() == 0 and len(seg.shapes) == 1
    with pytest.raises(ConvscopeError, match="positive"):
        segment_at_diameter(seg, np.zeros((8, 8)), model_diameter=10.0, diameter=-1)

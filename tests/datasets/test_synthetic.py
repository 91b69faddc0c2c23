from __future__ import annotations

import numpy as np
import pytest

from convscope.datasets.synthetic import make_synthetic_cells


def test_shape_dtype_and_balanced_classes() -> None:
    cells = make_synthetic_cells(101, size=32, seed=1)
    assert cells.images.shape == (101, 32, 32, 1) and cells.images.dtype == np.uint8
    assert cells.class_names == ("abnormal", "normal")
    assert cells.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(cells.labels), [51, 50])
    assert cells.paths[3] == "synthetic_cells:1/3"


def test_deterministic_per_seed() -> None:
    a, b = make_synthetic_cells(20, seed=5), make_synthetic_cells(20, seed=5)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, make_synthetic_cells(20, seed=6).images)


def test_labels_are_shuffled() -> None:
    labels = make_synthetic_cells(200, seed=0).labels
    assert 0 < np.abs(np.diff(labels)).sum() < 199  # neither sorted nor strictly alternating


def test_mean_intensity_does_not_give_the_class_away() -> None:
    cells = make_synthetic_cells(600, seed=2)
    means = cells.images.reshape(len(cells), -1).mean(axis=1)
    accuracy = [np.mean((means > t) == cells.labels) for t in np.quantile(means, np.linspace(0.02, 0.98, 49))]
    assert max(max(accuracy), 1 - min(accuracy)) < 0.7  # best threshold, either direction


def _elongation(image: np.ndarray) -> float:
    """Ratio of the principal axes of the dark (cell) pixels."""
    img = image[..., 0].astype(float)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    mask = img < (np.median(border) + img.min()) / 2
    ys, xs = np.nonzero(mask)
    evals = np.linalg.eigvalsh(np.cov(np.stack([ys, xs])))
    return float(np.sqrt(evals[1] / max(evals[0], 1e-9)))


def test_cells_are_centred_and_abnormal_ones_less_round() -> None:
    cells = make_synthetic_cells(300, seed=3)
    centre = cells.images[:, 14:26, 14:26].mean(axis=(1, 2, 3))
    corners = cells.images[:, :5, :5].mean(axis=(1, 2, 3))
    assert np.mean(centre < corners) > 0.95  # a dark cell in the middle of a lighter background
    elong = np.array([_elongation(im) for im in cells.images])
    assert np.median(elong[cells.labels == 0]) > np.median(elong[cells.labels == 1])
    assert np.percentile(elong[cells.labels == 1], 90) < 1.4  # normal cells are round-ish discs


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="size >= 16"):
        make_synthetic_cells(10, size=8)
    with pytest.raises(ValueError, match="n >= 1"):
        make_synthetic_cells(0)

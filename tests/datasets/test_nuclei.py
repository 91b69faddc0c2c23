from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from convscope.datasets.nuclei import MIN_NUCLEUS_AREA, make_synthetic_nuclei
from convscope.instances import StarConvexityWarning, fidelity


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray]:
    return make_synthetic_nuclei(8, seed=5)


def _touching_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different nuclei with 4-adjacent pixels."""
    pairs = set()
    for a, b in ((labels[:-1], labels[1:]), (labels[:, :-1], labels[:, 1:])):
        touch = (a != b) & (a > 0) & (b > 0)
        pairs |= {(min(p, q), max(p, q)) for p, q in zip(a[touch].tolist(), b[touch].tolist(), strict=True)}
    return pairs


def test_shapes_dtypes_and_sequential_labels(batch: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = batch
    assert images.shape == labels.shape == (8, 256, 256)
    assert images.dtype == np.uint16 and labels.dtype == np.uint16
    for lab in labels:
        np.testing.assert_array_equal(np.unique(lab), np.arange(lab.max() + 1))
        assert 8 <= lab.max() <= 80, lab.max()
    images8, labels8 = make_synthetic_nuclei(3, size=(64, 96), seed=1, dtype="uint8")
    assert images8.shape == labels8.shape == (3, 64, 96)
    assert images8.dtype == np.uint8 and labels8.dtype == np.uint16
    assert images8.max() > 100 and (images8 == 255).mean() < 1e-3  # uses the range, hardly saturates


def test_count_scales_with_area(batch: tuple[np.ndarray, np.ndarray]) -> None:
    _, small = make_synthetic_nuclei(8, size=(128, 128), seed=5)
    large = batch[1].reshape(8, -1).max(axis=1).mean()
    assert small.reshape(8, -1).max(axis=1).mean() < 0.5 * large


def test_deterministic_per_seed_and_per_image() -> None:
    a_img, a_lab = make_synthetic_nuclei(3, size=(64, 64), seed=7)
    b_img, b_lab = make_synthetic_nuclei(3, size=(64, 64), seed=7)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    first_img, first_lab = make_synthetic_nuclei(1, size=(64, 64), seed=7)
    np.testing.assert_array_equal(first_img[0], a_img[0])  # image i depends on seed and i only
    np.testing.assert_array_equal(first_lab[0], a_lab[0])
    other_img, other_lab = make_synthetic_nuclei(3, size=(64, 64), seed=8)
    assert not np.array_equal(other_img, a_img) and not np.array_equal(other_lab, a_lab)
    assert not np.array_equal(a_lab[0], a_lab[1])


def test_many_nuclei_touch(batch: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = batch
    counts = [len(_touching_pairs(lab)) for lab in labels]
    assert sum(count > 0 for count in counts) >= 6, counts
    assert sum(counts) >= 60, counts  # without placing nuclei next to others: about 35


def test_every_label_is_one_connected_nucleus_of_plausible_size(batch: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = batch
    for lab in labels:
        areas = np.bincount(lab.ravel())[1:]
        assert areas.min() >= MIN_NUCLEUS_AREA
        assert areas.max() <= np.pi * 18 * 18
        for k, box in enumerate(ndimage.find_objects(lab), 1):
            _, n_pieces = ndimage.label(lab[box] == k)  # 4-connectivity
            assert n_pieces == 1, f"label {k} is split into {n_pieces} pieces"
            extent = max(box[0].stop - box[0].start, box[1].stop - box[1].start)
            assert extent <= 2 * 18 + 2


def test_nuclei_cut_by_the_border_occur(batch: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = batch
    edge = np.concatenate([labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]], axis=1)
    assert sum(len(set(row.tolist()) - {0}) for row in edge) >= 10


def test_foreground_fraction_follows_density() -> None:
    _, labels = make_synthetic_nuclei(4, size=(128, 128), density=0.25, seed=3)
    fractions = (labels > 0).mean(axis=(1, 2))
    assert ((fractions > 0.18) & (fractions < 0.32)).all(), fractions
    _, sparse = make_synthetic_nuclei(4, size=(128, 128), density=0.05, seed=3)
    assert ((sparse > 0).mean(axis=(1, 2)) < 0.09).all()


@pytest.mark.parametrize("dtype", ["uint16", "uint8"])
def test_nuclei_brighter_than_background(dtype: str) -> None:
    images, labels = make_synthetic_nuclei(4, size=(128, 128), seed=2, dtype=dtype)
    for image, lab in zip(images.astype(float), labels, strict=True):
        far = ndimage.distance_transform_edt(lab == 0) > 4  # background away from the blurred edges
        assert image[lab > 0].mean() > 2 * image[far].mean()


def test_star_convex_polygons_reconstruct_the_labels(batch: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = batch
    for lab in labels:
        with warnings.catch_warnings():
            warnings.simplefilter("error", StarConvexityWarning)  # no nucleus below IoU 0.8
            result = fidelity(lab, n_rays=32)
        assert result.mean_iou > 0.9, result.mean_iou


@pytest.mark.parametrize(("n", "kwargs", "match"), [
    (0, {}, "n >= 1"), (1, {"size": (16, 64)}, "size >= "), (1, {"density": 0.0}, "density"),
    (1, {"density": (0.3, 0.2)}, "density"), (1, {"density": 0.9}, "density"), (1, {"dtype": "float32"}, "dtype"),
])
def test_bad_arguments(n: int, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_synthetic_nuclei(n, **kwargs)

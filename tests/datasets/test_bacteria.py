from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from convscope.datasets.bacteria import MIN_CELL_AREA, foreground, make_synthetic_bacteria


@pytest.fixture(scope="module")
def crowded() -> tuple[np.ndarray, np.ndarray]:
    return make_synthetic_bacteria(3, size=(128, 160), density=0.5, seed=11)


def _components(mask: np.ndarray) -> int:
    """Number of 4-connected components of a small bool mask (plain BFS, independent of the generator)."""
    seen = np.zeros_like(mask)
    count = 0
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        count += 1
        seen[start] = True
        queue = deque([start])
        while queue:
            y, x = queue.popleft()
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
    return count


def _touching_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    pairs = set()
    for a, b in ((labels[:-1], labels[1:]), (labels[:, :-1], labels[:, 1:])):
        touch = (a != b) & (a > 0) & (b > 0)
        pairs |= {(min(p, q), max(p, q)) for p, q in zip(a[touch].tolist(), b[touch].tolist(), strict=True)}
    return pairs


def _sag(labels: np.ndarray, label: int) -> float:
    """How far a cell's mid line bends away from the straight line through its ends (px)."""
    ys, xs = np.nonzero(labels == label)
    coords = np.stack([ys, xs], 1).astype(float)
    coords -= coords.mean(0)
    _, vectors = np.linalg.eigh(coords.T @ coords)
    u, v = coords @ vectors[:, 1], coords @ vectors[:, 0]  # along and across the main axis
    a, _, _ = np.polyfit(u, v, 2)
    half = (u.max() - u.min()) / 2
    return abs(a) * half**2


def test_shapes_dtypes_and_sequential_labels() -> None:
    images, labels = make_synthetic_bacteria(4, size=(96, 128), seed=1)
    assert images.shape == labels.shape == (4, 96, 128)
    assert images.dtype == np.uint16 and labels.dtype == np.uint16
    for lab in labels:
        np.testing.assert_array_equal(np.unique(lab), np.arange(lab.max() + 1))
        assert lab.max() >= 3
    images8, _ = make_synthetic_bacteria(2, size=(64, 64), seed=1, dtype="uint8")
    assert images8.dtype == np.uint8 and images8.max() < 255  # not saturated


def test_every_label_is_one_connected_cell_of_plausible_size(crowded: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = crowded
    for lab in labels:
        areas = np.bincount(lab.ravel())[1:]
        assert areas.min() >= MIN_CELL_AREA
        assert areas.max() <= 60 * 12  # a whole cell of maximal length and width is about 650 px
        for label in range(1, lab.max() + 1):
            assert _components(lab == label) == 1, f"label {label} is split"


def test_crowded_images_have_many_touching_cells(crowded: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = crowded
    for lab in labels:
        assert len(_touching_pairs(lab)) >= 10
    _, sparse = make_synthetic_bacteria(3, size=(128, 160), density=0.08, seed=11)
    assert sum(len(_touching_pairs(lab)) for lab in sparse) < sum(len(_touching_pairs(lab)) for lab in labels)


def test_curved_and_straight_cells_exist() -> None:
    _, labels = make_synthetic_bacteria(4, size=(128, 128), density=0.2, seed=3)
    sags = [_sag(lab, k) for lab in labels for k in range(1, lab.max() + 1)
            if (lab == k).sum() >= 120 and _components(lab == k) == 1]
    sags = np.array(sags)
    assert (sags > 2.5).sum() >= 3, "expected some clearly curved cells"
    assert (sags < 1.0).sum() >= 10, "expected many straight cells"


def test_lengths_and_widths_in_range() -> None:
    _, labels = make_synthetic_bacteria(2, size=(256, 256), density=0.15, seed=4)
    for lab in labels:
        for k in range(1, lab.max() + 1):
            ys, xs = np.nonzero(lab == k)
            if ys.min() == 0 or xs.min() == 0 or ys.max() == lab.shape[0] - 1 or xs.max() == lab.shape[1] - 1:
                continue  # cut by the image border
            extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
            assert 5 <= extent <= 62


def test_deterministic_per_seed_and_per_image() -> None:
    a_img, a_lab = make_synthetic_bacteria(3, size=(64, 64), seed=7)
    b_img, b_lab = make_synthetic_bacteria(3, size=(64, 64), seed=7)
    np.testing.assert_array_equal(a_img, b_img)
    np.testing.assert_array_equal(a_lab, b_lab)
    first_img, first_lab = make_synthetic_bacteria(1, size=(64, 64), seed=7)
    np.testing.assert_array_equal(first_img[0], a_img[0])  # image i depends on seed and i only
    np.testing.assert_array_equal(first_lab[0], a_lab[0])
    other, _ = make_synthetic_bacteria(3, size=(64, 64), seed=8)
    assert not np.array_equal(other, a_img)


def test_foreground_fraction_follows_density() -> None:
    _, labels = make_synthetic_bacteria(4, size=(128, 128), density=0.3, seed=5)
    fractions = foreground(labels).mean(axis=(1, 2))
    assert ((fractions > 0.22) & (fractions < 0.33)).all(), fractions
    _, labels = make_synthetic_bacteria(6, size=(128, 128), seed=5)  # default: varied density
    fractions = foreground(labels).mean(axis=(1, 2))
    assert ((fractions > 0.05) & (fractions < 0.5)).all(), fractions
    assert fractions.max() - fractions.min() > 0.1


def test_foreground_mask() -> None:
    labels = np.array([[0, 3], [7, 0]], np.uint16)
    mask = foreground(labels)
    assert mask.dtype == np.bool_
    np.testing.assert_array_equal(mask, [[False, True], [True, False]])


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        padded = np.pad(mask, 1)
        mask = mask | padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    return mask


def test_phase_contrast_look_dark_cells_with_bright_halo() -> None:
    images, labels = make_synthetic_bacteria(4, size=(128, 128), density=0.15, seed=9)
    for image, lab in zip(images.astype(float), labels, strict=True):
        cells = lab > 0
        halo = _dilate(cells, 3) & ~_dilate(cells, 1)  # 2-3 px outside the cells
        background = _dilate(cells, 10) & ~_dilate(cells, 7)  # 8-10 px outside, same illumination
        assert np.median(image[cells]) < 0.8 * np.median(image[background])
        assert np.median(image[halo]) > 1.02 * np.median(image[background])


@pytest.mark.parametrize("kwargs", [{"size": (16, 64)}, {"density": 0.0}, {"density": (0.3, 0.2)},
                                    {"density": 0.9}, {"dtype": "float32"}])
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        make_synthetic_bacteria(1, **kwargs)

"""Classical baselines: Otsu threshold and Otsu + distance-transform watershed, scored like the network."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.datasets.segmentation import SegmentationSet
from convscope.evaluation.baselines import (
    MULTICLASS_NAME,
    choose_band_classes,
    choose_polarity,
    otsu_classes,
    otsu_mask,
    run_baseline,
    score_baseline,
    watershed_labels,
)


def _touching_discs(size: int = 64, r: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Two discs touching at one point plus a separate one; a bright RGBA image with a constant alpha."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.uint16)
    for i, (cy, cx) in enumerate(((20, 20), (20, 20 + 2 * r), (48, 40))):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = i + 1
    image = np.zeros((size, size, 4), np.uint8)
    image[..., :3] = (30 + 180 * (labels > 0))[..., None]
    image[..., 3] = 255
    return image, labels


def test_otsu_mask_polarity_and_constant_image() -> None:
    image, labels = _touching_discs()
    assert np.array_equal(otsu_mask(image), (labels > 0).astype(np.uint8))
    assert np.array_equal(otsu_mask(image, polarity="dark"), (labels == 0).astype(np.uint8))
    assert otsu_mask(np.full((8, 8), 7, np.uint16)).sum() == 0


def test_watershed_splits_touching_discs() -> None:
    image, labels = _touching_discs()
    found = watershed_labels(image)
    assert found.dtype == np.uint16 and found.max() == 3  # Otsu alone gives 2 regions
    result = score_baseline([image], [labels], kind="instances")
    assert result["matching"]["0.5"]["f1"] == pytest.approx(1.0)
    assert result["baseline"] == "Otsu + distance-transform watershed" and result["n_images"] == 1


def test_semantic_score_layout_and_values() -> None:
    image, labels = _touching_discs()
    noisy = image.copy()
    noisy[0:4, 0:4, :3] = 250  # 16 false positive pixels
    result = score_baseline([image, noisy], [labels > 0, labels > 0], kind="semantic", names=["a", "b"])
    fg = int((labels > 0).sum())
    assert result["dice"] == pytest.approx(2 * 2 * fg / (2 * 2 * fg + 16))
    assert [row["name"] for row in result["per_image"]] == ["a", "b"]
    assert {"iou", "pixel_accuracy", "per_class"} <= set(result)


def test_choose_polarity_uses_the_masks() -> None:
    image, labels = _touching_discs()
    assert choose_polarity([image], [labels]) == "bright"
    assert choose_polarity([255 - image[..., :3]], [labels]) == "dark"


def test_bad_arguments() -> None:
    image, labels = _touching_discs()
    with pytest.raises(ValueError, match="kind"):
        score_baseline([image], [labels], kind="panoptic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same non-zero"):
        score_baseline([image], [], kind="semantic")


def _three_classes(size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 bright discs, class 2 a dim band, background dark: (image uint8, class map uint8)."""
    yy, xx = np.mgrid[:size, :size]
    classes = np.zeros((size, size), np.uint8)
    classes[:, : size // 4] = 2
    classes[(yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= 64] = 1
    image = np.choose(classes, [np.uint8(20), np.uint8(220), np.uint8(110)]).astype(np.uint8)
    return image, classes


def test_several_classes_get_the_intensity_bands_that_fit_the_validation_masks() -> None:
    image, classes = _three_classes()
    order = choose_band_classes([image], [classes], 3)
    assert order == [0, 2, 1]  # darkest band background, middle band class 2, brightest class 1
    assert np.array_equal(otsu_classes(image, order), classes)
    assert otsu_classes(np.full((8, 8), 5, np.uint8), order).max() == 0
    split = SegmentationSet(images=[image, image[::-1]], masks=[classes, classes[::-1]], paths=("a", "b"))
    result = run_baseline("semantic", split, split, ("background", "disc", "band"))
    assert result is not None and result["baseline"] == MULTICLASS_NAME and result["polarity"] == order
    assert result["dice"] == pytest.approx(1.0) and set(result["per_class"]) == {"background", "disc", "band"}

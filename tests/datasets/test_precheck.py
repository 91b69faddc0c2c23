"""The cheap checks train runs first (datasets/precheck.py), and the instance loaders refusing binary masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convscope.config import DataConfig
from convscope.datasets import load_task_data
from convscope.datasets.base import ClassificationData, ImageSet
from convscope.datasets.check import DataCheck
from convscope.datasets.facts import binary_regions
from convscope.datasets.precheck import check_loaded
from convscope.datasets.segmentation import SegmentationData, SegmentationSet
from convscope.errors import ConvscopeError
from convscope.io import write_image


def _blobs(ids: tuple[int, ...]) -> np.ndarray:
    mask = np.zeros((16, 16), np.uint16)
    for k, value in enumerate(ids):
        mask[1 + 5 * k : 4 + 5 * k, 2:6] = value
    return mask


def test_binary_regions() -> None:
    assert binary_regions(_blobs((1, 1, 1))) == 3
    assert binary_regions(_blobs((255, 255))) == 2
    assert binary_regions(_blobs((1, 2, 3))) == 0  # instance labels
    assert binary_regions(_blobs((1,))) == 0  # one object
    assert binary_regions(np.zeros((4, 4), np.uint8)) == 0


def _segmentation(masks: list[np.ndarray], *, duplicate: bool = False) -> SegmentationData:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (16, 16, 1), dtype=np.uint8) for _ in masks]
    train = SegmentationSet(images[:-1], masks[:-1], tuple(f"m{i}.png" for i in range(len(masks) - 1)))
    test_image = images[0] if duplicate else images[-1]
    test = SegmentationSet([test_image], masks[-1:], ("t.png",))
    val = SegmentationSet([255 - images[-1]], masks[-1:], ("v.png",))
    return SegmentationData(train, val, test, ("background", "cell"))


def _finding(check: DataCheck, name: str):
    return next(f for folder in check.folders for f in folder.findings if f.check == name)


def test_binary_masks_are_errors_for_instance_tasks_only() -> None:
    data = _segmentation([_blobs((1, 1)), _blobs((255, 255, 255)), _blobs((1, 2))])
    star = check_loaded(data, "stardist", target="cells")
    assert _finding(star, "instance ids").severity == "error"
    assert "not usable for stardist: 2 of 4 masks are binary" in star.verdict
    assert check_loaded(data, "semantic").errors == []


def test_instance_labels_pass_with_their_median_diameter() -> None:
    check = check_loaded(_segmentation([_blobs((1, 2)), _blobs((5, 9, 7))]), "flows")
    assert check.errors == []
    objects = _finding(check, "objects").finding
    assert "8 objects" in objects and f"median diameter {np.sqrt(4 * 12 / np.pi):.1f} px" in objects


def test_all_empty_masks_are_an_error_some_are_a_note() -> None:
    empty = np.zeros((16, 16), np.uint16)
    assert _finding(check_loaded(_segmentation([empty, empty]), "semantic"), "empty masks").severity == "error"
    assert _finding(check_loaded(_segmentation([_blobs((1,)), empty]), "semantic"), "empty masks").severity == "note"


def test_exact_duplicates_across_splits_and_constant_images_are_warnings() -> None:
    check = check_loaded(_segmentation([_blobs((1,)), _blobs((1,))], duplicate=True), "semantic")
    assert _finding(check, "leakage (exact)").severity == "warning"
    assert "m0.png" in _finding(check, "leakage (exact)").finding
    images = np.zeros((6, 8, 8, 1), np.uint8)
    images[:5] = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.arange(8, dtype=np.uint8)[None, :, None, None]
    labels = np.array([0, 1, 0, 0, 0, 0])
    train = ImageSet(images, labels, ("a", "b"), tuple(f"i{i}" for i in range(6)))
    test = ImageSet(images[:1] + 100, labels[:1], ("a", "b"), ("t0",))
    check = check_loaded(ClassificationData(train, train.subset(np.arange(1, 3)), test), "classification")
    constant = _finding(check, "constant")  # i0, i5 and the test image
    assert constant.severity == "warning" and constant.finding.startswith("3 image(s)") and "i5" in constant.finding
    assert _finding(check, "class balance").severity == "warning"  # 5 a, 1 b
    assert _finding(check, "test classes").severity == "warning"  # no test image of b


def test_a_data_check_round_trips_through_json() -> None:
    check = check_loaded(_segmentation([_blobs((1, 1)), _blobs((1, 2))]), "stardist", target="cells")
    again = DataCheck.from_dict(check.to_dict())
    assert again == check and again.verdict == check.verdict


def test_a_paired_folder_of_binary_masks_is_refused_for_instances(tmp_path: Path) -> None:
    for i in range(4):
        write_image(tmp_path / "images" / f"a{i}.png", (np.arange(256, dtype=np.uint8).reshape(16, 16)))
        write_image(tmp_path / "masks" / f"a{i}.png", (_blobs((255, 255)) if i else _blobs((1,))).astype(np.uint8))
    cfg = DataConfig(dataset="paired", path=tmp_path)
    with pytest.raises(ConvscopeError, match=r"3 of 4 masks are binary.*stardist, flows.*--relabel"):
        load_task_data(cfg, "instances")
    assert len(load_task_data(cfg, "semantic").train) > 0  # fine as semantic masks

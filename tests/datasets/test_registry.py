from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from convscope.config import DataConfig
from convscope.datasets import (
    DatasetInfo,
    dataset_info,
    list_datasets,
    load_classification,
    split_indices,
    stratified_subsample,
)
from convscope.datasets.mnist import write_idx
from convscope.errors import ConvscopeError
from convscope.io import write_image


def _folder(root: Path, counts: dict[str, int], shape: tuple[int, ...] = (5, 6)) -> Path:
    for c, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            write_image(root / name / f"{i:03d}.png", np.full(shape, 20 * c + i, np.uint8))
    return root


def test_registry() -> None:
    names = [d.name for d in list_datasets()]
    assert names == ["dsb2018", "folder", "isbi2012", "mnist", "paired", "rbc", "synthetic_bacteria",
                     "synthetic_cells", "synthetic_nuclei"]
    assert {d.name for d in list_datasets() if "semantic" in d.tasks} == {
        "dsb2018", "isbi2012", "paired", "synthetic_bacteria", "synthetic_nuclei"}
    assert {d.name for d in list_datasets() if "stardist" in d.tasks} == {
        "dsb2018", "paired", "synthetic_bacteria", "synthetic_nuclei"}
    mnist = dataset_info("mnist")
    assert mnist.downloadable and mnist.has_test_split and mnist.tasks == ("classification",)
    assert not dataset_info("rbc").downloadable
    assert not dataset_info("folder").has_test_split
    with pytest.raises(dataclasses.FrozenInstanceError):
        mnist.name = "x"  # type: ignore[misc]
    assert isinstance(mnist, DatasetInfo)


def test_unknown_dataset_suggests() -> None:
    with pytest.raises(ConvscopeError, match="unknown data set 'mnsit'; did you mean 'mnist'"):
        dataset_info("mnsit")


def test_split_is_stratified_disjoint_and_complete() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    keep, held = split_indices(labels, 0.2, seed=0)
    assert keep.dtype == np.int64 and held.dtype == np.int64
    assert np.intersect1d(keep, held).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([keep, held])), np.arange(100))
    np.testing.assert_array_equal(np.bincount(labels[held]), [10, 6, 4])


def test_split_is_seeded() -> None:
    labels = np.repeat([0, 1], 40)
    a, b, c = (split_indices(labels, 0.25, seed=s)[1] for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_split_keeps_one_per_side_when_possible() -> None:
    labels = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2])
    keep, held = split_indices(labels, 0.05, seed=0)
    assert set(labels[held]) == {0, 1}  # rounding would give 0 images; at least one is held out
    assert set(labels[keep]) == {0, 1, 2}  # the single image of class 2 stays on the kept side
    keep, held = split_indices(np.array([0, 0, 1, 1]), 0.9, seed=0)
    assert set(np.array([0, 0, 1, 1])[keep]) == {0, 1}
    with pytest.raises(ValueError):
        split_indices(labels, 1.0, seed=0)


def test_stratified_subsample() -> None:
    labels = np.array([0] * 70 + [1] * 30)
    idx = stratified_subsample(labels, 10, seed=0)
    assert len(idx) == 10 and len(np.unique(idx)) == 10
    np.testing.assert_array_equal(np.bincount(labels[idx]), [7, 3])
    np.testing.assert_array_equal(stratified_subsample(labels, 200, seed=0), np.arange(100))
    rare = np.array([0] * 99 + [1])
    assert 1 in rare[stratified_subsample(rare, 5, seed=0)]


def test_load_folder_carves_fixed_test_and_seeded_val(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs", {"cat": 10, "dog": 10})
    cfg = DataConfig(dataset="folder", path=root, val_fraction=0.2, test_fraction=0.2)
    data = load_classification(cfg, seed=0)
    assert data.class_names == ("cat", "dog")
    assert (len(data.train), len(data.val), len(data.test)) == (12, 4, 4)
    sets = [set(s.paths) for s in (data.train, data.val, data.test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    np.testing.assert_array_equal(np.bincount(data.val.labels), [2, 2])
    other = load_classification(cfg, seed=1)
    assert set(other.test.paths) == sets[2]  # the carved test split does not move with the seed
    assert set(other.val.paths) != sets[1]
    assert data.image_shape == (5, 6, 1)


def test_max_train_images(tmp_path: Path) -> None:
    root = _folder(tmp_path / "imgs", {"a": 20, "b": 20})
    data = load_classification(DataConfig(dataset="folder", path=root, max_train_images=6))
    assert len(data.train) == 6
    np.testing.assert_array_equal(np.bincount(data.train.labels), [3, 3])
    assert len(data.val) > 0


def test_folder_needs_path() -> None:
    with pytest.raises(ConvscopeError, match=r"data\.path: required for data\.dataset=folder"):
        load_classification(DataConfig(dataset="folder"))


def test_train_test_layout_and_shape_mismatch(tmp_path: Path) -> None:
    _folder(tmp_path / "train", {"a": 4, "b": 4})
    _folder(tmp_path / "test", {"a": 2, "b": 2}, shape=(7, 7))
    cfg = DataConfig(dataset="folder", path=tmp_path)
    with pytest.raises(ConvscopeError, match=r"test images are 7x7x1 \(HxWxC\) but train images are 5x6x1"):
        load_classification(cfg)
    data = load_classification(cfg.model_copy(update={"resize": (4, 4)}))
    assert len(data.test) == 4 and data.image_shape == (4, 4, 1)


def test_named_set_found_under_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _folder(tmp_path / "rbc" / "train", {"abnormal": 3, "normal": 3})
    _folder(tmp_path / "rbc" / "test", {"abnormal": 2, "normal": 2})
    data = load_classification(DataConfig(dataset="rbc"), data_dir=tmp_path)
    assert len(data.test) == 4 and len(data.train) + len(data.val) == 6
    monkeypatch.setenv("CONVSCOPE_DATA", str(tmp_path))
    assert len(load_classification(DataConfig(dataset="rbc")).test) == 4


def test_rbc_without_data_explains_its_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVSCOPE_DATA", raising=False)
    with pytest.raises(ConvscopeError, match=r"rbc: no data folder given.*Chula RBC-12.*--data DIR"):
        load_classification(DataConfig(dataset="rbc"))
    with pytest.raises(ConvscopeError, match=r"rbc not found.*not downloadable"):
        load_classification(DataConfig(dataset="rbc"), data_dir=tmp_path)


def test_mnist_under_data_dir_with_resize_and_rgb(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 20), ("t10k", 6)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 2).astype(np.uint8))
    data = load_classification(DataConfig(dataset="mnist", resize=(14, 14), color="rgb"), data_dir=tmp_path)
    assert data.image_shape == (14, 14, 3) and data.train.images.dtype == np.uint8
    assert len(data.test) == 6 and data.class_names == tuple("0123456789")


def test_synthetic_train_and_test_differ() -> None:
    cfg = DataConfig(dataset="synthetic_cells", synthetic_count=40, synthetic_size=24, val_fraction=0.25)
    data = load_classification(cfg, seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, 40)
    assert data.image_shape == (24, 24, 1)
    assert not np.array_equal(data.test.images[:10], data.train.images[:10])
    again = load_classification(cfg, seed=3)
    np.testing.assert_array_equal(again.val.images, data.val.images)

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convscope.datasets.folders import (
    convert_color,
    load_class_folders,
    load_folder_splits,
    resize_image,
    resize_images,
)
from convscope.errors import ConvscopeError
from convscope.io import write_image


def _put(path: Path, shape: tuple[int, ...] = (6, 8), dtype: type = np.uint8, value: int = 10) -> Path:
    write_image(path, np.full(shape, value, dtype))
    return path


def _classes(root: Path, names: tuple[str, ...] = ("b", "a"), per_class: int = 3, **kwargs) -> Path:
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            _put(root / name / f"{name}{i}.png", value=10 * c + i, **kwargs)
    return root


def test_loads_sorted_classes_with_labels_and_paths(tmp_path: Path) -> None:
    root = _classes(tmp_path / "data")
    (root / "a" / "notes.txt").write_text("ignored")
    (root / ".hidden").mkdir()
    images = load_class_folders(root)
    assert images.class_names == ("a", "b")
    assert images.images.shape == (6, 6, 8, 1) and images.images.dtype == np.uint8
    np.testing.assert_array_equal(images.labels, [0, 0, 0, 1, 1, 1])
    assert Path(images.paths[0]).name == "a0.png" and Path(images.paths[-1]).name == "b2.png"
    np.testing.assert_array_equal(images.images[:, 0, 0, 0], [10, 11, 12, 0, 1, 2])  # "a" was written second


def test_sixteen_bit_tiff_stays_uint16(tmp_path: Path) -> None:
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
        _put(tmp_path / name / "img.tif", dtype=np.uint16, value=40000)
    images = load_class_folders(tmp_path)
    assert images.images.dtype == np.uint16
    assert images.images.max() == 40000


def test_rgb_jpeg_and_tiff_mix_of_formats(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    _put(tmp_path / "x" / "a.jpg", shape=(5, 5, 3))
    _put(tmp_path / "y" / "b.TIF", shape=(5, 5, 3))
    images = load_class_folders(tmp_path)
    assert images.images.shape == (2, 5, 5, 3)


@pytest.mark.parametrize(("setup", "pattern"), [
    (lambda r: None, "missing: image folder not found"),
    (lambda r: r.mkdir(), "missing: no class subfolders with images"),
    (lambda r: (r.mkdir(), _put(r / "loose.png")), r"missing: 1 image\(s\) but no class subfolders"),
    (lambda r: (_classes(r), (r / "c").mkdir()), r"missing/c: class folder has no images"),
    (lambda r: _classes(r, names=("only",)), r"missing: only one class folder \('only'\)"),
])
def test_layout_errors_name_the_folder(tmp_path: Path, setup, pattern: str) -> None:
    root = tmp_path / "missing"
    setup(root)
    with pytest.raises(ConvscopeError, match=pattern):
        load_class_folders(root)


def test_mixed_sizes_name_file_sizes_and_fix(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d")
    _put(root / "b" / "odd.png", shape=(9, 7))
    with pytest.raises(ConvscopeError, match=r"odd\.png: image is 9x7 \(HxW\) but .*a0\.png is 6x8; "
                                             r"set data\.resize=\[H, W\]"):
        load_class_folders(root)


def test_mixed_sizes_with_resize(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d")
    _put(root / "b" / "odd.png", shape=(9, 7), value=200)
    images = load_class_folders(root, resize=(4, 5))
    assert images.images.shape == (7, 4, 5, 1)
    assert images.images[-1].min() == images.images[-1].max() == 200  # constant images stay constant


def test_mixed_channels_auto_names_both_files(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d")
    _put(root / "b" / "rgb.png", shape=(6, 8, 3))
    with pytest.raises(ConvscopeError, match=r"rgb\.png: 3 channel\(s\) but .*a0\.png has 1; "
                                             "set data.color=gray or data.color=rgb"):
        load_class_folders(root)
    assert load_class_folders(root, color="gray").images.shape[-1] == 1
    assert load_class_folders(root, color="rgb").images.shape[-1] == 3


def test_mixed_dtypes(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d")
    _put(root / "b" / "deep.tif", dtype=np.uint16)
    with pytest.raises(ConvscopeError, match=r"deep\.tif: uint16 image but .*a0\.png is uint8"):
        load_class_folders(root)


def test_float_images_are_refused(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d")
    _put(root / "b" / "float.tif", dtype=np.float32)
    with pytest.raises(ConvscopeError, match=r"float\.tif: float32 images are not supported"):
        load_class_folders(root)


def test_corrupt_image_named(tmp_path: Path) -> None:
    root = _classes(tmp_path / "d")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    with pytest.raises(ConvscopeError, match=r"broken\.jpg: cannot read image"):
        load_class_folders(root)


def test_alpha_needs_explicit_color(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        rgba = np.dstack([np.full((4, 4, 3), 50, np.uint8), np.full((4, 4), 7, np.uint8)])
        write_image(root / name / "x.png", rgba)
    with pytest.raises(ConvscopeError, match=r"x\.png: image has an alpha channel.*data\.color=rgb"):
        load_class_folders(root)
    rgb = load_class_folders(root, color="rgb")
    assert rgb.images.shape == (2, 4, 4, 3) and rgb.images.max() == 50  # alpha dropped


def test_color_conversion_values() -> None:
    rgb = np.zeros((1, 3, 3), np.uint16)
    rgb[0, 0] = [1000, 0, 0]
    rgb[0, 1] = [0, 1000, 0]
    rgb[0, 2] = [0, 0, 1000]
    gray = convert_color(rgb, "gray")
    assert gray.dtype == np.uint16
    np.testing.assert_array_equal(gray[0, :, 0], [299, 587, 114])
    one = np.array([[[7]]], np.uint8)
    np.testing.assert_array_equal(convert_color(one, "rgb"), [[[7, 7, 7]]])
    assert convert_color(one, "auto") is one


def test_resize_keeps_dtype_and_antialiases() -> None:
    checker = (np.indices((40, 40)).sum(axis=0) % 2 * 60000).astype(np.uint16)
    small = resize_image(checker, (10, 10))
    assert small.dtype == np.uint16 and small.shape == (10, 10)
    assert np.abs(small.astype(int) - 30000).max() < 1000  # averaged, not aliased
    ramp = np.tile(np.arange(0, 250, 50, dtype=np.uint8), (3, 1))[..., None]
    big = resize_image(ramp, (6, 10))
    assert big.dtype == np.uint8 and big.shape == (6, 10, 1)
    assert np.all(np.diff(big[0, :, 0].astype(int)) >= 0)  # monotone interpolation
    assert big[0, 0, 0] == 0 and big[0, -1, 0] == 200  # edges clamped
    batch = np.stack([ramp, ramp])
    np.testing.assert_array_equal(resize_images(batch, (6, 10))[1], big)


def test_splits_layout(tmp_path: Path) -> None:
    _classes(tmp_path / "train")
    _classes(tmp_path / "test", per_class=2)
    train, test = load_folder_splits(tmp_path)
    assert len(train) == 6 and test is not None and len(test) == 4
    assert test.class_names == train.class_names
    only_train, none = load_folder_splits(tmp_path / "train")
    assert none is None and len(only_train) == 6


def test_splits_with_different_classes(tmp_path: Path) -> None:
    _classes(tmp_path / "train")
    _classes(tmp_path / "test", names=("a", "c"))
    with pytest.raises(ConvscopeError, match=r"test: class folders \(a, c\) differ from .*train \(a, b\)"):
        load_folder_splits(tmp_path)


def test_test_without_train(tmp_path: Path) -> None:
    _classes(tmp_path / "test")
    with pytest.raises(ConvscopeError, match="has test/ but no train/"):
        load_folder_splits(tmp_path)


def test_load_image_prepares_like_training(tmp_path: Path) -> None:
    from convscope.datasets.folders import load_image

    _put(tmp_path / "g.png", shape=(6, 8), value=90)
    image = load_image(tmp_path / "g.png", color="rgb", resize=(3, 4))
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8 and image.min() == image.max() == 90
    assert load_image(tmp_path / "g.png").shape == (6, 8, 1)

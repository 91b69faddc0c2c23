from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from convscope.datasets.paired import decode_mask, load_paired_folder, match_pairs, seeded_split
from convscope.errors import ConvscopeError
from convscope.io import write_image


def _pair(root: Path, stem: str, *, shape: tuple[int, ...] = (6, 8), dtype: type = np.uint8,
          image_suffix: str = ".png", mask_suffix: str = ".png", mask: np.ndarray | None = None,
          mask_stem: str | None = None) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(stem))
    top = 255 if dtype == np.uint8 else 60000
    write_image(root / "images" / f"{stem}{image_suffix}", rng.integers(0, top, shape).astype(dtype))
    if mask is None:
        mask = np.zeros(shape[:2], np.uint8)
        mask[1:3, 2:5] = 255
    write_image(root / "masks" / f"{mask_stem or stem}{mask_suffix}", mask)


def test_pairs_by_stem_across_formats_and_sizes(tmp_path: Path) -> None:
    _pair(tmp_path, "b", shape=(10, 12), image_suffix=".tif", mask_suffix=".png")
    _pair(tmp_path, "a", shape=(6, 8), image_suffix=".png", mask_suffix=".tif")
    (tmp_path / "images" / "notes.txt").write_text("ignored")
    samples = load_paired_folder(tmp_path)
    assert [s.id for s in samples] == ["a", "b"]
    assert [s.image.shape for s in samples] == [(6, 8, 1), (10, 12, 1)]  # sizes may differ
    _, mask, image_path, mask_path = samples[1]
    assert Path(image_path).name == "b.tif" and Path(mask_path).name == "b.png"
    assert mask.dtype == np.uint8 and mask.shape == (10, 12)
    assert set(np.unique(mask)) == {0, 1} and mask.sum() == 6


def test_sixteen_bit_tiff_image_is_kept(tmp_path: Path) -> None:
    _pair(tmp_path, "x", dtype=np.uint16, image_suffix=".tif")
    (sample,) = load_paired_folder(tmp_path)
    assert sample.image.dtype == np.uint16 and sample.image.max() > 255
    np.testing.assert_array_equal(sample.image[:, :, 0], tifffile.imread(tmp_path / "images" / "x.tif"))


def test_multichannel_tiff_keeps_all_channels(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_image(tmp_path / "images" / "two.tif", np.ones((5, 7, 2), np.uint16))
    write_image(tmp_path / "masks" / "two.png", np.zeros((5, 7), np.uint8))
    (sample,) = load_paired_folder(tmp_path)
    assert sample.image.shape == (5, 7, 2)  # two stains, not gray + alpha


def test_mask_suffix_and_custom_folder_names(tmp_path: Path) -> None:
    _pair(tmp_path, "cell", mask_stem="cell_mask")
    (tmp_path / "images").rename(tmp_path / "image")
    (tmp_path / "masks").rename(tmp_path / "label")
    (sample,) = load_paired_folder(tmp_path, image_dir="image", mask_dir="label", mask_suffix="_mask")
    assert Path(sample.mask_path).name == "cell_mask.png"


def test_rgb_mask_with_equal_channels_is_one_channel(tmp_path: Path) -> None:
    mask = np.zeros((6, 8, 3), np.uint8)
    mask[2:4, 2:4] = 255
    _pair(tmp_path, "a", mask=mask)
    assert load_paired_folder(tmp_path)[0].mask.sum() == 4


def test_mask_modes(tmp_path: Path) -> None:
    labels = np.zeros((6, 8), np.uint16)
    labels[0:2, 0:2], labels[3:5, 3:6] = 7, 300
    _pair(tmp_path, "a", mask=labels, mask_suffix=".tif")
    instance = load_paired_folder(tmp_path, mask_mode="instance")[0].mask
    assert instance.dtype == np.uint16 and set(np.unique(instance)) == {0, 7, 300}  # not relabelled
    binary = load_paired_folder(tmp_path, mask_mode="instance_to_binary")[0].mask
    assert binary.dtype == np.uint8 and binary.sum() == 4 + 6 and binary.max() == 1
    classes = load_paired_folder(tmp_path, mask_mode="multiclass")[0].mask
    assert classes.dtype == np.uint16 and classes.max() == 300


def test_decode_mask_values() -> None:
    np.testing.assert_array_equal(decode_mask(np.array([[0, 65535]], np.uint16), "binary"), [[0, 1]])
    np.testing.assert_array_equal(decode_mask(np.zeros((2, 2), np.uint8), "binary"), np.zeros((2, 2)))
    assert decode_mask(np.array([[0, 2]], np.float32), "multiclass", num_classes=3).dtype == np.uint8
    assert decode_mask(np.array([[0, 70000]], np.int64), "instance").dtype == np.uint32
    with pytest.raises(ValueError, match="mask_mode"):
        decode_mask(np.zeros((2, 2), np.uint8), "semantic")  # type: ignore[arg-type]


def _error(tmp_path: Path, setup, **kwargs) -> str:
    setup(tmp_path)
    with pytest.raises(ConvscopeError) as info:
        load_paired_folder(tmp_path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_mask_names_the_image(tmp_path: Path) -> None:
    def setup(root: Path) -> None:
        _pair(root, "a")
        write_image(root / "images" / "lonely.tif", np.zeros((4, 4), np.uint8))
    message = _error(tmp_path, setup)
    assert "images/lonely.tif: no mask" in message and "masks/lonely.png" in message


def test_mask_without_image_names_the_mask(tmp_path: Path) -> None:
    def setup(root: Path) -> None:
        _pair(root, "a")
        write_image(root / "masks" / "orphan.png", np.zeros((4, 4), np.uint8))
    assert "masks/orphan.png: mask without an image" in _error(tmp_path, setup)


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    message = _error(tmp_path, lambda r: _pair(r, "a", shape=(6, 8), mask=np.zeros((8, 6), np.uint8)))
    assert "masks/a.png: mask is 8x6 (HxW) but its image" in message and "images/a.png is 6x8" in message


def test_non_binary_values_name_the_mask_and_the_modes(tmp_path: Path) -> None:
    mask = np.zeros((6, 8), np.uint8)
    mask[0, 0], mask[1, 1] = 1, 2
    message = _error(tmp_path, lambda r: _pair(r, "a", mask=mask))
    assert "masks/a.png: binary mask has 3 values (0, 1, 2)" in message
    # defect 2 of issue 15: the fix named a recipe key, data.mask_mode, that does not exist
    assert "mask_mode" not in message
    assert "task: stardist or flows" in message and "convscope data check" in message


def test_class_values_beyond_num_classes(tmp_path: Path) -> None:
    mask = np.full((6, 8), 3, np.uint8)
    message = _error(tmp_path, lambda r: _pair(r, "a", mask=mask), mask_mode="multiclass", num_classes=3)
    assert "masks/a.png: class mask has value 3 but num_classes=3" in message


def test_fractional_and_colour_masks(tmp_path: Path) -> None:
    float_mask = np.full((6, 8), 0.5, np.float32)
    assert "a.tif: mask has fractional values" in _error(
        tmp_path / "f", lambda r: _pair(r, "a", mask=float_mask, mask_suffix=".tif"))
    colour = np.zeros((6, 8, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    assert "a.png: mask has 3 channels that differ" in _error(tmp_path / "c", lambda r: _pair(r, "a", mask=colour))


@pytest.mark.parametrize(("setup", "pattern"), [
    (lambda r: None, "data: folder not found"),
    (lambda r: r.mkdir(), "data/images: image folder not found"),
    (lambda r: ((r / "images").mkdir(parents=True), (r / "masks").mkdir()), "data/images: no images"),
    (lambda r: (_pair(r, "a"), (r / "masks" / "a.png").rename(r / "masks" / "b.png"), r.joinpath("masks").rename(
        r / "other")), "data/masks: mask folder not found"),
])
def test_layout_errors_name_the_folder(tmp_path: Path, setup, pattern: str) -> None:
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(ConvscopeError, match=pattern):
        load_paired_folder(root)


def test_duplicate_stem_and_jpeg_mask(tmp_path: Path) -> None:
    def duplicate(root: Path) -> None:
        _pair(root, "a")
        write_image(root / "images" / "a.tif", np.zeros((6, 8), np.uint8))
    assert "a.tif: same name as" in _error(tmp_path / "d", duplicate)
    assert "a.jpg: JPEG masks are lossy" in _error(tmp_path / "j", lambda r: _pair(r, "a", mask_suffix=".jpg"))


def test_mixed_channels_name_the_file(tmp_path: Path) -> None:
    def setup(root: Path) -> None:
        _pair(root, "a")
        _pair(root, "b", shape=(6, 8, 3))
    assert "images/b.png: 3 channel(s) but" in _error(tmp_path, setup)
    samples = load_paired_folder(tmp_path, color="gray")
    assert [s.image.shape[2] for s in samples] == [1, 1]


def test_match_pairs_does_not_read(tmp_path: Path) -> None:
    _pair(tmp_path, "a")
    (tmp_path / "masks" / "a.png").write_bytes(b"not a png")  # only load_paired_folder would notice
    assert [p.name for p in match_pairs(tmp_path)[0]] == ["a.png", "a.png"]
    with pytest.raises(ConvscopeError, match=r"masks/a\.png: cannot read image"):
        load_paired_folder(tmp_path)


def test_seeded_split_disjoint_complete_deterministic() -> None:
    ids = [f"img{i:03d}" for i in range(40)]
    train, val, test = seeded_split(ids, seed=3)
    assert (len(train), len(val), len(test)) == (28, 6, 6)
    assert set(train) | set(val) | set(test) == set(ids)
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    assert train == sorted(train)
    assert seeded_split(list(reversed(ids)), seed=3) == (train, val, test)  # input order does not matter
    assert seeded_split(ids, seed=4) != (train, val, test)


def test_seeded_split_small_and_invalid() -> None:
    train, val, test = seeded_split(["a", "b", "c"], seed=0)
    assert len(train) == len(val) == len(test) == 1
    assert seeded_split(["a", "b"], fractions=(0.5, 0.5, 0.0), seed=0)[2] == []
    with pytest.raises(ValueError, match="unique"):
        seeded_split(["a", "a"], seed=0)
    with pytest.raises(ValueError, match="summing to 1"):
        seeded_split(["a", "b"], fractions=(0.5, 0.2, 0.2), seed=0)
    with pytest.raises(ValueError, match="too few"):
        seeded_split(["a", "b"], seed=0)

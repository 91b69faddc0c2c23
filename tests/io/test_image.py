from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convscope.errors import ConvscopeError
from convscope.io import IMAGE_SUFFIXES, read_image, write_image
from convscope.io.image import PlanesAsChannelsWarning


def _png16_rgb(path: Path, array: np.ndarray) -> None:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    h, w = array.shape[:2]
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + tag + data + crc

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_suffixes() -> None:
    assert set(IMAGE_SUFFIXES) == {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


@pytest.mark.parametrize(("suffix", "shape", "dtype"), [
    (".png", (7, 9), np.uint8),
    (".png", (7, 9), np.uint16),
    (".png", (7, 9, 3), np.uint8),
    (".png", (7, 9, 4), np.uint8),
    (".tif", (7, 9), np.uint16),
    (".tiff", (7, 9, 3), np.uint16),
    (".tif", (7, 9, 2), np.uint8),
    (".tif", (7, 9), np.float32),
])
def test_lossless_round_trip_keeps_dtype_and_values(tmp_path: Path, suffix: str, shape: tuple[int, ...],
                                                    dtype: type) -> None:
    high = 60000 if dtype == np.uint16 else 250
    image = np.random.default_rng(0).integers(0, high, shape).astype(dtype)
    path = tmp_path / f"img{suffix}"
    write_image(path, image)
    back = read_image(path)
    assert back.dtype == dtype
    assert back.shape == shape
    np.testing.assert_array_equal(back, image)


def test_single_channel_axis_is_dropped(tmp_path: Path) -> None:
    image = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    for suffix in (".png", ".tif"):
        write_image(tmp_path / f"a{suffix}", image)
        assert read_image(tmp_path / f"a{suffix}").shape == (3, 4)


def test_jpeg_round_trip_is_close(tmp_path: Path) -> None:
    image = np.full((16, 16, 3), 120, np.uint8)
    write_image(tmp_path / "a.jpg", image)
    back = read_image(tmp_path / "a.jpg")
    assert back.dtype == np.uint8 and back.shape == (16, 16, 3)
    assert np.abs(back.astype(int) - 120).max() <= 2


def test_format_follows_target_suffix_not_temp_file(tmp_path: Path) -> None:
    image = np.zeros((4, 4), np.uint8)
    write_image(tmp_path / "a.png", image)
    write_image(tmp_path / "a.tif", image)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "a.tif").read_bytes()[:2] in (b"II", b"MM")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.tif"]  # no temp files left


def test_write_refuses_lossy_dtype_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConvscopeError, match=r"save as \.tif"):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4), np.uint16))
    with pytest.raises(ConvscopeError, match=r"save as \.tif"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(ConvscopeError, match=r"\.bmp"):
        write_image(tmp_path / "a.bmp", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_uint16_png_above_255_is_not_rescaled(tmp_path: Path) -> None:
    image = np.array([[0, 300], [4095, 65535]], np.uint16)
    write_image(tmp_path / "a.png", image)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), image)


def test_sixteen_bit_rgb_png_is_refused_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "rgb16.png"
    _png16_rgb(path, np.full((3, 4, 3), 3000, np.uint16))
    with pytest.raises(ConvscopeError, match=r"rgb16\.png.*16-bit colour PNG"):
        read_image(path)


def test_palette_png_becomes_rgb_and_bilevel_becomes_0_1(tmp_path: Path) -> None:
    gray = np.array([[0, 255], [255, 0]], np.uint8)
    Image.fromarray(gray).convert("P").save(tmp_path / "pal.png")
    Image.fromarray(gray).convert("1").save(tmp_path / "bw.png")
    pal = read_image(tmp_path / "pal.png")
    assert pal.shape == (2, 2, 3) and pal.dtype == np.uint8
    bw = read_image(tmp_path / "bw.png")
    assert bw.dtype == np.uint8
    np.testing.assert_array_equal(bw, gray // 255)


@pytest.mark.parametrize("name", ["bad.png", "bad.jpg", "bad.tif"])
def test_corrupt_file_names_the_file_and_the_fix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"this is not an image")
    with pytest.raises(ConvscopeError, match=rf"{name}: cannot read image \(.+\); replace or remove the"):
        read_image(path)


def test_truncated_png_is_an_error(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConvscopeError, match=r"cut\.png"):
        read_image(tmp_path / "cut.png")


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(ConvscopeError, match=r"nope\.png: image not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(ConvscopeError, match=r"a\.bmp: cannot read image \(unsupported suffix"):
        read_image(tmp_path / "a.bmp")


def test_multi_plane_tiff_is_refused(tmp_path: Path) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 8, 8), np.uint16))
    with pytest.raises(ConvscopeError, match=r"stack\.tif.*one plane per file"):
        read_image(tmp_path / "stack.tif")


def test_channels_first_tiff_is_moved_last(tmp_path: Path) -> None:
    import tifffile

    planes = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    tifffile.imwrite(tmp_path / "planar.tif", planes, photometric="rgb", planarconfig="separate")
    with pytest.warns(PlanesAsChannelsWarning, match=r"planar\.tif: its 3 planes .* read as channels"):
        image = read_image(tmp_path / "planar.tif")  # a 3-slice z-stack looks the same: the user hears it
    np.testing.assert_array_equal(image, np.moveaxis(planes, 0, -1))


def test_corrupt_tiff_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "empty.tif").write_bytes(b"II*\x00" + b"\x00" * 20)  # a header and no pages
    with pytest.raises(ConvscopeError, match=r"empty\.tif: cannot read image"):
        read_image(tmp_path / "empty.tif")
    assert not caplog.records  # tifffile's own log line is not printed beside the error

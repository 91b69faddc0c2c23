from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from convscope.datasets import mnist
from convscope.datasets.mnist import MNIST_CLASSES, download_mnist, load_mnist, read_idx, write_idx
from convscope.errors import ConvscopeError


def _fake_mnist(folder: Path, n_train: int = 6, n_test: int = 4, *, gz: bool = True) -> dict[str, bytes]:
    """Tiny MNIST-shaped IDX files; returns the uncompressed bytes per canonical name."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    raw = {}
    for name, array in arrays.items():
        write_idx(folder / name, array, compress=False)
        raw[name] = (folder / name).read_bytes()
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw[name]))
            (folder / name).unlink()
    return raw


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path: Path, dtype: type, suffix: str) -> None:
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian(tmp_path: Path) -> None:
    write_idx(tmp_path / "x", np.zeros((3, 2), np.int32))
    assert (tmp_path / "x").read_bytes()[:12] == bytes([0, 0, 0x0C, 2, 0, 0, 0, 3, 0, 0, 0, 2])


@pytest.mark.parametrize(("content", "reason"), [
    (b"\x01\x02\x08\x01\x00\x00\x00\x01\x00", "bad magic number"),
    (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 0]), "unknown element type"),
    (bytes([0, 0, 0x08, 1, 0, 0, 0, 5, 1, 2]), r"dimensions \(5,\) need 5 data bytes, found 2"),
    (bytes([0, 0, 0x08, 3, 0, 0]), "truncated header"),
    (b"", "bad magic number"),
])
def test_bad_idx_files(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(ConvscopeError, match=rf"bad-idx: not a valid IDX file \({reason}"):
        read_idx(path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x04abcd")[:-6])
    with pytest.raises(ConvscopeError, match=r"x\.gz.*corrupt gzip"):
        read_idx(path)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist(tmp_path: Path, gz: bool) -> None:
    _fake_mnist(tmp_path, gz=gz)
    train, test = load_mnist(tmp_path)
    assert train.images.shape == (6, 28, 28, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (4, 28, 28, 1)
    assert train.labels.dtype == np.int64
    np.testing.assert_array_equal(test.labels, [3, 2, 1, 0])
    assert train.class_names == MNIST_CLASSES == tuple("0123456789")
    assert train.paths[5] == "mnist:train/5" and test.paths[0] == "mnist:test/0"


def test_load_mnist_missing_file(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ConvscopeError, match=r"t10k-labels-idx1-ubyte\.gz: MNIST file not found"):
        load_mnist(tmp_path)


def test_load_mnist_label_count_mismatch(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(ConvscopeError, match=r"train-labels.*expected 6 uint8 labels"):
        load_mnist(tmp_path)


def test_download_mnist_from_file_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    raw = _fake_mnist(mirror)
    monkeypatch.setattr(mnist, "MNIST_FILES", {k: hashlib.sha256(v).hexdigest() for k, v in raw.items()})
    dead = (tmp_path / "dead").as_uri() + "/"
    cache = download_mnist(tmp_path / "cache", mirrors=(dead, mirror.as_uri() + "/"))
    train, test = load_mnist(cache)
    assert len(train) == 6 and len(test) == 4


def test_download_mnist_rejects_wrong_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _fake_mnist(mirror)
    monkeypatch.setattr(mnist, "MNIST_FILES", dict.fromkeys(mnist.MNIST_FILES, "1" * 64))
    with pytest.raises(ConvscopeError, match="checksum mismatch"):
        download_mnist(tmp_path / "cache", mirrors=(mirror.as_uri(),))
    assert list((tmp_path / "cache").iterdir()) == []


def test_recorded_checksums_are_sha256_hex() -> None:
    assert len(mnist.MNIST_FILES) == 4
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in mnist.MNIST_FILES.values())
    assert mnist.MNIST_FILES["train-images-idx3-ubyte"].startswith("ba891046")

"""MNIST: the IDX file format and the canonical four files (LeCun, Cortes, Burges).

A MNIST folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
and ``t10k-labels-idx1-ubyte``, each gzipped (``.gz``) or raw. The uncompressed bytes are canonical: their
SHA-256 digests are recorded here and checked on download.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from convscope.datasets.base import ImageSet
from convscope.datasets.sources import download
from convscope.errors import ConvscopeError
from convscope.io.atomic import write_bytes

#: SHA-256 of the uncompressed canonical files.
MNIST_FILES: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Public mirrors serving ``<name>.gz``, tried in order.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MNIST_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
_SPLITS = {"train": "train", "test": "t10k"}

# IDX type codes -> big-endian numpy dtypes.
_IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def _bad_idx(path: Path, reason: str) -> ConvscopeError:
    return ConvscopeError(f"{path}: not a valid IDX file ({reason}); replace it with the canonical file")


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzipped or raw; detected from the content, not the suffix).

    Parameters
    ----------
    path : str or PathLike
        An IDX file such as ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    ndarray
        Shape as stored (``(N, 28, 28)`` for MNIST images, ``(N,)`` for labels), in the stored element
        type converted to native byte order (uint8 for MNIST).

    Raises
    ------
    ConvscopeError
        Missing file, bad gzip stream, bad magic number, unknown type code or wrong data length.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0:2] != b"\x00\x00":
        raise _bad_idx(path, f"bad magic number 0x{raw[:4].hex() or '(empty)'}")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise _bad_idx(path, f"unknown element type code 0x{code:02x}")
    if ndim == 0:
        raise _bad_idx(path, "zero dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _bad_idx(path, "truncated header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise _bad_idx(path, f"dimensions {shape} need {expected} data bytes, found {len(raw) - header}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise ConvscopeError(f"{path}: file not found; check the path")
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise _bad_idx(path, f"corrupt gzip stream: {err}") from None


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzipped when ``compress`` or, by default, when the path ends in .gz).

    Parameters
    ----------
    array : ndarray
        Any shape with 1 to 255 dimensions; dtype uint8, int8, int16, int32, float32 or float64.
    """
    path = Path(path)
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("=").str: k for k, v in _IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("=").str)
    if code is None or not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX cannot store dtype {array.dtype} with {array.ndim} dimensions")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    body = header + np.ascontiguousarray(array, dtype=np.dtype(_IDX_DTYPES[code])).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        body = gzip.compress(body, mtime=0)
    write_bytes(path, body)


def mnist_file(folder: Path, name: str) -> Path | None:
    """``folder/name.gz`` or ``folder/name`` if present, else None."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def has_mnist(folder: str | os.PathLike[str]) -> bool:
    """True if ``folder`` holds all four MNIST files (gzipped or raw)."""
    return all(mnist_file(Path(folder), name) is not None for name in MNIST_FILES)


def download_mnist(folder: str | os.PathLike[str], *, mirrors: tuple[str, ...] = MNIST_MIRRORS) -> Path:
    """Download the missing MNIST files into ``folder`` as ``<name>.gz``, each verified by SHA-256.

    Mirrors are tried in order; the error of the last one is raised if all fail.
    """
    folder = Path(folder)
    for name, digest in MNIST_FILES.items():
        if mnist_file(folder, name) is not None:
            continue
        error: ConvscopeError | None = None
        for mirror in mirrors:
            try:
                download(mirror.rstrip("/") + f"/{name}.gz", folder / f"{name}.gz", sha256=digest,
                         decompress_gzip_for_hash=True)
                error = None
                break
            except ConvscopeError as err:
                error = err
        if error is not None:
            raise error
    return folder


def load_mnist(folder: str | os.PathLike[str]) -> tuple[ImageSet, ImageSet]:
    """Load the MNIST train (60,000) and test (10,000) splits from ``folder``.

    Returns
    -------
    train, test : ImageSet
        Images ``(N, 28, 28, 1)`` uint8 (0 = background), labels int64 0..9, class names ``"0"``..``"9"``,
        paths ``"mnist:train/123"`` / ``"mnist:test/45"``.

    Raises
    ------
    ConvscopeError
        If a file is missing or invalid, or images and labels do not match.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConvscopeError(f"{folder}: MNIST folder not found; put the four MNIST files (.gz) there")
    return _load_split(folder, "train"), _load_split(folder, "test")


def _load_split(folder: Path, split: str) -> ImageSet:
    prefix = _SPLITS[split]
    image_path = _require(folder, f"{prefix}-images-idx3-ubyte")
    label_path = _require(folder, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise _bad_idx(image_path, f"expected (N, H, W) uint8 images, found {images.shape} {images.dtype}")
    if labels.ndim != 1 or labels.dtype != np.uint8 or len(labels) != len(images):
        raise _bad_idx(label_path, f"expected {len(images)} uint8 labels, found {labels.shape} "
                                   f"{labels.dtype}")
    if labels.size and labels.max() > 9:
        raise _bad_idx(label_path, f"label {int(labels.max())} outside 0..9")
    paths = tuple(f"mnist:{split}/{i}" for i in range(len(labels)))
    return ImageSet(images[..., None], labels.astype(np.int64), MNIST_CLASSES, paths)


def _require(folder: Path, name: str) -> Path:
    path = mnist_file(folder, name)
    if path is None:
        raise ConvscopeError(f"{folder / name}.gz: MNIST file not found; put the four MNIST files in "
                             f"{folder} (or leave the folder unset to download them into the cache)")
    return path

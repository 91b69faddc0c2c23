"""Read and write 2-D images (PNG, JPEG, TIFF) without changing their dtype or range.

``read_image`` returns what the file stores: ``(H, W)`` for one channel, ``(H, W, C)`` otherwise,
uint8 or uint16 as saved (never rescaled). TIFF goes through tifffile, PNG and JPEG through Pillow
(imageio's Pillow plugin for writing). Any file that cannot be read raises
:class:`~convscope.errors.ConvscopeError` naming it.
"""

from __future__ import annotations

import logging
import os
import struct
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from PIL import Image

from convscope.errors import ConvscopeError
from convscope.io.atomic import atomic_path

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_TIFF_SUFFIXES = (".tif", ".tiff")
_FIX = "replace or remove the file"


class PlanesAsChannelsWarning(UserWarning):
    """A TIFF stores its planes first (``SYX``/``CYX``): they are read as channels, but they may be a z-stack or
    a time series (one line, naming the file)."""


def _fail(path: Path, reason: str) -> ConvscopeError:
    return ConvscopeError(f"{path}: cannot read image ({reason}); {_FIX}")


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one 2-D image.

    Parameters
    ----------
    path : str or PathLike
        A ``.png``, ``.jpg``/``.jpeg`` or ``.tif``/``.tiff`` file.

    Returns
    -------
    ndarray, shape (H, W) or (H, W, C)
        Axes "YX" or "YXC", dtype as stored (uint8 or uint16 for PNG/JPEG; TIFF keeps any dtype).
        1-bit images become uint8 with values 0 and 1. Palette PNGs are expanded to RGB(A).

    Raises
    ------
    ConvscopeError
        Missing, corrupt, unsupported or multi-plane files, with the path and the fix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise _fail(path, f"unsupported suffix '{path.suffix}', expected one of {' '.join(IMAGE_SUFFIXES)}")
    if not path.is_file():
        raise ConvscopeError(f"{path}: image not found; check the path")
    if suffix in _TIFF_SUFFIXES:
        image = _read_tiff(path)
    else:
        image = _read_pillow(path, suffix)
    if image.dtype == np.bool_:
        image = image.astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or min(image.shape[:2]) == 0:
        raise _fail(path, f"unexpected array shape {image.shape}, expected (H, W) or (H, W, C)")
    return image


def _read_tiff(path: Path) -> np.ndarray:
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # a corrupt file is reported once, by the error below
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, image = series.axes, series.asarray()
    except Exception as err:  # tifffile raises many types for corrupt files
        raise _fail(path, _short(err)) from None
    finally:
        logger.setLevel(level)
    if axes in ("YX", "YXS", "YXC"):
        return image
    if axes == "YXQ" and image.shape[2] == 1:
        return image[:, :, 0]
    if axes in ("SYX", "CYX"):
        warnings.warn(f"{path}: its {image.shape[0]} planes ({axes}, {image.shape[1]}x{image.shape[2]}) are read as "
                      "channels; if they are z-slices or time points, save one plane per file",
                      PlanesAsChannelsWarning, stacklevel=3)
        return np.moveaxis(image, 0, -1)
    raise _fail(path, f"TIFF has axes {axes} with shape {image.shape}; only single 2-D images (YX, YXS, CYX) "
                      "are supported, save one plane per file")


def _read_pillow(path: Path, suffix: str) -> np.ndarray:
    # Pillow directly rather than imageio.v3.imread: imageio's plugin set-up retries two failing optional
    # imports on every call, which doubles the time per small JPEG and serialises threads on the import lock.
    bit_depth, colour_type = _png_header(path) if suffix == ".png" else (None, None)
    if bit_depth == 16 and colour_type in (2, 4, 6):
        # Pillow would silently reduce 16-bit colour/alpha PNGs to 8 bits.
        raise _fail(path, "16-bit colour PNG, which Pillow reduces to 8 bits; save it as a 16-bit TIFF")
    try:
        with Image.open(path) as im:
            im.load()
            image = np.asarray(_plain_mode(im))
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, ... for corrupt files
        raise _fail(path, _short(err)) from None
    if image.dtype.byteorder == ">":
        image = image.astype(image.dtype.newbyteorder("="))
    if bit_depth == 16 and image.dtype != np.uint16:
        if image.min() < 0 or image.max() > 65535:
            raise _fail(path, f"16-bit PNG decoded as {image.dtype} out of range")
        image = image.astype(np.uint16)
    return image


def _plain_mode(im: Image.Image) -> Image.Image:
    """Palette and non-RGB colour modes to RGB(A), as imageio does; numeric modes unchanged."""
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode == "PA":
        return im.convert("RGBA")
    if im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return im.convert("RGB")
    return im


def _png_header(path: Path) -> tuple[int | None, int | None]:
    """(bit depth, colour type) from the PNG IHDR chunk, or (None, None) if it is not a PNG."""
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None, None
    bit_depth, colour_type = struct.unpack(">BB", head[24:26])
    return bit_depth, colour_type


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    text = text[:120]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def write_image(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write one 2-D image atomically; the format follows the suffix of ``path``.

    Parameters
    ----------
    path : str or PathLike
        Target file: ``.tif``/``.tiff`` (any dtype, lossless), ``.png`` (uint8 gray/RGB/RGBA, or
        uint16 gray) or ``.jpg``/``.jpeg`` (uint8 gray/RGB, lossy, quality 95).
    image : ndarray, shape (H, W) or (H, W, C)
        Axes "YX" or "YXC". bool arrays are written as uint8 0/1.

    Raises
    ------
    ConvscopeError
        For a suffix or dtype the format cannot store without changing the values.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    image = np.asarray(image)
    if image.dtype == np.bool_:
        image = image.astype(np.uint8)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {image.shape}")
    if suffix not in IMAGE_SUFFIXES:
        known = " ".join(IMAGE_SUFFIXES)
        raise ConvscopeError(f"{path}: cannot write suffix '{path.suffix}'; use one of {known}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if suffix not in _TIFF_SUFFIXES:
        _check_pillow_writable(path, image, suffix)
    with atomic_path(path) as tmp:
        if suffix in _TIFF_SUFFIXES:
            _write_tiff(tmp, image)
        elif suffix == ".png":
            iio.imwrite(tmp, image, plugin="pillow", extension=".png")
        else:
            iio.imwrite(tmp, image, plugin="pillow", extension=".jpg", quality=95)


def _write_tiff(tmp: Path, image: np.ndarray) -> None:
    if image.ndim == 2:
        tifffile.imwrite(tmp, image, photometric="minisblack")
    else:  # channels last, stored interleaved in one page ("YXS")
        rgb = image.shape[2] in (3, 4) and image.dtype in (np.uint8, np.uint16)
        tifffile.imwrite(tmp, image, photometric="rgb" if rgb else "minisblack", planarconfig="contig")


def _check_pillow_writable(path: Path, image: np.ndarray, suffix: str) -> None:
    channels = 1 if image.ndim == 2 else image.shape[2]
    jpeg = suffix in (".jpg", ".jpeg")
    ok_channels = (1, 3) if jpeg else (1, 2, 3, 4)
    if channels not in ok_channels:
        raise ConvscopeError(f"{path}: {suffix} cannot store {channels} channels; save as .tif")
    if image.dtype == np.uint8:
        return
    if image.dtype == np.uint16 and channels == 1 and not jpeg:
        return
    raise ConvscopeError(f"{path}: {suffix} cannot store {channels}-channel {image.dtype} images without "
                         "changing the values; save as .tif")

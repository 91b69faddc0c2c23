"""Your own images: one subfolder per class, optionally split into ``train/`` and ``test/``.

Layouts::

    ROOT/<class>/*.png|jpg|tif             (train only; validation and test are carved out later)
    ROOT/train/<class>/*  ROOT/test/<class>/*

Class names are the sorted subfolder names. Images keep their dtype (uint8 or uint16). Channels are
only changed on request (``color="gray"`` or ``"rgb"``) and sizes only with ``resize``; anything
inconsistent is a :class:`~convscope.errors.ConvscopeError` naming the file and the recipe key that fixes it.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from convscope.datasets.base import ImageSet
from convscope.errors import ConvscopeError
from convscope.io.image import IMAGE_SUFFIXES, read_image

Color = Literal["auto", "gray", "rgb"]
_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as Pillow's convert("L")
_PROGRESS_MIN_FILES = 1000
_SKIP_DIRS = ("__MACOSX",)


# ---------------------------------------------------------------------------------------------------------
# Array helpers: resize and colour conversion (dtype kept)
# ---------------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 bilinear weights; the triangle widens when shrinking (antialiasing)."""
    scale = n_in / n_out
    support = max(scale, 1.0)
    centers = (np.arange(n_out) + 0.5) * scale - 0.5
    dist = np.abs(np.arange(n_in)[None, :] - centers[:, None])
    weights = np.maximum(0.0, 1.0 - dist / support)
    weights /= weights.sum(axis=1, keepdims=True)
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def _cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dtype)


def resize_images(images: np.ndarray, size: tuple[int, int], *, chunk: int = 2048) -> np.ndarray:
    """Resize a batch with bilinear interpolation (antialiased when shrinking), keeping the dtype.

    Parameters
    ----------
    images : ndarray, shape (N, H, W, C)
        Any real dtype; integer results are rounded and clipped to the dtype's range.
    size : (int, int)
        Target (height, width).

    Returns
    -------
    ndarray, shape (N, height, width, C), same dtype as ``images``
    """
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f"resize size must be positive, got {size}")
    n, h, w, c = images.shape
    if (h, w) == (height, width):
        return images.copy()
    wy, wx = _resize_weights(h, height), _resize_weights(w, width)
    out = np.empty((n, height, width, c), dtype=images.dtype)
    for start in range(0, n, chunk):
        block = images[start:start + chunk].astype(np.float32).transpose(0, 3, 1, 2)  # N C H W
        block = (wy @ block) @ wx.T
        out[start:start + chunk] = _cast_like(block.transpose(0, 2, 3, 1), images.dtype)
    return out


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one image ``(H, W)`` or ``(H, W, C)`` to ``size`` = (height, width), keeping the dtype."""
    batch = image[None, :, :, None] if image.ndim == 2 else image[None]
    out = resize_images(batch, size)[0]
    return out[:, :, 0] if image.ndim == 2 else out


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W, 1): alpha dropped (C = 2 or 4), RGB to BT.601 luminance, dtype kept."""
    channels = image.shape[2]
    if channels in (1, 2):
        return image[:, :, :1].copy()
    luma = image[:, :, :3].astype(np.float32) @ _LUMA.astype(np.float32)
    return _cast_like(luma, image.dtype)[:, :, None]


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W, 3): gray replicated, alpha dropped, dtype kept."""
    channels = image.shape[2]
    if channels in (1, 2):
        return np.repeat(image[:, :, :1], 3, axis=2)
    return image[:, :, :3].copy()


def convert_color(image: np.ndarray, color: Color, *, source: str = "image") -> np.ndarray:
    """Apply the ``data.color`` choice to one image ``(H, W, C)``; ``auto`` keeps it but refuses alpha."""
    channels = image.shape[2]
    if color == "auto":
        if channels in (2, 4):
            raise ConvscopeError(f"{source}: image has an alpha channel ({channels} channels); "
                                 "set data.color=rgb (drops alpha) or data.color=gray")
        return image
    if channels > 4:
        raise ConvscopeError(f"{source}: {channels}-channel image cannot be converted to {color}; "
                             "set data.color=auto to keep all channels")
    if color == "gray":
        return to_gray(image)
    if color == "rgb":
        return to_rgb(image)
    raise ValueError(f"unknown color mode {color!r}, expected auto, gray or rgb")


# ---------------------------------------------------------------------------------------------------------
# Folder layout
# ---------------------------------------------------------------------------------------------------------

def _visible(path: Path) -> bool:
    return not path.name.startswith(".") and path.name not in _SKIP_DIRS


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if _visible(p) and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _hint(root: Path) -> str:
    return f"put the images in one subfolder per class ({root}/<class>/*.png), or use train/ and test/"


def find_class_files(root: str | os.PathLike[str]) -> tuple[tuple[str, ...], list[list[Path]]]:
    """The sorted class names under ``root`` and the sorted image files of each class.

    Raises
    ------
    ConvscopeError
        Missing folder, no class subfolders, a class without images, or fewer than two classes.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConvscopeError(f"{root}: image folder not found; set data.path to the folder that holds one "
                             "subfolder per class (or train/ and test/)")
    class_dirs = sorted((p for p in root.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)
    if not class_dirs:
        loose = _image_files(root)
        what = (f"{len(loose)} image(s) but no class subfolders" if loose
                else "no class subfolders with images")
        raise ConvscopeError(f"{root}: {what}; {_hint(root)}")
    files = [_image_files(d) for d in class_dirs]
    for folder, found in zip(class_dirs, files, strict=True):
        if not found:
            raise ConvscopeError(f"{folder}: class folder has no images ({' '.join(IMAGE_SUFFIXES)}); "
                                 "add images or remove the folder")
    if len(class_dirs) < 2:
        raise ConvscopeError(f"{root}: only one class folder ('{class_dirs[0].name}'); classification needs "
                             f"at least two: {_hint(root)}")
    return tuple(d.name for d in class_dirs), files


# ---------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------

def load_image(path: str | os.PathLike[str], *, color: Color = "auto",
               resize: tuple[int, int] | None = None) -> np.ndarray:
    """Read one image as a model input is prepared in training: colour choice, then resize.

    Returns
    -------
    ndarray, shape (H, W, C), dtype uint8 or uint16 (as stored)

    Raises
    ------
    ConvscopeError
        Unreadable file, unsupported dtype, or an alpha channel with ``color="auto"``.
    """
    path = Path(path)
    image = read_image(path)
    if image.dtype not in _DTYPES:
        raise ConvscopeError(f"{path}: {image.dtype} images are not supported; save the images as 8-bit or "
                             "16-bit unsigned integers (uint8/uint16)")
    if image.ndim == 2:
        image = image[:, :, None]
    image = convert_color(image, color, source=str(path))
    if resize is not None:
        image = resize_image(image, resize)
    return image


def _load_one(path: Path, color: Color, resize: tuple[int, int] | None) -> np.ndarray:
    """Positional form of :func:`load_image` (kept for existing callers)."""
    return load_image(path, color=color, resize=resize)


def _parallel(func: Callable[[Path], np.ndarray], paths: Sequence[Path], desc: str,
              *, chunk: int = 128) -> Iterator[np.ndarray]:
    """``func`` over ``paths`` in order, in a thread pool (decoders release the GIL), with a progress bar."""
    from tqdm import tqdm

    chunks = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
    workers = min(8, os.cpu_count() or 1, len(chunks))
    show = len(paths) >= _PROGRESS_MIN_FILES
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        with tqdm(total=len(paths), desc=desc, unit="img", file=sys.stderr,
                  disable=None if show else True, leave=False) as bar:
            for images in pool.map(lambda part: [func(p) for p in part], chunks):
                bar.update(len(images))
                yield from images
    finally:  # on the first error, do not keep decoding the rest
        pool.shutdown(wait=True, cancel_futures=True)


def _check_same(images: list[np.ndarray], paths: list[Path], color: Color) -> None:
    """Raise on mixed dtypes, channel counts or sizes, naming the first odd file and the reference."""
    ref, ref_path = images[0], paths[0]
    for image, path in zip(images, paths, strict=True):
        if image.dtype != ref.dtype:
            raise ConvscopeError(f"{path}: {image.dtype} image but {ref_path} is {ref.dtype}; convert all "
                                 "images to one bit depth (all 8-bit or all 16-bit)")
        if image.shape[2] != ref.shape[2]:
            hint = "set data.color=gray or data.color=rgb" if color == "auto" else "set data.color=auto"
            raise ConvscopeError(
                f"{path}: {image.shape[2]} channel(s) but {ref_path} has {ref.shape[2]}; {hint}")
        if image.shape[:2] != ref.shape[:2]:
            raise ConvscopeError(f"{path}: image is {image.shape[0]}x{image.shape[1]} (HxW) but {ref_path} "
                                 f"is {ref.shape[0]}x{ref.shape[1]}; set data.resize=[H, W]")


def load_class_folders(root: str | os.PathLike[str], *, color: Color = "auto",
                       resize: tuple[int, int] | None = None) -> ImageSet:
    """Load ``root/<class>/*`` images into memory.

    Parameters
    ----------
    root : str or PathLike
        Folder with one subfolder per class (sorted names become ``class_names``).
    color : {"auto", "gray", "rgb"}
        ``auto`` keeps the channels (all files must agree; alpha is refused); ``gray`` converts RGB(A) to
        BT.601 luminance; ``rgb`` replicates gray and drops alpha.
    resize : (int, int), optional
        Resize every image to (height, width), bilinear, antialiased when shrinking, dtype kept.
        Without it all images must have the same size.

    Returns
    -------
    ImageSet
        Images ``(N, H, W, C)`` uint8 or uint16, labels int64, paths as strings, in class then file order.

    Raises
    ------
    ConvscopeError
        For every layout or consistency problem, naming the folder or file and the fix.
    """
    root = Path(root)
    class_names, files = find_class_files(root)
    paths = [p for class_files in files for p in class_files]
    labels = np.concatenate([np.full(len(f), i, dtype=np.int64) for i, f in enumerate(files)])
    size = (int(resize[0]), int(resize[1])) if resize is not None else None
    load = functools.partial(load_image, color=color, resize=size)
    images = list(_parallel(load, paths, f"read {root.name}"))
    _check_same(images, paths, color)
    return ImageSet(np.stack(images), labels, class_names, tuple(str(p) for p in paths))


def load_folder_splits(root: str | os.PathLike[str], *, color: Color = "auto",
                       resize: tuple[int, int] | None = None) -> tuple[ImageSet, ImageSet | None]:
    """Load a folder data set: ``root/train`` and optional ``root/test``, else ``root`` itself as train.

    Returns
    -------
    train : ImageSet
    test : ImageSet or None
        None when the data has no test split (the caller carves one out of train).

    Raises
    ------
    ConvscopeError
        Layout problems (see :func:`load_class_folders`), ``test/`` without ``train/``, or train and
        test with different class folders.
    """
    root = Path(root)
    train_dir, test_dir = root / "train", root / "test"
    if not train_dir.is_dir():
        if test_dir.is_dir():
            raise ConvscopeError(f"{root}: has test/ but no train/; add {train_dir} with one subfolder per "
                                 "class")
        return load_class_folders(root, color=color, resize=resize), None
    train = load_class_folders(train_dir, color=color, resize=resize)
    if not test_dir.is_dir():
        return train, None
    test = load_class_folders(test_dir, color=color, resize=resize)
    if test.class_names != train.class_names:
        raise ConvscopeError(f"{test_dir}: class folders ({', '.join(test.class_names)}) differ from "
                             f"{train_dir} ({', '.join(train.class_names)}); use the same class subfolders "
                             "in both")
    return train, test

"""Paired image/mask folders for segmentation, and a fixed seeded split by image.

Layout::

    ROOT/images/<stem>.png|jpg|tif      any size, 8- or 16-bit, one or more channels
    ROOT/masks/<stem>.png|tif           same height and width as its image (JPEG is refused: lossy)

Images and masks are matched by file stem (``cell01.tif`` with ``cell01.png``; with ``mask_suffix="_mask"``,
``cell01.tif`` with ``cell01_mask.png``). Images may differ in size from one pair to the next, so the loader
returns a list of pairs, not a stacked array. How mask values are read is chosen with ``mask_mode``:

``"binary"``
    0 is background and exactly one other value is foreground (1, 255, 65535 ... whatever the file uses;
    an all-zero mask is an image without foreground). Returned as uint8 0/1.
``"multiclass"``
    Every value is a class index (0 = background). With ``num_classes`` the values must be below it.
    Returned as uint8 (uint16 when there are more than 256 classes).
``"instance"``
    Instance labels (0 = background, any positive integers, need not be sequential), kept as uint16 or uint32.
``"instance_to_binary"``
    Instance labels (or any non-negative integer mask) turned into foreground: every non-zero value becomes 1
    (uint8 0/1). Touching instances merge; use it for semantic segmentation of instance data (``dsb2018``).

A single-channel mask saved as gray, RGB or RGBA with equal colour channels (and, for RGBA, an opaque alpha)
is accepted as one channel; real colour masks are refused. Every problem is a
:class:`~convscope.errors.ConvscopeError` naming the file and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np

from convscope.datasets.folders import Color, convert_color
from convscope.errors import ConvscopeError
from convscope.io.image import IMAGE_SUFFIXES, read_image

MaskMode = Literal["binary", "multiclass", "instance", "instance_to_binary"]
MASK_MODES: tuple[str, ...] = ("binary", "multiclass", "instance", "instance_to_binary")
_IMAGE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
_MASK_SUFFIXES = (".png", ".tif", ".tiff")
_TIFF_SUFFIXES = (".tif", ".tiff")
_MAX_VALUES_SHOWN = 6


class PairedSample(NamedTuple):
    """One image with its mask; unpacks as ``image, mask, image_path, mask_path``.

    Attributes
    ----------
    image : ndarray, shape (H, W, C), dtype uint8 or uint16
        Axes "YXC", as stored (never rescaled).
    mask : ndarray, shape (H, W), unsigned integer
        Decoded according to the mask mode (see the module docstring).
    image_path, mask_path : str
        The source files.
    """

    image: np.ndarray
    mask: np.ndarray
    image_path: str
    mask_path: str

    @property
    def id(self) -> str:
        """The file stem shared by image and mask, used for splits."""
        return Path(self.image_path).stem


def load_paired_folder(
    root: str | os.PathLike[str],
    *,
    mask_mode: MaskMode = "binary",
    num_classes: int | None = None,
    color: Color = "auto",
    image_dir: str = "images",
    mask_dir: str = "masks",
    mask_suffix: str = "",
) -> list[PairedSample]:
    """Load every image of ``root/images`` with its mask from ``root/masks``.

    Parameters
    ----------
    root : str or PathLike
        Folder holding the two subfolders.
    mask_mode : {"binary", "multiclass", "instance", "instance_to_binary"}
        How mask values are read and checked (see the module docstring).
    num_classes : int, optional
        For ``"multiclass"``: the number of classes including background; values must be below it.
    color : {"auto", "gray", "rgb"}
        ``auto`` keeps the channels (TIFF keeps all of them; a PNG/JPEG with alpha is refused); ``gray`` and
        ``rgb`` convert as in :func:`~convscope.datasets.folders.convert_color`.
    image_dir, mask_dir : str
        Subfolder names (``image`` and ``label`` for the ``isbi2012`` layout).
    mask_suffix : str
        Extra end of the mask stem: ``"_mask"`` pairs ``a.tif`` with ``a_mask.png``.

    Returns
    -------
    list of PairedSample
        Sorted by stem. Images ``(H, W, C)`` uint8/uint16 with one channel count and dtype for the whole
        folder; sizes may differ between pairs. Masks ``(H, W)`` with the image's height and width.

    Raises
    ------
    ConvscopeError
        Missing or empty folders, an image without a mask or a mask without an image, two files with one
        stem, unreadable files, mixed dtypes or channel counts, a size mismatch, or mask values that do not
        fit ``mask_mode``, each naming the file.
    """
    if mask_mode not in MASK_MODES:
        raise ValueError(f"mask_mode must be one of {', '.join(MASK_MODES)}, got {mask_mode!r}")
    if num_classes is not None and mask_mode != "multiclass":
        raise ValueError("num_classes is only used with mask_mode='multiclass'")
    pairs = match_pairs(root, image_dir=image_dir, mask_dir=mask_dir, mask_suffix=mask_suffix)
    samples = []
    for image_path, mask_path in pairs:
        image = _read_input(image_path, color)
        mask = decode_mask(_read_mask(mask_path), mask_mode, num_classes=num_classes, source=mask_path)
        if mask.shape != image.shape[:2]:
            raise ConvscopeError(
                f"{mask_path}: mask is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image {image_path} is "
                f"{image.shape[0]}x{image.shape[1]}; save the mask at the size of the image")
        samples.append(PairedSample(image, mask, str(image_path), str(mask_path)))
    _check_consistent(samples)
    return samples


def match_pairs(
    root: str | os.PathLike[str], *, image_dir: str = "images", mask_dir: str = "masks", mask_suffix: str = ""
) -> list[tuple[Path, Path]]:
    """The (image, mask) file pairs of a paired folder, sorted by stem, without reading them.

    Raises
    ------
    ConvscopeError
        Missing folders, no images, duplicate stems, an image without a mask or a mask without an image.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConvscopeError(f"{root}: folder not found; point data.path at a folder with {image_dir}/ and "
                             f"{mask_dir}/ subfolders")
    images = _files_by_stem(root / image_dir, IMAGE_SUFFIXES, "image", root)
    masks = _files_by_stem(root / mask_dir, _MASK_SUFFIXES, "mask", root)
    if not images:
        raise ConvscopeError(f"{root / image_dir}: no images ({' '.join(IMAGE_SUFFIXES)}); add images, one mask "
                             f"per image in {root / mask_dir}")
    masks = {_strip_suffix(stem, mask_suffix, masks[stem]): path for stem, path in masks.items()}
    for stem, image_path in images.items():
        if stem not in masks:
            raise ConvscopeError(f"{image_path}: no mask; add {root / mask_dir / (stem + mask_suffix)}.png (or "
                                 ".tif) or remove the image")
    for stem, mask_path in masks.items():
        if stem not in images:
            raise ConvscopeError(f"{mask_path}: mask without an image; add {root / image_dir / stem}.png (or "
                                 ".tif) or remove the mask")
    return [(images[stem], masks[stem]) for stem in sorted(images)]


def _files_by_stem(folder: Path, suffixes: Sequence[str], what: str, root: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ConvscopeError(f"{folder}: {what} folder not found; put images in {root}/images/ and masks with the "
                             f"same file names in {root}/masks/")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in suffixes:
            if what == "mask" and path.suffix.lower() in IMAGE_SUFFIXES:
                raise ConvscopeError(f"{path}: JPEG masks are lossy (values change at edges); save masks as PNG "
                                     "or TIFF")
            continue
        if path.stem in found:
            raise ConvscopeError(f"{path}: same name as {found[path.stem]}; keep one {what} per name")
        found[path.stem] = path
    return found


def _strip_suffix(stem: str, suffix: str, path: Path) -> str:
    if not suffix:
        return stem
    if not stem.endswith(suffix) or stem == suffix:
        raise ConvscopeError(f"{path}: mask name does not end with '{suffix}'; rename it to "
                             f"<image name>{suffix}{path.suffix} or remove it")
    return stem[: -len(suffix)]


# ---------------------------------------------------------------------------------------------------------
# Reading and checking
# ---------------------------------------------------------------------------------------------------------

def _read_input(path: Path, color: Color) -> np.ndarray:
    """One input image as (H, W, C) uint8/uint16; TIFF keeps every channel in ``auto`` mode."""
    image = read_image(path)
    if image.dtype not in _IMAGE_DTYPES:
        raise ConvscopeError(f"{path}: {image.dtype} images are not supported; save the images as 8-bit or "
                             "16-bit unsigned integers (uint8/uint16)")
    if image.ndim == 2:
        image = image[:, :, None]
    if color == "auto" and path.suffix.lower() in _TIFF_SUFFIXES:
        return image  # 2 or 4 TIFF channels are channels (e.g. two fluorescence stains), not alpha
    return convert_color(image, color, source=str(path))


def _read_mask(path: Path) -> np.ndarray:
    """One mask as (H, W); equal colour channels are collapsed, anything else is refused."""
    mask = read_image(path)
    if mask.ndim == 2:
        return mask
    channels = mask.shape[2]
    colour = mask[:, :, : 3 if channels >= 3 else 1]
    alpha_ok = channels not in (2, 4) or bool((mask[:, :, -1] == mask[:, :, -1].max()).all())
    if channels <= 4 and alpha_ok and (colour == colour[:, :, :1]).all():
        return mask[:, :, 0]
    raise ConvscopeError(f"{path}: mask has {channels} channels that differ; save masks as single-channel "
                         "(gray) PNG or TIFF")


def decode_mask(mask: np.ndarray, mode: MaskMode, *, num_classes: int | None = None,
                source: str | os.PathLike[str] = "mask") -> np.ndarray:
    """Check and convert the values of one mask for ``mode`` (see the module docstring).

    Parameters
    ----------
    mask : ndarray, shape (H, W)
        Any integer dtype, or floats holding whole numbers.
    mode : {"binary", "multiclass", "instance", "instance_to_binary"}
    num_classes : int, optional
        Upper bound (exclusive) for ``"multiclass"`` values.
    source : str or PathLike
        Named in error messages.

    Returns
    -------
    ndarray, shape (H, W)
        uint8 0/1 for ``binary`` and ``instance_to_binary``; uint8 or uint16 class indices for ``multiclass``;
        uint16 or uint32 labels for ``instance``.

    Raises
    ------
    ConvscopeError
        Negative or fractional values, or values that do not fit ``mode``.
    """
    mask = _as_integers(np.asarray(mask), source)
    if mode == "instance_to_binary":
        return (mask > 0).astype(np.uint8)
    if mode == "instance":
        return mask.astype(np.uint16 if int(mask.max(initial=0)) <= np.iinfo(np.uint16).max else np.uint32)
    values = np.unique(mask)
    if mode == "binary":
        if len(values[values > 0]) > 1:
            raise ConvscopeError(
                f"{source}: binary mask has {len(values)} values ({_show(values)}) but needs 0 and one foreground "
                "value; for instance labels use task: stardist or flows (or save mask > 0 for semantic); "
                f"`convscope data check` lists every such mask{_ignore_hint(values, mask.dtype)}")
        return (mask > 0).astype(np.uint8)
    if mode == "multiclass":
        top = int(values[-1])
        if num_classes is not None and top >= num_classes:
            raise ConvscopeError(
                f"{source}: class mask has value {top} but num_classes={num_classes} (values {_show(values)}); "
                f"use class indices 0..{num_classes - 1} or raise the number of classes")
        return mask.astype(np.uint8 if top <= np.iinfo(np.uint8).max else np.uint16)
    raise ValueError(f"mask_mode must be one of {', '.join(MASK_MODES)}, got {mode!r}")


def _as_integers(mask: np.ndarray, source: str | os.PathLike[str]) -> np.ndarray:
    """Non-negative integer view of a mask; floats must hold whole numbers."""
    if mask.dtype == np.bool_:
        return mask.astype(np.uint8)
    if np.issubdtype(mask.dtype, np.floating):
        if not np.isfinite(mask).all() or (mask != np.round(mask)).any():
            raise ConvscopeError(f"{source}: mask has fractional values; save masks as integer PNG or TIFF "
                                 "(0 = background)")
        mask = mask.astype(np.int64)
    elif not np.issubdtype(mask.dtype, np.integer):
        raise ConvscopeError(f"{source}: {mask.dtype} mask; save masks as integer PNG or TIFF")
    if mask.size and int(mask.min()) < 0:
        negative = np.unique(mask[mask < 0])
        raise ConvscopeError(f"{source}: mask has negative values ({_show(negative)}: an ignore label?); convscope has "
                             "no ignore label: use 0 for background and positive values")
    return mask


def _ignore_hint(values: np.ndarray, dtype: np.dtype) -> str:
    """Where the largest value of an unsigned mask is its dtype's maximum next to small ones: an ignore label of -1
    saved unsigned (255 in 8 bits)."""
    top = int(values[-1])
    if dtype.kind == "u" and top == np.iinfo(dtype).max and len(values) > 2 and int(values[-2]) < top // 2:
        return (f"; {top} looks like an ignore label of -1 saved as {dtype} (convscope has no ignore label: set "
                "those pixels to 0 or to a class)")
    return ""


def _show(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:_MAX_VALUES_SHOWN])
    return shown + (", ..." if len(values) > _MAX_VALUES_SHOWN else "")


def _check_consistent(samples: Sequence[PairedSample]) -> None:
    """One dtype and one channel count for all images (sizes may differ)."""
    ref = samples[0]
    for sample in samples[1:]:
        if sample.image.dtype != ref.image.dtype:
            raise ConvscopeError(f"{sample.image_path}: {sample.image.dtype} image but {ref.image_path} is "
                                 f"{ref.image.dtype}; convert all images to one bit depth")
        if sample.image.shape[2] != ref.image.shape[2]:
            raise ConvscopeError(f"{sample.image_path}: {sample.image.shape[2]} channel(s) but {ref.image_path} "
                                 f"has {ref.image.shape[2]}; set data.color=gray or data.color=rgb")


# ---------------------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------------------

def seeded_split(
    ids: Iterable[str],
    *,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int,
) -> tuple[list[str], list[str], list[str]]:
    """Split image ids into train, validation and test, by image, reproducibly.

    The ids are sorted first, so the split does not depend on the order in which files were listed; then
    they are shuffled with ``seed`` and cut into ``round(fraction * n)`` validation and test images (at least
    one each when their fraction is positive); train gets the rest. Adding or removing images changes the split.

    Parameters
    ----------
    ids : iterable of str
        Unique image ids (file stems).
    fractions : (float, float, float)
        Train, validation and test fractions, non-negative, summing to 1.
    seed : int
        Same ids, fractions and seed give the same split.

    Returns
    -------
    train, val, test : list of str
        Disjoint, each sorted, together all ids.

    Raises
    ------
    ValueError
        Duplicate ids, bad fractions, or too few ids to give every positive fraction at least one image.
    """
    ids = sorted(ids)
    if len(set(ids)) != len(ids):
        raise ValueError("ids must be unique")
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    n = len(ids)
    counts = []
    for fraction in fractions[1:]:
        k = round(fraction * n)
        counts.append(max(k, 1) if fraction > 0 else k)
    n_val, n_test = counts
    if n_val + n_test > n - (1 if fractions[0] > 0 and n > 0 else 0):
        raise ValueError(f"{n} ids are too few for the fractions {fractions}")
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [ids[i] for i in order]
    val, test = shuffled[:n_val], shuffled[n_val:n_val + n_test]
    train = shuffled[n_val + n_test:]
    return sorted(train), sorted(val), sorted(test)

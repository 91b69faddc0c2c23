"""Per-array facts a data check needs: image statistics, mask statistics, a perceptual hash.

Plain functions from one array to one frozen record, no file I/O, no torch: :mod:`convscope.datasets.check`
reads the files and turns these records into findings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import label as label_regions
from skimage.morphology import convex_hull_image

#: Channels above which an image is probably a z-stack or time series read as channels.
MAX_PLAIN_CHANNELS = 4
_HASH_ROWS, _HASH_COLS = 8, 9  # dHash: 8 x 8 = 64 comparisons of horizontal neighbours
_HASH_SAMPLE = 64
_SOLIDITY_MIN = 0.8
_SOLIDITY_MAX_OBJECTS = 20
_LARGE_OBJECT_FACTOR = 1.8


@dataclass(frozen=True)
class ImageFacts:
    """What one input image holds.

    Attributes
    ----------
    shape : (int, int, int)
        (H, W, C) as read (a grey image has C = 1).
    dtype : str
        NumPy dtype name as stored (never converted).
    vmin, vmax : float
        Range of the finite values of the colour channels (alpha excluded).
    non_finite : int
        NaN or infinite pixels (only floating-point TIFFs can hold them).
    constant : bool
        Every colour pixel has the same value.
    alpha : {"none", "constant", "varying"}
        The alpha channel of 2- and 4-channel images, and whether it holds one value.
    digest : str
        SHA-1 of the pixel bytes with the shape and dtype: equal digests are exact duplicates.
    phash : int
        64-bit difference hash of the grey image (:func:`difference_hash`).
    thumbnail : ndarray, shape (16, 16), float32
        Grey block means, zero mean and unit norm (all zeros for a constant image): the dot product of two
        thumbnails is their correlation, which confirms a near duplicate found by the hash.
    """

    shape: tuple[int, int, int]
    dtype: str
    vmin: float
    vmax: float
    non_finite: int
    constant: bool
    alpha: str
    digest: str
    phash: int
    thumbnail: np.ndarray


def colour_channels(image: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` without its alpha channel (C = 2 or 4 are read as grey+alpha / RGB+alpha)."""
    channels = image.shape[2]
    return image[:, :, : channels - 1] if channels in (2, 4) else image


def image_facts(image: np.ndarray) -> ImageFacts:
    """Facts about one image.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Any real dtype, as read from the file.

    Returns
    -------
    ImageFacts
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    colour = colour_channels(image)
    finite = np.isfinite(colour) if colour.dtype.kind == "f" else None
    non_finite = 0 if finite is None else int(finite.size - np.count_nonzero(finite))
    values = colour if finite is None else colour[finite]
    vmin = float(values.min()) if values.size else float("nan")
    vmax = float(values.max()) if values.size else float("nan")
    alpha = "none"
    if image.shape[2] in (2, 4):
        a = image[:, :, -1]
        alpha = "constant" if a.min() == a.max() else "varying"
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes())
    digest.update(f"{image.shape}{image.dtype}".encode())
    return ImageFacts(tuple(int(s) for s in image.shape), str(image.dtype), vmin, vmax, non_finite,
                      vmin == vmax, alpha, digest.hexdigest(), difference_hash(colour), thumbnail(colour))


def difference_hash(image: np.ndarray) -> int:
    """64-bit perceptual difference hash (dHash): is each cell brighter than its right neighbour.

    The grey image (channel mean) is averaged into 8 x 9 cells and the 64 horizontal comparisons are the bits.
    Resizing, recompression and brightness or contrast changes keep the hash; different content changes it.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Colour channels only (no alpha), any real dtype; non-finite values count as 0.

    Returns
    -------
    int
        In ``[0, 2**64)``.
    """
    cells = _block_mean(_grey_sample(image), _HASH_ROWS, _HASH_COLS)
    bits = (cells[:, 1:] > cells[:, :-1]).ravel()
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def _grey_sample(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    step = max(1, min(image.shape[:2]) // _HASH_SAMPLE)  # subsample big images: the cells average many pixels
    grey = image[::step, ::step].astype(np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    return np.nan_to_num(grey, nan=0.0, posinf=0.0, neginf=0.0)


def thumbnail(image: np.ndarray, size: int = 16) -> np.ndarray:
    """``(size, size)`` float32 grey block means, centred and scaled to unit norm (zeros if constant)."""
    cells = _block_mean(_grey_sample(image), size, size)
    cells -= cells.mean()
    norm = float(np.sqrt((cells**2).sum()))
    return (cells / norm if norm > 0 else cells).astype(np.float32)


def _block_mean(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) means of near-equal blocks; small images repeat pixels first so every block has one."""
    h, w = image.shape
    if h < rows or w < cols:
        image = np.repeat(np.repeat(image, -(-rows // h), axis=0), -(-cols // w), axis=1)
        h, w = image.shape
    r_edges = (np.arange(rows) * h) // rows
    c_edges = (np.arange(cols) * w) // cols
    sums = np.add.reduceat(np.add.reduceat(image, r_edges, axis=0), c_edges, axis=1)
    counts = np.outer(np.diff(np.append(r_edges, h)), np.diff(np.append(c_edges, w)))
    return sums / counts


@dataclass(frozen=True)
class MaskFacts:
    """What one mask holds, read as labels (0 = background).

    Attributes
    ----------
    dtype : str
        As stored.
    n_values : int
        Distinct non-zero values (ids, or the one foreground value of a binary mask).
    n_components : int
        4-connected regions of equal non-zero value: the objects the mask would give if relabelled.
    split_ids : int
        Ids made of more than one region (one id for several separate objects).
    merged_ids : int
        Large ids (over 1.8 x the median area; the first 20 of them) with solidity below 0.8: possibly touching
        objects under one id.
    border_ids : int
        Regions (objects) touching the image edge: the objects the field of view cuts.
    foreground_fraction : float
        Share of non-zero pixels.
    areas : ndarray, shape (n_values,), int64
        Pixels per id, in id order.
    negative : bool
        The mask holds negative values (an ignore label such as -1).
    """

    dtype: str
    n_values: int
    n_components: int
    split_ids: int
    merged_ids: int
    border_ids: int
    foreground_fraction: float
    areas: np.ndarray
    negative: bool

    @property
    def binary(self) -> bool:
        """One foreground value and several separate regions: a semantic mask, not instance labels."""
        return self.n_values == 1 and self.n_components > 1

    @property
    def empty(self) -> bool:
        return self.n_values == 0


def mask_facts(mask: np.ndarray) -> MaskFacts:
    """Facts about one mask.

    Parameters
    ----------
    mask : ndarray, shape (H, W)
        Integer (or whole-number float) labels, 0 = background.

    Returns
    -------
    MaskFacts
    """
    mask = np.asarray(mask)
    negative = bool(mask.dtype.kind in "if" and mask.size and mask.min() < 0)
    labels = np.where(mask > 0, mask, 0).astype(np.int64) if negative or mask.dtype.kind == "f" else mask
    foreground = labels > 0
    n_fg = int(np.count_nonzero(foreground))
    ids, areas = _ids_and_areas(labels)
    if len(ids) == 0:
        return MaskFacts(str(mask.dtype), 0, 0, 0, 0, 0, 0.0, areas, negative)
    regions = label_regions(labels, background=0, connectivity=1)
    n_components = int(regions.max())
    split_ids = 0
    if n_components > len(ids):
        _, first = np.unique(regions.ravel(), return_index=True)
        region_ids = labels.ravel()[first[1:]]  # first[0] is the background region 0
        split_ids = int(np.count_nonzero(np.unique(region_ids, return_counts=True)[1] > 1))
    edge = np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]])
    border_ids = len(np.unique(edge[edge > 0]))
    merged = _low_solidity(labels, ids, areas) if len(ids) > 1 else 0
    return MaskFacts(str(mask.dtype), len(ids), n_components, split_ids, merged, border_ids,
                     n_fg / labels.size, areas, negative)


def _ids_and_areas(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    top = int(labels.max(initial=0))
    if top <= 1 << 20:
        counts = np.bincount(labels.ravel(), minlength=top + 1)
        ids = np.flatnonzero(counts)
        ids = ids[ids > 0]
        return ids, counts[ids].astype(np.int64)
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    return ids, counts.astype(np.int64)


def _low_solidity(labels: np.ndarray, ids: np.ndarray, areas: np.ndarray) -> int:
    """Ids much larger than the median whose area is below 0.8 of their convex hull's."""
    large = ids[areas > _LARGE_OBJECT_FACTOR * np.median(areas)][:_SOLIDITY_MAX_OBJECTS]
    if len(large) == 0:
        return 0
    boxes = ndimage.find_objects(labels, max_label=int(large.max()))
    count = 0
    for i in large:
        box = boxes[int(i) - 1]
        if box is None:
            continue
        obj = labels[box] == i
        hull = convex_hull_image(obj)
        if obj.sum() < _SOLIDITY_MIN * hull.sum():
            count += 1
    return count


def binary_regions(mask: np.ndarray) -> int:
    """Separate regions of a mask that holds one foreground value only: a binary (semantic) mask, not instance labels.

    Instance labels give every object its own id, so one value spread over several separate (4-connected) regions
    means the objects share an id: a 0/1 or 0/255 mask. Cheap: the regions are counted only when there is exactly
    one foreground value.

    Parameters
    ----------
    mask : ndarray, shape (H, W)
        Non-negative integer labels, 0 = background.

    Returns
    -------
    int
        The number of regions when the mask is binary with two or more of them, else 0 (several ids, one object,
        or an empty mask).
    """
    mask = np.asarray(mask)
    top = mask.max(initial=0)
    if top == 0 or mask.min(initial=0) < 0 or np.any((mask != 0) & (mask != top)):
        return 0
    _, n = ndimage.label(mask > 0)
    return int(n) if n > 1 else 0


def relabel_components(mask: np.ndarray) -> np.ndarray:
    """Instance labels from a mask: every 4-connected region of one value gets its own id.

    Parameters
    ----------
    mask : ndarray, shape (H, W)
        Non-negative integer mask (binary or labels).

    Returns
    -------
    ndarray, shape (H, W), uint16 (uint32 above 65,535 objects)
        0 = background, ids 1..n. Touching objects that shared one value stay merged.
    """
    regions = label_regions(np.asarray(mask), background=0, connectivity=1)
    return regions.astype(np.uint16 if regions.max() <= np.iinfo(np.uint16).max else np.uint32)

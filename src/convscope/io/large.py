"""Images larger than memory: OME-Zarr images and big TIFFs opened lazily and read region by region, and label
images written as multiscale OME-Zarr (NGFF).

:func:`open_large_image` reads only metadata; :meth:`LargeImage.read` reads one rectangle ``(h, w, C)`` in the stored
dtype, from the stored chunks that cover it (an OME-Zarr image's full-resolution level; a TIFF through tifffile's
zarr interface). A :class:`LargeImage` holds paths, not open files, so it can be sent to other processes (a
``dask.distributed`` worker opens the store on first use). Only 2-D images are supported: axes ``t`` and ``z`` must
have one plane, ``c`` (or a TIFF's samples) become the channels.

Needs the dask extra (zarr, ome-zarr): ``pip install 'convscope[dask]'``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile
import zarr

from convscope.errors import ConvscopeError

TIFF_SUFFIXES = (".tif", ".tiff")
_TIFF_AXES = {"Y": "y", "X": "x", "S": "c", "C": "c", "Q": "q", "I": "q", "Z": "z", "T": "t"}


@dataclass(frozen=True)
class LargeImage:
    """A 2-D image on disk, read one rectangle at a time.

    Attributes
    ----------
    path : Path
        The ``.zarr`` folder or the TIFF file.
    kind : {"zarr", "tiff"}
    array : str
        Path of the full-resolution array inside a zarr store (``""`` for a bare array).
    axes : str
        The stored array's axes, lower case, from ``t c z y x q`` (``q``: a singleton axis of unknown meaning).
    stored_shape : tuple of int
        The stored array's shape.
    dtype : str
        The stored dtype.
    chunks : (int, int)
        Stored chunk height and width (a TIFF strip is a chunk as wide as the image).
    """

    path: Path
    kind: Literal["zarr", "tiff"]
    array: str
    axes: str
    stored_shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C)."""
        size = dict(zip(self.axes, self.stored_shape, strict=True))
        return size["y"], size["x"], size.get("c", 1)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The rectangle ``[y0:y1, x0:x1]``, shape (y1 - y0, x1 - x0, C), stored dtype."""
        index = tuple(slice(y0, y1) if a == "y" else slice(x0, x1) if a == "x" else slice(None) if a == "c" else 0
                      for a in self.axes)
        array, lock = _open_array(self.path, self.kind, self.array)
        with lock:
            region = np.asarray(array[index])
        kept = [a for a in self.axes if a in "yxc"]
        if "c" not in kept:
            return region[:, :, None]
        return np.moveaxis(region, kept.index("c"), -1) if kept.index("c") != 2 else region


def open_large_image(path: str | Path) -> LargeImage:
    """Open an OME-Zarr image (its full-resolution level), a 2-D zarr array or a TIFF for region reads.

    Raises
    ------
    ConvscopeError
        Missing path, unsupported format, no OME-Zarr metadata, more than one z plane or time point (one line
        naming the path and the fix).
    """
    path = Path(path)
    if not path.exists():
        raise ConvscopeError(f"{path}: no such file or folder")
    if path.suffix.lower() in TIFF_SUFFIXES and path.is_file():
        image = _open_tiff(path)
    elif path.is_dir():
        image = _open_zarr(path)
    else:
        raise ConvscopeError(f"{path}: block-wise prediction reads OME-Zarr folders (.zarr) and TIFF files; convert "
                             "the image to one of them")
    extra = {a: n for a, n in zip(image.axes, image.stored_shape, strict=True) if a in "tzq" and n != 1}
    if extra:
        what = ", ".join(f"{n} along {a}" for a, n in extra.items())
        raise ConvscopeError(f"{path}: has {what}; block-wise prediction is 2-D, save one plane (y, x[, c])")
    if not np.issubdtype(np.dtype(image.dtype), np.number):
        raise ConvscopeError(f"{path}: {image.dtype} pixels are not numbers; save the image as integers or floats")
    return image


def _open_tiff(path: Path) -> LargeImage:
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape, dtype = series.axes, tuple(series.shape), str(series.dtype)
        array = zarr.open_array(tifffile.imread(path, aszarr=True, series=0, level=0), mode="r")
    except Exception as err:  # tifffile and zarr raise many types for corrupt files
        raise ConvscopeError(f"{path}: cannot read TIFF ({type(err).__name__}: {str(err)[:120]}); replace the file"
                             ) from None
    lowered = "".join(_TIFF_AXES.get(a, "?") for a in axes)
    if "?" in lowered or sorted(lowered.replace("q", "").replace("t", "").replace("z", "")) not in (
            ["x", "y"], ["c", "x", "y"]):
        raise ConvscopeError(f"{path}: TIFF has axes {axes} with shape {shape}; block-wise prediction needs one 2-D "
                             "plane (YX, YXS, CYX)")
    return LargeImage(path, "tiff", "", lowered, shape, dtype, _chunks(lowered, array.chunks))


def _open_zarr(path: Path) -> LargeImage:
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as err:  # zarr raises many types for a folder that is not a store
        raise ConvscopeError(f"{path}: not a zarr store ({type(err).__name__}); give an OME-Zarr image folder"
                             ) from None
    if isinstance(node, zarr.Array):
        return LargeImage(path, "zarr", "", _bare_axes(path, node.shape), tuple(node.shape), str(node.dtype),
                          _chunks(_bare_axes(path, node.shape), node.chunks))
    attrs = dict(node.attrs)
    multiscales = attrs.get("ome", attrs).get("multiscales")
    if not multiscales:
        raise ConvscopeError(f"{path}: a zarr group without OME-Zarr 'multiscales' metadata; give the image's group "
                             "(the folder whose metadata lists the resolution levels) or a 2-D zarr array")
    first = multiscales[0]
    level = str(first["datasets"][0]["path"])
    array = node[level]
    names = [a["name"] if isinstance(a, dict) else a for a in first.get("axes", list("tczyx"))]
    axes = "".join(str(a).lower()[:1] if str(a).lower() in ("t", "c", "z", "y", "x") else "q" for a in names)
    if len(axes) != array.ndim or "y" not in axes or "x" not in axes:
        raise ConvscopeError(f"{path}: OME-Zarr axes {names} do not fit its array of shape {array.shape}; "
                             "check the metadata")
    return LargeImage(path, "zarr", level, axes, tuple(array.shape), str(array.dtype), _chunks(axes, array.chunks))


def _bare_axes(path: Path, shape: Sequence[int]) -> str:
    """Axes of a bare zarr array: YX, YXC (at most 4 trailing channels) or CYX."""
    if len(shape) == 2:
        return "yx"
    if len(shape) == 3 and shape[2] <= 4:
        return "yxc"
    if len(shape) == 3 and shape[0] <= 4:
        return "cyx"
    raise ConvscopeError(f"{path}: zarr array of shape {tuple(shape)}; expected (Y, X), (Y, X, C) or (C, Y, X) with "
                         "at most 4 channels, or an OME-Zarr image with axes metadata")


def _chunks(axes: str, chunks: Sequence[int]) -> tuple[int, int]:
    size = dict(zip(axes, chunks, strict=True))
    return int(size["y"]), int(size["x"])


@functools.lru_cache(maxsize=16)
def _open_array(path: Path, kind: str, array: str) -> tuple[Any, Any]:
    """The stored array (opened once per process) and a lock: a TIFF store reads through one file handle."""
    if kind == "tiff":
        return zarr.open_array(tifffile.imread(path, aszarr=True, series=0, level=0), mode="r"), threading.Lock()
    node = zarr.open(str(path), mode="r")
    return (node[array] if array else node), contextlib.nullcontext()  # concurrent reads of a zarr store are safe


def write_label_pyramid(levels: Sequence[Any], group_path: Path, *, name: str, chunks: int,
                        attributes: dict[str, Any]) -> list[Any]:
    """Lazily write a label image's resolution levels as an NGFF label image at ``group_path``.

    Parameters
    ----------
    levels : sequence of dask arrays, shape (H / 2**i, W / 2**i), integer dtype
        Full resolution first (each the previous one subsampled by 2, nearest neighbour).
    group_path : Path
        The new ``.zarr`` folder: its root is the label image (``multiscales`` and ``image-label`` metadata,
        levels ``s0``, ``s1``, ...), readable by ome-zarr and napari.
    name : str
        The label image's name in the metadata.
    chunks : int
        Stored chunk side.
    attributes : dict
        Extra root attributes (``convscope``: what was predicted, with which run).

    Returns
    -------
    list of dask.delayed.Delayed
        Writing the arrays; compute them (metadata is written already).
    """
    from ome_zarr.writer import write_multiscale

    group = zarr.open_group(str(group_path), mode="w")
    shapes = [tuple(level.shape) for level in levels]
    options = [{"chunks": (min(chunks, h), min(chunks, w))} for h, w in shapes]
    levels = [level.rechunk(opt["chunks"]) for level, opt in zip(levels, options, strict=True)]
    delayed = write_multiscale(levels, group, axes="yx", name=name, storage_options=options, compute=False)
    ome = dict(group.attrs["ome"])
    ome["image-label"] = {"version": ome.get("version", "0.5")}
    group.attrs.update({"ome": ome, **attributes})
    return delayed


def read_label_level(path: str | Path, level: int = 0) -> Any:
    """Level ``level`` (0 = full resolution) of a label image written by :func:`write_label_pyramid`, as a zarr
    array (index it to read)."""
    return open_label_image(path)[0][level]


def open_label_image(path: str | Path) -> tuple[list[Any], dict[str, Any]]:
    """An NGFF label image (as :func:`write_label_pyramid` writes it), opened without reading its pixels.

    Returns
    -------
    levels : list of zarr arrays, shape (H / 2**i, W / 2**i), integer dtype
        Full resolution first; index them to read.
    attributes : dict
        The root attributes (``ome`` and, from convscope, ``convscope``: what was predicted, with which run).

    Raises
    ------
    ConvscopeError
        ``path`` is not a zarr group with ``multiscales`` metadata, or a level listed there is missing.
    """
    try:
        group = zarr.open_group(str(path), mode="r")
        attributes = dict(group.attrs)
        datasets = attributes.get("ome", attributes)["multiscales"][0]["datasets"]
        levels = [group[str(d["path"])] for d in datasets]
    except Exception as err:  # zarr and a broken metadata file raise many types
        raise ConvscopeError(f"{path}: not a readable OME-Zarr label image ({type(err).__name__}: {str(err)[:120]}); "
                             "predict again with --overwrite") from None
    return levels, attributes


def image_levels(path: str | Path) -> list[Any]:
    """A large image's resolution levels as lazy dask arrays (H_i, W_i) or (H_i, W_i, C), full resolution first:
    every level of an OME-Zarr image, else its one full-resolution level. Nothing is read until indexed and
    computed.

    Raises
    ------
    ConvscopeError
        As :func:`open_large_image`.
    """
    import dask.array as da

    image = open_large_image(path)
    array, lock = _open_array(image.path, image.kind, image.array)
    arrays = [array]
    if image.kind == "zarr" and image.array:
        node = zarr.open_group(str(image.path), mode="r")
        attributes = dict(node.attrs)
        paths = [str(d["path"]) for d in attributes.get("ome", attributes)["multiscales"][0]["datasets"]]
        arrays = [node[p] for p in paths if p in node]
    index = tuple(slice(None) if a in "yxc" else 0 for a in image.axes)
    kept = [a for a in image.axes if a in "yxc"]
    levels = []
    for level in arrays:
        lazy = da.from_array(level, chunks=level.chunks, lock=lock if image.kind == "tiff" else False)[index]
        if "c" in kept:
            lazy = da.moveaxis(lazy, kept.index("c"), -1)
            lazy = lazy[..., 0] if image.shape[2] == 1 else lazy
        levels.append(lazy)
    return levels

"""Tiled prediction for images of any size: overlapping tiles, smooth blending, bounded memory.

The image is cut into tiles of ``tile`` x ``tile`` pixels that overlap by at least ``overlap`` pixels (tiles
are spread evenly from one image border to the other, so overlaps are ``overlap`` or a little more). Batches of
at most ``batch_size`` tiles go through ``predict_fn``; the outputs are blended into a float32 accumulator on
the CPU with weights that fall smoothly towards tile borders shared with another tile. Memory is the tile batch
plus the output accumulator (``out_channels + 1`` planes of the image size); the whole image never goes
through the network at once. An image smaller than a tile is reflect-padded (centred) to the tile size.

Blending weights, per axis of a tile (the 2-D weight is the outer product):

* on a side at the image border the weight does not fall off: those pixels have no other tile (``cosine``
  keeps it at 1; ``gaussian`` keeps its own positive tail), so every pixel of the image gets a positive total
  weight;
* on a side shared with another tile, the outer quarter of the overlap gets weight 0 (tile borders are where a
  CNN sees padding instead of context) and the next half of the overlap rises smoothly. ``cosine`` rises as
  ``sin^2`` to 1 and stays flat in the middle, so two neighbours that overlap by exactly ``overlap`` sum to 1;
  ``gaussian`` is the familiar centred gaussian with sigma = tile / 8 (as in MONAI), cut to 0 on that quarter.

Hence a predictor whose output at a pixel depends only on inputs within ``overlap // 4`` pixels (a pointwise
function, a 3x3 convolution for ``overlap >= 4``) gives the same result tiled as on the whole image, up to
float rounding. For a U-Net, whose receptive field is larger, seams are suppressed, not eliminated exactly;
larger overlaps reduce them further.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import torch

Weights = Literal["gaussian", "cosine"]
PredictFn = Callable[[torch.Tensor], torch.Tensor]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``range(size)`` with at least ``overlap`` overlap.

    As few tiles as a stride of ``tile - overlap`` needs, spread evenly from 0 to ``size - tile`` (so every
    overlap is at least ``overlap`` and the overlaps differ by at most one pixel). When ``size <= tile`` there
    is one tile at 0 (the caller pads the image to ``tile``).
    """
    _check_tile(tile, overlap)
    if size <= tile:
        return [0]
    n = math.ceil((size - tile) / (tile - overlap)) + 1
    return [round(i * (size - tile) / (n - 1)) for i in range(n)]


def fitted_tile(size: int, tile: int, limit: int, overlap: int, multiple: int = 1) -> int:
    """The tile side for an image axis of ``size``: as few tiles as sides of ``limit`` need, each as small as that
    number of tiles allows (so tiles overlap by little more than ``overlap``), never below ``tile``.

    Parameters
    ----------
    size : int
        Image height or width (pixels).
    tile : int
        The smallest side (the training patch): returned when ``size <= tile`` or ``limit <= tile``.
    limit : int
        The largest side (rounded down to ``multiple``).
    overlap : int
        Minimal overlap of neighbouring tiles, ``0 <= overlap < tile``.
    multiple : int
        The side is a multiple of this (the network's size multiple and output grid).

    Returns
    -------
    int
        ``tile``, or a multiple of ``multiple`` in ``(tile, limit]``.
    """
    _check_tile(tile, overlap)
    limit = limit // multiple * multiple
    if size <= tile or limit <= tile:
        return tile
    n = math.ceil((size - overlap) / (limit - overlap))  # tiles of ``limit`` (as tile_starts lays them out)
    side = -(-math.ceil((size + (n - 1) * overlap) / n) // multiple) * multiple
    return max(tile, min(side, limit))


def tile_grid(shape: tuple[int, int], tile: int | tuple[int, int], overlap: int | tuple[int, int]
              ) -> list[tuple[int, int]]:
    """Top-left corners ``(y0, x0)`` of the tiles covering an image of ``shape`` = (H, W), row by row.

    Parameters
    ----------
    shape : (int, int)
        Image height and width (after padding an image smaller than a tile, each at least the tile size).
    tile, overlap : int or (int, int)
        Tile size and minimal overlap, per axis (an int applies to both); ``0 <= overlap < tile``.

    Returns
    -------
    list of (int, int)
        Every tile ``[y0:y0 + tile_h, x0:x0 + tile_w]``; together they cover the image.
    """
    (th, tw), (oh, ow) = _pair(tile), _pair(overlap)
    ys, xs = tile_starts(shape[0], th, oh), tile_starts(shape[1], tw, ow)
    return [(y, x) for y in ys for x in xs]


def blend_window(starts: list[int], start: int, tile: int, overlap: int, weights: Weights) -> np.ndarray:
    """1-D blending weights, shape (tile,) float32, of the tile at ``start`` among tiles at ``starts``.

    Sides shared with another tile get a zero outer quarter of the overlap and a smooth rise over the next
    half; sides at the image border keep a positive weight (see the module docstring).
    """
    if weights == "cosine":
        window = np.ones(tile, np.float64)
    elif weights == "gaussian":
        centre = (np.arange(tile) + 0.5) - tile / 2
        window = np.exp(-(centre**2) / (2 * (tile / 8) ** 2))
    else:
        raise ValueError(f"weights must be 'gaussian' or 'cosine', got {weights!r}")
    margin = overlap // 4
    rise = overlap - 2 * margin
    ramp = np.sin(0.5 * np.pi * (np.arange(rise) + 0.5) / rise) ** 2 if rise > 0 else np.ones(0)
    if start != starts[0]:  # a neighbour before this tile
        window[:margin] = 0.0
        if weights == "cosine":
            window[margin:margin + rise] *= ramp
    if start != starts[-1]:  # a neighbour after this tile
        window[tile - margin:] = 0.0
        if weights == "cosine":
            window[tile - margin - rise:tile - margin] *= ramp[::-1]
    return window.astype(np.float32)


def predict_tiled(
    predict_fn: PredictFn,
    image: np.ndarray | torch.Tensor,
    *,
    tile: int | tuple[int, int] = 256,
    overlap: int | tuple[int, int] = 32,
    batch_size: int = 4,
    out_channels: int | None = None,
    weights: Weights = "cosine",
    progress: Callable[[int, int], None] | None = None,
    grid: int = 1,
) -> np.ndarray:
    """Predict an image of any size tile by tile and blend the tiles without seams.

    Parameters
    ----------
    predict_fn : callable
        Maps a float32 tensor ``(B, C, tile_h, tile_w)`` (B <= ``batch_size``, on the device of ``image``) to
        ``(B, out_channels, tile_h, tile_w)`` (any float dtype and device). Called under ``torch.no_grad()``.
    image : ndarray or Tensor, shape (C, H, W)
        Axes "CYX", already normalised; any real dtype (tiles are cast to float32 one batch at a time).
        A numpy-like array that supports slicing (memmap, zarr) is read one tile at a time.
    tile : int or (int, int)
        Tile height and width; for a U-Net of depth d, a multiple of 2**d.
    overlap : int or (int, int)
        Minimal overlap between neighbouring tiles, ``0 <= overlap < tile``.
    batch_size : int
        Tiles per call of ``predict_fn``.
    out_channels : int, optional
        Output channels; taken from the first batch when omitted, checked on every batch.
    weights : {"cosine", "gaussian"}
        Blending window (see the module docstring).
    progress : callable, optional
        Called as ``progress(done_tiles, total_tiles)`` after every batch.
    grid : int
        Output subsampling of ``predict_fn`` (StarDist's grid): it returns ``(B, out_channels, tile_h / grid,
        tile_w / grid)``, output pixel ``(i, j)`` answering tile pixel ``(i * grid, j * grid)``. Tiles, overlaps
        and blending are then laid out on the output grid (``tile`` and ``overlap`` must be multiples of
        ``grid``), and an image is padded at the bottom and right only, so the result is aligned with the image.

    Returns
    -------
    ndarray, shape (out_channels, ceil(H / grid), ceil(W / grid)), float32
        The blended prediction on the CPU.

    Raises
    ------
    ValueError
        Bad shapes or options, or a ``predict_fn`` output of the wrong shape.
    """
    if len(image.shape) != 3:
        raise ValueError(f"image must be (C, H, W), got shape {tuple(image.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    (th, tw), (oh, ow) = _pair(tile), _pair(overlap)
    _check_tile(th, oh)
    _check_tile(tw, ow)
    g = int(grid)
    if g < 1 or th % g or tw % g or oh % g or ow % g:
        raise ValueError(f"tile {(th, tw)} and overlap {(oh, ow)} must be multiples of grid={grid}")
    height, width = int(image.shape[1]), int(image.shape[2])
    if g == 1:
        padded, (py, px) = _pad_to_tile(image, th, tw)
    else:  # pad at the bottom/right to a multiple of the grid and at least a tile, so output (0, 0) is pixel (0, 0)
        padded = _pad_to_tile(image, max(th, -(-height // g) * g), max(tw, -(-width // g) * g), centred=False)[0]
        py = px = 0
    # everything below is on the output grid: tiles of (th/g, tw/g) at image offsets (g * y, g * x)
    th_g, tw_g, oh_g, ow_g = th // g, tw // g, oh // g, ow // g
    shape = (int(padded.shape[1]) // g, int(padded.shape[2]) // g)
    ys, xs = tile_starts(shape[0], th_g, oh_g), tile_starts(shape[1], tw_g, ow_g)
    wy = {y: blend_window(ys, y, th_g, oh_g, weights) for y in ys}
    wx = {x: blend_window(xs, x, tw_g, ow_g, weights) for x in xs}
    corners = [(y * g, x * g) for y in ys for x in xs]
    if len(corners) == 1 and weights == "cosine":  # one tile: its weights are all 1, blending changes nothing
        out = _single_tile(predict_fn, padded, th, tw, out_channels, g, progress)
        return out[:, py:py + -(-height // g), px:px + -(-width // g)].copy()  # ours, even if predict_fn reuses
    acc: np.ndarray | None = None
    total = np.zeros(shape, np.float32)
    done = 0
    for batch_corners, batch in _batches(padded, corners, th, tw, batch_size):
        with torch.no_grad():
            out = predict_fn(batch)
        out = _check_output(out, len(batch_corners), out_channels, th_g, tw_g)
        if acc is None:
            out_channels = out.shape[1]
            acc = np.zeros((out_channels, *shape), np.float32)
        for (y, x), tile_out in zip(batch_corners, out, strict=True):
            y, x = y // g, x // g
            weight = wy[y][:, None] * wx[x][None, :]
            acc[:, y:y + th_g, x:x + tw_g] += tile_out * weight
            total[y:y + th_g, x:x + tw_g] += weight
        done += len(batch_corners)
        if progress is not None:
            progress(done, len(corners))
    if acc is None or not (total > 0).all():  # cannot happen: border sides keep their weight
        raise RuntimeError("tiled prediction left pixels without weight")
    acc /= total
    return np.ascontiguousarray(acc[:, py:py + -(-height // g), px:px + -(-width // g)])


def _single_tile(predict_fn: PredictFn, padded: np.ndarray | torch.Tensor, th: int, tw: int,
                 out_channels: int | None, g: int, progress: Callable[[int, int], None] | None) -> np.ndarray:
    """The output (out_channels, th / g, tw / g) of an image that is one tile."""
    (_, batch), = _batches(padded, [(0, 0)], th, tw, 1)
    with torch.no_grad():
        out = _check_output(predict_fn(batch), 1, out_channels, th // g, tw // g)[0]
    if progress is not None:
        progress(1, 1)
    return out


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        return int(value), int(value)
    a, b = value
    return int(a), int(b)


def _check_tile(tile: int, overlap: int) -> None:
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")


def _reflect_index(size: int, target: int, centred: bool = True) -> tuple[np.ndarray, int]:
    """Indices of length ``max(size, target)`` that reflect ``range(size)`` at both ends (only at the end
    unless ``centred``), and the left pad."""
    if size >= target:
        return np.arange(size), 0
    before = (target - size) // 2 if centred else 0
    positions = np.arange(target) - before
    if size == 1:
        return np.zeros(target, np.int64), before
    period = 2 * (size - 1)
    folded = np.mod(positions, period)
    return np.where(folded < size, folded, period - folded), before


def _pad_to_tile(image: np.ndarray | torch.Tensor, th: int, tw: int, centred: bool = True
                 ) -> tuple[np.ndarray | torch.Tensor, tuple[int, int]]:
    """Reflect-pad (centred, or at the bottom/right) an image smaller than ``(th, tw)``; larger images are
    returned as they are."""
    height, width = int(image.shape[1]), int(image.shape[2])
    if height >= th and width >= tw:
        return image, (0, 0)
    iy, py = _reflect_index(height, th, centred)
    ix, px = _reflect_index(width, tw, centred)
    if isinstance(image, torch.Tensor):
        iy_t = torch.as_tensor(iy, device=image.device)
        ix_t = torch.as_tensor(ix, device=image.device)
        return image.index_select(1, iy_t).index_select(2, ix_t), (py, px)
    array = np.asarray(image)
    return array[:, iy][:, :, ix], (py, px)


def _batches(image: np.ndarray | torch.Tensor, corners: list[tuple[int, int]], th: int, tw: int,
             batch_size: int) -> Iterator[tuple[list[tuple[int, int]], torch.Tensor]]:
    """Batches of float32 tiles ``(B, C, th, tw)``, on the device of a tensor image, else on the CPU."""
    for i in range(0, len(corners), batch_size):
        chunk = corners[i:i + batch_size]
        if isinstance(image, torch.Tensor):
            tiles = [image[:, y:y + th, x:x + tw] for y, x in chunk]
            batch = torch.stack(tiles).to(torch.float32)
        else:
            tiles = [np.asarray(image[:, y:y + th, x:x + tw], dtype=np.float32) for y, x in chunk]
            batch = torch.from_numpy(np.stack(tiles))
        yield chunk, batch


def _check_output(out: torch.Tensor, n: int, out_channels: int | None, th: int, tw: int) -> np.ndarray:
    """predict_fn output as a float32 numpy array (B, out_channels, th, tw), or a clear ValueError."""
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"predict_fn must return a torch.Tensor, got {type(out).__name__}")
    expected = (n, out_channels if out_channels is not None else "out_channels", th, tw)
    if out.ndim != 4 or out.shape[0] != n or out.shape[2:] != (th, tw) or (
            out_channels is not None and out.shape[1] != out_channels):
        raise ValueError(f"predict_fn returned shape {tuple(out.shape)} for {n} tiles, expected {expected}")
    return out.detach().to("cpu", torch.float32).numpy()

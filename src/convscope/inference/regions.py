"""One region of a whole image's tiled prediction, computed from the tiles that cover it only.

:func:`convscope.inference.tiling.predict_tiled` lays tiles over the whole image and blends them. Here the same tiles
(:class:`TileLayout`: the same starts, on the same output grid, with the same blending weights) are laid over the
whole image, but only those that overlap a region are read and predicted, and their weighted sum is divided by the
summed weights in the same order. So the network output of a block of a huge image is the whole-image tiled
prediction's output there (to float rounding of the network), and blocks predicted separately blend across their
borders exactly as the whole image's tiles do: no seams at block borders, whatever the block size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from convscope.inference.tiling import PredictFn, Weights, blend_window, tile_starts

#: Reads the normalised image rectangle ``[y0:y1, x0:x1]`` as float32 (C, y1 - y0, x1 - x0).
ReadFn = Callable[[int, int, int, int], np.ndarray]


@dataclass(frozen=True)
class TileLayout:
    """The tiles :func:`~convscope.inference.tiling.predict_tiled` lays over an image of ``height`` x ``width`` of
    at least one tile, on its output grid.

    The image is padded at the bottom and right by reflection to a multiple of ``grid`` (fewer than ``grid`` rows
    and columns); tile starts ``ys``, ``xs`` and sides ``tile // grid`` are in output pixels.
    """

    height: int
    width: int
    tile: int
    overlap: int
    grid: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @classmethod
    def of(cls, height: int, width: int, *, tile: int, overlap: int, grid: int = 1) -> TileLayout:
        if height < tile or width < tile:
            raise ValueError(f"image {height}x{width} is smaller than one tile ({tile}); predict it whole")
        if tile % grid or overlap % grid:
            raise ValueError(f"tile {tile} and overlap {overlap} must be multiples of grid={grid}")
        g = grid
        ys = tile_starts(-(-height // g), tile // g, overlap // g)
        xs = tile_starts(-(-width // g), tile // g, overlap // g)
        return cls(height, width, tile, overlap, grid, tuple(ys), tuple(xs))

    @property
    def out_shape(self) -> tuple[int, int]:
        """(ceil(H / grid), ceil(W / grid)): the shape of the whole image's output."""
        return -(-self.height // self.grid), -(-self.width // self.grid)


def predict_region(predict_fn: PredictFn, read: ReadFn, layout: TileLayout, region: tuple[int, int, int, int], *,
                   batch_size: int = 4, weights: Weights = "cosine") -> np.ndarray:
    """The whole-image tiled prediction restricted to ``region``, from the tiles that overlap it.

    Parameters
    ----------
    predict_fn : callable
        As for :func:`~convscope.inference.tiling.predict_tiled`: float32 (B, C, tile, tile) to
        (B, K, tile / grid, tile / grid).
    read : callable
        ``read(y0, y1, x0, x1)`` -> the normalised image rectangle, float32 (C, y1 - y0, x1 - x0), within the image.
    layout : TileLayout
        The whole image's tiles.
    region : (int, int, int, int)
        ``(y0, y1, x0, x1)`` on the output grid, within :attr:`TileLayout.out_shape`.
    batch_size : int
        Tiles per call of ``predict_fn``.
    weights : {"cosine", "gaussian"}
        Blending window; the same as the whole-image prediction's.

    Returns
    -------
    ndarray, shape (K, y1 - y0, x1 - x0), float32
    """
    y0, y1, x0, x1 = region
    g, side, margin = layout.grid, layout.tile // layout.grid, layout.overlap // layout.grid
    ys = [y for y in layout.ys if y < y1 and y + side > y0]
    xs = [x for x in layout.xs if x < x1 and x + side > x0]
    top, left = ys[0], xs[0]
    span_h, span_w = ys[-1] + side - top, xs[-1] + side - left
    image = _read_padded(read, layout, top * g, (top + span_h) * g, left * g, (left + span_w) * g)
    wy = {y: blend_window(list(layout.ys), y, side, margin, weights) for y in ys}
    wx = {x: blend_window(list(layout.xs), x, side, margin, weights) for x in xs}
    corners = [(y, x) for y in ys for x in xs]
    acc: np.ndarray | None = None
    total = np.zeros((span_h, span_w), np.float32)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i:i + batch_size]
        tiles = [image[:, (y - top) * g:(y - top + side) * g, (x - left) * g:(x - left + side) * g] for y, x in chunk]
        with torch.no_grad():
            out = predict_fn(torch.from_numpy(np.stack(tiles)))
        out = out.detach().to("cpu", torch.float32).numpy()
        if acc is None:
            acc = np.zeros((out.shape[1], span_h, span_w), np.float32)
        for (y, x), tile_out in zip(chunk, out, strict=True):
            weight = wy[y][:, None] * wx[x][None, :]
            acc[:, y - top:y - top + side, x - left:x - left + side] += tile_out * weight
            total[y - top:y - top + side, x - left:x - left + side] += weight
    assert acc is not None
    crop = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
    return np.ascontiguousarray(acc[(slice(None), *crop)] / total[crop])


def _read_padded(read: ReadFn, layout: TileLayout, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """``read`` of a rectangle that may pass the bottom or right image border by fewer than ``grid`` pixels, which
    are filled by reflection as :func:`~convscope.inference.tiling.predict_tiled` pads."""
    h, w = layout.height, layout.width
    x = read(y0, min(y1, h), x0, min(x1, w))
    if y1 > h:
        rows = 2 * (h - 1) - np.arange(h, y1) - y0
        x = np.concatenate([x, x[:, rows]], axis=1)
    if x1 > w:
        cols = 2 * (w - 1) - np.arange(w, x1) - x0
        x = np.concatenate([x, x[:, :, cols]], axis=2)
    return x

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convscope.inference.tiling import blend_window, fitted_tile, predict_tiled, tile_grid, tile_starts

_KERNEL = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, 3, 3)).astype(np.float32))


def _local(batch: torch.Tensor) -> torch.Tensor:
    """A 3x3 convolution (reflect padding, as the tiler pads) and a pointwise non-linearity: purely local."""
    return torch.sigmoid(F.conv2d(F.pad(batch, (1, 1, 1, 1), mode="reflect"), _KERNEL))


class _Recorder:
    """predict_fn that insists on exact tile sizes and records every batch."""

    def __init__(self, tile: tuple[int, int], batch_size: int, fn=_local) -> None:
        self.tile, self.batch_size, self.fn = tile, batch_size, fn
        self.batches: list[int] = []

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        assert tuple(batch.shape[2:]) == self.tile, batch.shape
        assert 1 <= batch.shape[0] <= self.batch_size
        assert batch.dtype == torch.float32
        self.batches.append(batch.shape[0])
        return self.fn(batch)


def _whole(image: np.ndarray) -> np.ndarray:
    return _local(torch.from_numpy(image)[None])[0].numpy()


@pytest.mark.parametrize("weights", ["cosine", "gaussian"])
@pytest.mark.parametrize("shape", [(700, 513), (256, 256), (257, 300), (90, 60), (5, 400), (1, 1)])
def test_tiled_equals_whole_image(shape: tuple[int, int], weights: str) -> None:
    image = np.random.default_rng(1).random((3, *shape), dtype=np.float32)
    record = _Recorder((128, 128), 3)
    tiled = predict_tiled(record, image, tile=128, overlap=16, batch_size=3, weights=weights)
    assert tiled.shape == (2, *shape) and tiled.dtype == np.float32
    if min(shape) > 1:  # reflect padding of a single pixel is not defined for the whole image
        np.testing.assert_allclose(tiled, _whole(image), atol=2e-6)
    n_tiles = len(tile_grid((max(shape[0], 128), max(shape[1], 128)), 128, 16))
    assert sum(record.batches) == n_tiles
    assert len(record.batches) == math.ceil(n_tiles / 3) and max(record.batches) <= 3


def test_seams_are_hidden_for_a_nonlocal_predictor() -> None:
    """A predictor that sees a tile border (here: an output offset by the tile mean) blends without jumps."""
    image = np.random.default_rng(2).random((1, 300, 300), dtype=np.float32)
    image += np.linspace(0, 4, 300, dtype=np.float32)[None, None, :]  # a ramp: tile means differ a lot

    def tile_mean(batch: torch.Tensor) -> torch.Tensor:
        return batch.mean(dim=(1, 2, 3), keepdim=True).expand(-1, 1, *batch.shape[2:]).clone()

    out = predict_tiled(tile_mean, image, tile=128, overlap=32, weights="cosine")[0]
    steps = np.abs(np.diff(out, axis=1))
    assert steps.max() < 0.1 * (out.max() - out.min())  # a hard seam would jump by about half the range


def test_every_pixel_gets_positive_weight_and_constants_survive() -> None:
    for shape, tile, overlap in [((700, 513), 256, 32), ((300, 300), 64, 60), ((129, 1000), 128, 0),
                                 ((50, 70), (64, 32), (8, 4))]:
        image = np.zeros((1, *shape), np.float32)
        out = predict_tiled(lambda b: torch.full((b.shape[0], 1, *b.shape[2:]), 7.0), image, tile=tile,
                            overlap=overlap, weights="gaussian")
        np.testing.assert_allclose(out, 7.0, rtol=1e-6)  # 0/0 would give NaN, a missed pixel 0


def test_tile_grid_covers_with_minimal_overlap() -> None:
    for size, tile, overlap in [(700, 256, 32), (513, 256, 32), (256, 256, 32), (257, 256, 32), (1000, 64, 63)]:
        starts = tile_starts(size, tile, overlap)
        assert starts[0] == 0 and starts[-1] == max(size - tile, 0)
        gaps = np.diff(starts)
        assert (gaps <= tile - overlap).all() and (gaps > 0).all()
        assert len(starts) == math.ceil(max(size - tile, 0) / (tile - overlap)) + 1
    assert tile_grid((300, 200), (128, 100), 20) == [(y, x) for y in (0, 86, 172) for x in (0, 50, 100)]
    with pytest.raises(ValueError):
        tile_starts(100, 32, 32)


@pytest.mark.parametrize("size", [100, 128, 129, 300, 1000, 1024, 1056, 4096, 5000])
@pytest.mark.parametrize("limit", [128, 512, 1024])
def test_fitted_tile_needs_as_few_tiles_as_the_limit_and_is_as_small_as_that_allows(size: int, limit: int) -> None:
    tile, overlap, multiple = 128, 32, 16
    side = fitted_tile(size, tile, limit, overlap, multiple)
    assert side % multiple == 0 and tile <= side <= max(tile, limit)
    if size <= tile or limit <= tile:
        assert side == tile
        return
    fewest = len(tile_starts(size, limit, overlap))
    assert len(tile_starts(size, side, overlap)) == fewest
    smaller = side - multiple
    assert smaller < tile or len(tile_starts(size, smaller, overlap)) > fewest
    if size <= limit:
        assert side == -(-size // multiple) * multiple  # one tile: the image rounded up to the multiple


def test_blend_windows() -> None:
    starts = tile_starts(700, 256, 32)
    first, middle, last = (blend_window(starts, s, 256, 32, "cosine") for s in starts)
    assert first[0] == 1.0 and last[-1] == 1.0  # image border: full weight
    assert (first[-8:] == 0).all() and (last[:8] == 0).all() and (middle[:8] == 0).all()  # outer quarter
    assert first[100] == 1.0 and (np.diff(last[8:24]) > 0).all()
    gauss = blend_window(starts, starts[0], 256, 32, "gaussian")
    assert 0 < gauss[0] < gauss[128] and gauss[-1] == 0
    only = blend_window([0], 0, 64, 16, "gaussian")
    assert (only > 0).all()


def test_torch_input_tuple_tiles_progress_and_out_channels() -> None:
    image = torch.rand(3, 100, 150, dtype=torch.float64)
    seen: list[tuple[int, int]] = []
    record = _Recorder((64, 48), 2)
    out = predict_tiled(record, image, tile=(64, 48), overlap=(8, 12), batch_size=2, out_channels=2,
                        progress=lambda done, total: seen.append((done, total)))
    np.testing.assert_allclose(out, _whole(image.float().numpy()), atol=2e-6)
    total = len(tile_grid((100, 150), (64, 48), (8, 12)))
    assert seen[-1] == (total, total) and len(seen) == math.ceil(total / 2)


def test_bad_outputs_and_arguments() -> None:
    image = np.zeros((1, 40, 40), np.float32)
    with pytest.raises(ValueError, match=r"expected \(1, 3, 32, 32\)"):
        predict_tiled(lambda b: torch.zeros(b.shape[0], 2, 32, 32), image, tile=32, overlap=8, batch_size=1,
                      out_channels=3)
    with pytest.raises(ValueError, match="returned shape"):
        predict_tiled(lambda b: torch.zeros(b.shape[0], 1, 16, 16), image, tile=32, overlap=8)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        predict_tiled(_local, np.zeros((40, 40), np.float32))
    with pytest.raises(ValueError, match="overlap"):
        predict_tiled(_local, image, tile=32, overlap=40)
    with pytest.raises(ValueError, match="weights"):
        predict_tiled(_local, np.zeros((3, 40, 40), np.float32), tile=32, overlap=8, weights="flat")


@pytest.mark.parametrize("shape", [(97, 130), (40, 33), (64, 64)])
def test_grid_output_equals_whole_image_subsampled_prediction(shape: tuple[int, int]) -> None:
    """A pointwise predictor that subsamples by 2 gives, tiled, the whole image subsampled at [::2, ::2]."""
    rng = np.random.default_rng(3)
    image = rng.random((2, *shape)).astype(np.float32)

    def subsample(batch: torch.Tensor) -> torch.Tensor:
        return torch.cat([batch, batch.sum(1, keepdim=True)], dim=1)[:, :, ::2, ::2]

    out = predict_tiled(subsample, image, tile=32, overlap=8, batch_size=3, grid=2)
    h, w = shape
    assert out.shape == (3, -(-h // 2), -(-w // 2))
    np.testing.assert_allclose(out[:2], image[:, ::2, ::2], atol=1e-5)
    np.testing.assert_allclose(out[2], image.sum(0)[::2, ::2], atol=1e-5)
    with pytest.raises(ValueError, match="multiples of grid"):
        predict_tiled(subsample, image, tile=30, overlap=8, grid=4)


@pytest.mark.parametrize("grid", [1, 2])
def test_an_image_of_one_tile_is_the_network_output_itself(grid: int) -> None:
    """One tile: the cosine weights are all 1, so the output is the network's, bit for bit (cropped to the image)."""
    image = np.random.default_rng(3).random((3, 90, 100), dtype=np.float32)
    calls: list[tuple[int, int]] = []

    def fn(batch: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(batch.shape[2:]))
        return _local(batch)[:, :, ::grid, ::grid]

    done: list[tuple[int, int]] = []
    out = predict_tiled(fn, image, tile=128, overlap=16, grid=grid, progress=lambda d, t: done.append((d, t)))
    assert calls == [(128, 128)] and done == [(1, 1)] and out.flags.c_contiguous
    padded = predict_tiled(fn, image, tile=128, overlap=16, grid=grid, weights="gaussian")  # the blending path
    np.testing.assert_allclose(out, padded, atol=1e-6)
    if grid == 2:  # padded at the bottom and right only
        whole = fn(torch.from_numpy(np.pad(image, ((0, 0), (0, 38), (0, 28)), mode="reflect")[None]))[0].numpy()
        np.testing.assert_array_equal(out, whole[:, :45, :50])

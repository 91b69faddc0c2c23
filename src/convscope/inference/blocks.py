"""Block-wise prediction of images larger than memory, on Dask.

The image (:class:`convscope.io.large.LargeImage`) is cut into square blocks (:class:`BlockGrid`). Three passes, each
a Dask graph run by a :class:`Runner` (the local threaded scheduler, or a ``dask.distributed`` cluster):

1. **Normalisation bounds** of the whole image (:func:`image_bounds`): a histogram per block, summed, gives exactly
   the percentiles the in-memory predictor takes for uint8 and uint16 images (a sample for other dtypes).
2. **Blocks** (:func:`segment_block`): each block's network output is the whole-image tiled prediction's there
   (:func:`convscope.inference.regions.predict_region`: the same tiles, blended with the same weights, so block
   borders are invisible to the network), on the block grown by a ``halo``; it is decoded there and the block's own
   part (its *core*) is written to a staging zarr array. A semantic class map is pointwise and needs no halo. An
   instance block also returns its labels on thin bands around its core's sides, and the neighbouring blocks'
   bands are matched (:func:`convscope.instances.stitch.matching_pairs`), so that an object crossing a border is
   linked across it.
3. **Output**: the links are merged into one id per object over the whole image
   (:func:`convscope.instances.stitch.merge_blocks`), each staged block is relabelled, and the label image is
   written with its resolution pyramid as OME-Zarr (:func:`convscope.io.large.write_label_pyramid`).

Memory is a few blocks (those in flight, plus their network output on the grown block) and one id per object,
whatever the image size.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from dask.diagnostics import ProgressBar

from convscope.errors import ConvscopeError
from convscope.inference.predictor import Predictor
from convscope.inference.regions import TileLayout, predict_region
from convscope.inference.tiling import predict_tiled
from convscope.instances.stitch import BlockLabels, Box, core_first, matching_pairs, merge_blocks, shared_box
from convscope.io.large import LargeImage, write_label_pyramid
from convscope.transforms.normalize import NormalizeConfig, bounds_from_histogram

Log = Callable[[str], None]
#: Half-width (pixels) of the bands around a core's sides on which neighbouring blocks' labels are matched.
BAND = 8
#: Values sampled for the percentiles of a float image.
_FLOAT_SAMPLES = 1 << 24


@dataclass(frozen=True)
class BlockGrid:
    """Square cores of ``block`` pixels tiling an image of ``height`` x ``width`` (the last row and column
    smaller), each decoded on itself grown by ``halo`` pixels (clipped to the image); multiples of ``grid``."""

    height: int
    width: int
    block: int
    halo: int
    grid: int = 1

    @property
    def rows(self) -> int:
        return -(-self.height // self.block)

    @property
    def cols(self) -> int:
        return -(-self.width // self.block)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def indices(self) -> list[tuple[int, int]]:
        """Block indices ``(i, j)``, row by row."""
        return [(i, j) for i in range(self.rows) for j in range(self.cols)]

    def core(self, i: int, j: int) -> Box:
        """Block ``(i, j)``'s own pixels ``(y0, y1, x0, x1)``."""
        b = self.block
        return i * b, min((i + 1) * b, self.height), j * b, min((j + 1) * b, self.width)

    def decoded(self, i: int, j: int) -> Box:
        """The core grown by the halo, clipped to the image: where the block is predicted and decoded."""
        return grow(self.core(i, j), self.halo, self.shape)

    def neighbours(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """Pairs of blocks sharing a side or a corner, each pair once."""
        pairs = []
        for i, j in self.indices():
            for di, dj in ((0, 1), (1, -1), (1, 0), (1, 1)):
                if 0 <= i + di < self.rows and 0 <= j + dj < self.cols:
                    pairs.append(((i, j), (i + di, j + dj)))
        return pairs


def grow(box: Box, by: int, shape: tuple[int, int]) -> Box:
    """``box`` grown by ``by`` pixels on every side, clipped to an image of ``shape``."""
    y0, y1, x0, x1 = box
    return max(y0 - by, 0), min(y1 + by, shape[0]), max(x0 - by, 0), min(x1 + by, shape[1])


# --- pass 1: normalisation bounds ---------------------------------------------------------------------------------

def image_bounds(source: LargeImage, normalize: NormalizeConfig, grid: BlockGrid, runner: Runner
                 ) -> tuple[float, float]:
    """The image's normalisation bounds (low, high) as the in-memory predictor computes them on the whole image:
    exact for uint8 and uint16 images (a histogram per block), from a regular sample of about 16 million values
    for other dtypes."""
    dtype = np.dtype(source.dtype)
    if normalize.mode != "percentile":
        return bounds_from_histogram(None, normalize, dtype)
    boxes = [grid.core(i, j) for i, j in grid.indices()]
    if dtype.kind == "u" and dtype.itemsize <= 2:
        parts = runner.compute([dask.delayed(_histogram)(source, box) for box in boxes], "normalisation")
        return bounds_from_histogram(np.sum(parts, axis=0), normalize, dtype)
    step = max(1, int(np.sqrt(source.shape[0] * source.shape[1] * source.shape[2] / _FLOAT_SAMPLES)))
    parts = runner.compute([dask.delayed(_sample)(source, box, step) for box in boxes], "normalisation")
    low, high = np.percentile(np.concatenate(parts), [normalize.low, normalize.high]).astype(np.float32)
    return float(low), float(high if high > low else low + 1)


def _histogram(source: LargeImage, box: Box) -> np.ndarray:
    """Counts of every value of ``box`` of an unsigned integer image, int64."""
    return np.bincount(source.read(*box).ravel(), minlength=1 << (8 * np.dtype(source.dtype).itemsize))


def _sample(source: LargeImage, box: Box, step: int) -> np.ndarray:
    return source.read(*box)[::step, ::step].ravel().astype(np.float64)


# --- pass 2: blocks -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockJob:
    """What every block task shares: the image, its bounds, the tile and block layouts and the staging array."""

    source: LargeImage
    low: float
    high: float
    layout: TileLayout | None  # None: an image thinner than one tile, each grown block predicted as an image
    grid: BlockGrid
    staging: str

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The normalised rectangle, float32 (C, h, w), as :meth:`Predictor.normalized` computes it."""
        image = self.source.read(y0, y1, x0, x1).astype(np.float32)
        low, high = np.float32(self.low), np.float32(self.high)
        return ((image - low) / (high - low)).transpose(2, 0, 1)


def segment_block(predictor: Predictor, job: BlockJob, index: tuple[int, int]) -> BlockLabels | int:
    """Predict and decode block ``index`` on its grown region and write its core to the staging array.

    Returns the foreground pixel count of a semantic core, or an instance block's :class:`BlockLabels`.
    """
    grid, task = job.grid, predictor.task
    core, region = grid.core(*index), grid.decoded(*index)
    g = task.grid
    y0, y1, x0, x1 = region
    if job.layout is None:  # an image thinner than a tile: the grown block is padded as a whole image is
        net = predict_tiled(predictor.forward, job.read(y0, y1, x0, x1), tile=predictor.run.tile,
                            overlap=predictor.run.overlap, batch_size=predictor.batch_size, grid=g)
    else:
        out_region = (y0 // g, -(-y1 // g), x0 // g, -(-x1 // g))
        net = predict_region(predictor.forward, job.read, job.layout, out_region, batch_size=predictor.batch_size)
    result = task.decode(task.split_output(net), (y1 - y0, x1 - x0))
    local = _relative(core, region)
    staging = zarr.open_array(job.staging, mode="r+")
    if task.kind != "instances":
        part = result[local[0]:local[1], local[2]:local[3]]
        staging[core[0]:core[1], core[2]:core[3]] = part
        return int(np.count_nonzero(part))
    ring = grow(core, BAND, grid.shape)
    labels, n_core, n_ids = core_first(result, local, _relative(ring, region))
    staging[core[0]:core[1], core[2]:core[3]] = labels[local[0]:local[1], local[2]:local[3]]
    return BlockLabels(n_core, n_ids, tuple(_bands(labels, core, ring, region)))


def _relative(box: Box, region: Box) -> Box:
    return box[0] - region[0], box[1] - region[0], box[2] - region[2], box[3] - region[2]


def _bands(labels: np.ndarray, core: Box, ring: Box, region: Box) -> Iterator[tuple[Box, np.ndarray]]:
    """The labels on the four bands of width ``2 * BAND`` around the core's sides (the ring's rows or columns)."""
    y0, y1, x0, x1 = core
    ry0, ry1, rx0, rx1 = ring
    for box in ((ry0, ry1, max(x0 - BAND, rx0), min(x0 + BAND, rx1)), (ry0, ry1, max(x1 - BAND, rx0), rx1),
                (max(y0 - BAND, ry0), min(y0 + BAND, ry1), rx0, rx1), (max(y1 - BAND, ry0), ry1, rx0, rx1)):
        rel = _relative(box, region)
        yield box, np.ascontiguousarray(labels[rel[0]:rel[1], rel[2]:rel[3]])


def link_blocks(first: BlockLabels, second: BlockLabels, box: Box) -> np.ndarray:
    """Pairs (id in ``first``, id in ``second``) of the same object, matched on ``box`` where their bands
    overlap."""
    return matching_pairs(first.labels_in(box), second.labels_in(box))


def _sizes(block: BlockLabels) -> tuple[int, int]:
    return block.n_core, block.n_ids


def relabel_block(staging: str, core: Box, lut: np.ndarray | None, dtype: str) -> np.ndarray:
    """A staged core with its global ids (``lut`` indexed by the block's ids; ``None``: as staged)."""
    part = zarr.open_array(staging, mode="r")[core[0]:core[1], core[2]:core[3]]
    return (part if lut is None else lut[part]).astype(dtype, copy=False)


# --- the whole prediction -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LargePrediction:
    """A block-wise prediction written to ``path`` (an OME-Zarr label image).

    Attributes
    ----------
    path, source : Path
        The output and the image predicted.
    shape : (int, int)
    objects : int or None
        Instance runs: objects found (ids ``1 .. objects``).
    foreground_fraction : float or None
        Semantic runs: the fraction of pixels of a class other than 0.
    bounds : (float, float)
        The image's normalisation bounds.
    blocks : int
    seconds : dict
        Wall-clock seconds of the normalisation, block and write passes.
    """

    path: Path
    source: Path
    shape: tuple[int, int]
    objects: int | None
    foreground_fraction: float | None
    bounds: tuple[float, float]
    blocks: int
    seconds: dict[str, float]


def predict_blocks(predictor: Predictor, source: LargeImage, target: Path, staging: Path, *, block: int, halo: int,
                   runner: Runner, attributes: dict[str, Any], log: Log) -> LargePrediction:
    """Predict ``source`` block by block and write the labels (instances) or class map (semantic) with its
    pyramid as an OME-Zarr label image at ``target`` (a new folder), staging blocks in ``staging`` (a new
    folder the caller removes)."""
    height, width, _ = source.shape
    task, run = predictor.task, predictor.run
    grid = BlockGrid(height, width, block, halo, task.grid)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    low, high = image_bounds(source, run.normalize, grid, runner)
    seconds["normalisation"] = time.perf_counter() - start
    layout = (TileLayout.of(height, width, tile=run.tile, overlap=run.overlap, grid=task.grid)
              if min(height, width) >= run.tile else None)
    instances = task.kind == "instances"
    zarr.create_array(str(staging), shape=(height, width), chunks=(block, block),
                      dtype="uint32" if instances else "uint8", fill_value=0)
    job = BlockJob(source, low, high, layout, grid, str(staging))
    log(f"{source.path.name}: {height} x {width} px in {grid.rows} x {grid.cols} blocks of {block} px "
        f"(halo {halo} px), {runner.describe()}")
    shared = dask.delayed(predictor, name=f"convscope-predictor-{uuid.uuid4().hex}")
    blocks = {ij: dask.delayed(segment_block, pure=False)(shared, job, ij) for ij in grid.indices()}
    start = time.perf_counter()
    luts: dict[tuple[int, int], np.ndarray | None]
    if instances:
        luts, objects = _stitch(blocks, grid, runner)
        dtype, fraction = ("uint16" if objects <= np.iinfo(np.uint16).max else "uint32"), None
    else:
        counts = runner.compute(list(blocks.values()), "blocks")
        luts, objects, dtype = dict.fromkeys(grid.indices()), None, "uint8"
        fraction = float(sum(counts) / (height * width))
    seconds["blocks"] = time.perf_counter() - start
    start = time.perf_counter()
    rows = [[da.from_delayed(dask.delayed(relabel_block)(str(staging), grid.core(i, j), luts[i, j], dtype),
                             shape=_extent(grid.core(i, j)), dtype=dtype) for j in range(grid.cols)]
            for i in range(grid.rows)]
    attributes = {"convscope": {**attributes, "objects": objects, "foreground_fraction": fraction,
                                "normalization_bounds": [low, high], "block_size": block, "halo": halo}}
    writes = write_label_pyramid(pyramid(da.block(rows)), target, name="labels" if instances else "mask",
                                 chunks=block, attributes=attributes)
    runner.compute(writes, "write")
    seconds["write"] = time.perf_counter() - start
    return LargePrediction(target, source.path, (height, width), objects, fraction, (low, high),
                           grid.rows * grid.cols, {k: round(v, 3) for k, v in seconds.items()})


def _stitch(blocks: dict[tuple[int, int], Any], grid: BlockGrid, runner: Runner
            ) -> tuple[dict[tuple[int, int], np.ndarray], int]:
    """Run the instance blocks with the matching of every pair of neighbours' bands; the global ids of every
    block's core objects (one id per linked object) and the number of objects."""
    pairs = [(k, l_, shared_box(grid.core(*k), grid.core(*l_), BAND, grid.shape)) for k, l_ in grid.neighbours()]
    pairs = [p for p in pairs if p[2] is not None]
    links = [dask.delayed(link_blocks)(blocks[k], blocks[l_], box) for k, l_, box in pairs]
    sizes = [dask.delayed(_sizes)(blocks[ij]) for ij in grid.indices()]
    found = runner.compute([*sizes, *links], "blocks")
    order = {ij: n for n, ij in enumerate(grid.indices())}
    merged, objects = merge_blocks(found[:len(sizes)], [(order[k], order[l_], p) for (k, l_, _), p
                                                         in zip(pairs, found[len(sizes):], strict=True)])
    return dict(zip(grid.indices(), merged, strict=True)), objects


def _extent(box: Box) -> tuple[int, int]:
    return box[1] - box[0], box[3] - box[2]


def pyramid(level0: da.Array, *, smallest: int = 64, max_levels: int = 5) -> list[da.Array]:
    """``level0`` and its nearest-neighbour halvings (every second pixel) while the smaller side stays at least
    ``smallest`` pixels, at most ``max_levels`` levels."""
    levels = [level0]
    while len(levels) < max_levels and min(levels[-1].shape) // 2 >= smallest:
        levels.append(levels[-1][::2, ::2])
    return levels


# --- schedulers ---------------------------------------------------------------------------------------------------

class Runner:
    """Computes lists of Dask tasks with a progress bar: the local threaded scheduler (``threads`` threads, Dask's
    default without), or a ``dask.distributed`` client."""

    def __init__(self, *, threads: int | None = None, client: Any = None, progress: bool = True) -> None:
        self.threads, self.client, self.progress = threads, client, progress

    def describe(self) -> str:
        if self.client is None:
            return f"local threads ({self.threads or os.cpu_count()})"
        workers = self.client.scheduler_info().get("workers", {})
        return f"dask.distributed at {self.client.scheduler.address} ({len(workers)} workers)"

    def compute(self, tasks: Sequence[Any], what: str) -> list[Any]:
        if not tasks:
            return []
        if self.client is None:
            with _progress_bar(self.progress):
                return list(dask.compute(*tasks, scheduler="threads", num_workers=self.threads))
        futures = self.client.compute(list(tasks))
        if self.progress:
            from distributed import progress

            progress(futures)
        return list(self.client.gather(futures))


@contextmanager
def _progress_bar(show: bool) -> Iterator[None]:
    if not show:
        yield
        return
    with ProgressBar(minimum=1.0, dt=0.5):
        yield


@contextmanager
def open_runner(*, workers: int | None = None, scheduler: str | None = None, threads: int | None = None,
                progress: bool = True) -> Iterator[Runner]:
    """A :class:`Runner`: the local threaded scheduler by default, a new ``dask.distributed`` LocalCluster of
    ``workers`` processes (one thread each; closed on exit), or the existing cluster at ``scheduler``."""
    if workers is not None and scheduler is not None:
        raise ConvscopeError("--workers starts a local cluster, --scheduler joins an existing one; give only one")
    if workers is None and scheduler is None:
        yield Runner(threads=threads, progress=progress)
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConvscopeError("--workers and --scheduler need dask.distributed: pip install 'convscope[dask]'"
                             ) from None

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as err:
            raise ConvscopeError(f"--scheduler {scheduler}: cannot connect ({err}); check the address "
                                 "(tcp://host:8786) and that the scheduler runs") from None
        with client:
            yield Runner(client=client, progress=progress)
        return
    if workers < 1:
        raise ConvscopeError(f"--workers {workers}: give at least 1 worker process")
    torch_threads = str(max(1, (os.cpu_count() or 1) // workers))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR,
                      env={"OMP_NUM_THREADS": torch_threads, "MKL_NUM_THREADS": torch_threads}) as cluster, \
            Client(cluster) as client:
        yield Runner(client=client, progress=progress)

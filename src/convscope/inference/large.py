"""Images larger than memory: ``predict_large(run, "big.ome.zarr", "labels.ome.zarr")`` predicts block by block on
Dask and writes an OME-Zarr label image (instances: one id per object over the whole image; semantic: the class
map) with its resolution pyramid. See :mod:`convscope.inference.blocks` for how.

Needs the dask extra: ``pip install 'convscope[dask]'`` (dask, distributed, zarr, ome-zarr).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import tifffile

from convscope.errors import ConvscopeError
from convscope.inference.predictor import Predictor
from convscope.io.atomic import atomic_directory
from convscope.runs import TrainedRun, load_run

if TYPE_CHECKING:
    from convscope.inference.blocks import LargePrediction

Log = Callable[[str], None]
#: `convscope predict` sends a TIFF of more pixels than this to block-wise prediction.
LARGE_TIFF_PIXELS = 8192 * 8192
#: Default block side (pixels).
BLOCK_SIZE = 2048
_HINT = "needs the dask extra: pip install 'convscope[dask]'"


def require_dask() -> None:
    """Raise :class:`ConvscopeError` with the install hint when the dask extra is missing."""
    try:
        import dask.array  # noqa: F401
        import ome_zarr.writer  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as err:
        raise ConvscopeError(f"block-wise prediction of large images {_HINT} ({err.name} is missing)") from None


def is_large_input(path: str | Path) -> bool:
    """Whether `convscope predict` takes ``path`` block by block: a ``.zarr`` folder, or a TIFF of more than
    :data:`LARGE_TIFF_PIXELS` pixels per plane."""
    path = Path(path)
    if path.suffix.lower() == ".zarr":
        return True
    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return False
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            size = dict(zip(series.axes, series.shape, strict=True))
    except Exception:  # an unreadable TIFF is reported by the ordinary reader
        return False
    return int(size.get("Y", 0)) * int(size.get("X", 0)) > LARGE_TIFF_PIXELS


def predict_large(run: str | Path | TrainedRun, image: str | Path, out: str | Path, *, block_size: int = BLOCK_SIZE,
                  halo: int | None = None, workers: int | None = None, scheduler: str | None = None,
                  threads: int | None = None, batch_size: int = 4, overwrite: bool = False, progress: bool = True,
                  log: Log = print) -> LargePrediction:
    """Predict an image larger than memory block by block and write an OME-Zarr label image.

    Parameters
    ----------
    run : path-like or TrainedRun
        A semantic or instance run directory, a built-in model's name, or a loaded run.
    image : path-like
        An OME-Zarr image (its full-resolution level is read), a 2-D zarr array, or a TIFF (read through
        tifffile's zarr interface; a tiled or stripped TIFF is read piece by piece).
    out : path-like
        The new ``.zarr`` folder: an NGFF label image (levels ``s0`` = full resolution, ``s1`` ... halved),
        written in a temporary folder beside it and renamed when complete.
    block_size : int
        Side of the square blocks (pixels); a multiple of the run's output grid, at least its tile. Memory grows
        with it, not with the image.
    halo : int, optional
        Instance runs: pixels each block is decoded beyond its own part, at least the diameter of the largest
        object (default half the run's tile). Semantic runs need none.
    workers : int, optional
        Start a ``dask.distributed`` LocalCluster of this many worker processes.
    scheduler : str, optional
        The address of an existing ``dask.distributed`` scheduler (``tcp://host:8786``); paths must be visible
        to its workers.
    threads : int, optional
        Threads of the local scheduler (default: one per CPU).
    batch_size : int
        Tiles per forward pass.
    overwrite : bool
        Replace an existing ``out``.
    progress : bool
        Show Dask's progress bar.

    Returns
    -------
    LargePrediction
        What was found and written (:class:`convscope.inference.blocks.LargePrediction`).

    Raises
    ------
    ConvscopeError
        Missing extra, a classification run, a bad input or output path, bad block options.
    """
    require_dask()
    from convscope.inference.blocks import BAND, open_runner, predict_blocks
    from convscope.io.large import open_large_image

    trained = run if isinstance(run, TrainedRun) else load_run(run)
    task = trained.task
    if task.kind == "classification":
        raise ConvscopeError(f"{trained.name}: a classification run takes whole images; block-wise prediction is "
                             "for segmentation and instance runs")
    source_path, out = Path(image), Path(out)
    _check_out(source_path, out, overwrite)
    source = open_large_image(source_path)
    if source.shape[2] != trained.channels:
        raise ConvscopeError(f"{source_path}: has {source.shape[2]} channels; the model takes {trained.channels} "
                             "(convert the image first)")
    instances = task.kind == "instances"
    halo = _halo(trained, halo, BAND) if instances else 0
    _check_block(trained, block_size, halo)
    if task.tta:
        log("note: block-wise prediction does not average flips (the run's test-time augmentation)")
    if trained.diameter is not None:
        log(f"note: {trained.name} was trained on objects of {trained.diameter:.0f} px; block-wise prediction does "
            "not rescale, so resize the image first if yours differ much")
    attributes = {"run": str(trained.name), "source": str(source_path), "task": task.name}
    with atomic_directory(out, overwrite=overwrite) as target, \
            tempfile.TemporaryDirectory(prefix=f".{out.name}.", suffix=".staging", dir=out.parent) as staging, \
            open_runner(workers=workers, scheduler=scheduler, threads=threads, progress=progress) as runner:
        result = predict_blocks(Predictor(trained, batch_size=batch_size), source, target.resolve(),
                                Path(staging).resolve() / "blocks.zarr", block=block_size, halo=halo, runner=runner,
                                attributes=attributes, log=log)
    return replace(result, path=out)


def _check_out(source: Path, out: Path, overwrite: bool) -> None:
    if out.suffix.lower() != ".zarr":
        raise ConvscopeError(f"--out {out}: block-wise prediction writes OME-Zarr; give a name ending in .ome.zarr")
    resolved, src = out.resolve(), source.resolve()
    if resolved == src or src in resolved.parents or resolved in src.parents:
        raise ConvscopeError(f"--out {out}: is, holds or lies inside the input {source}; choose another folder")
    if out.exists() and not overwrite:
        raise ConvscopeError(f"--out {out}: already exists; choose another name or pass --overwrite")


def _halo(trained: TrainedRun, halo: int | None, band: int) -> int:
    g = trained.task.grid
    if halo is None:
        return max(trained.tile // 2, 2 * band) // g * g
    if halo < 2 * band or halo % g:
        raise ConvscopeError(f"--halo {halo}: give at least {2 * band} pixels, a multiple of the output grid ({g}), "
                             "and at least the diameter of the largest object")
    return halo


def _check_block(trained: TrainedRun, block: int, halo: int) -> None:
    g, tile = trained.task.grid, trained.tile
    if block < tile or block % g or block < halo:
        raise ConvscopeError(f"--block-size {block}: give at least the run's tile ({tile} px) and the halo "
                             f"({halo} px), a multiple of its output grid ({g})")

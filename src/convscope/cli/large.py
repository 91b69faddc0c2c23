"""`convscope predict` of images larger than memory: block by block on Dask into an OME-Zarr label image."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from convscope.errors import ConvscopeError
from convscope.inference.large import BLOCK_SIZE, is_large_input, predict_large


def wants_blocks(inputs: Sequence[Path], block_size: int | None, workers: int | None, scheduler: str | None) -> bool:
    """Whether `convscope predict` goes block by block: a ``.zarr`` input, a TIFF over 8192^2 pixels, or any of
    ``--block-size``, ``--workers``, ``--scheduler`` given."""
    return any(is_large_input(p) for p in inputs) or any(v is not None for v in (block_size, workers, scheduler))


def predict_large_command(run: Path, inputs: Sequence[Path], out: Path, *, block_size: int | None, halo: int | None,
                          workers: int | None, scheduler: str | None, batch_size: int, overwrite: bool,
                          diameter: float | None, log: Callable[[str], None]) -> None:
    """Predict the one large image of ``inputs`` and say what was written."""
    if len(inputs) != 1:
        raise ConvscopeError("block-wise prediction takes one image (an OME-Zarr folder or a TIFF) and writes one "
                             "OME-Zarr; predict several images one command at a time")
    if diameter is not None:
        raise ConvscopeError("--diameter: block-wise prediction does not rescale; resize the image so that its "
                             "objects match the model's training diameter first")
    result = predict_large(run, inputs[0], out, block_size=block_size or BLOCK_SIZE, halo=halo, workers=workers,
                           scheduler=scheduler, batch_size=batch_size, overwrite=overwrite, log=log)
    h, w = result.shape
    found = (f"{result.objects:,} objects" if result.objects is not None
             else f"foreground fraction {result.foreground_fraction:.4f}")
    seconds = sum(result.seconds.values())
    log(f"{h} x {w} px in {result.blocks} blocks: {found}, written to {out} (OME-Zarr label image, {seconds:.1f} s)")

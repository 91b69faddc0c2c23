"""Export: a trained run as a bioimage.io model package, an ONNX graph or a TorchScript archive, for the tools
where biologists work (Fiji/deepImageJ, QuPath, ilastik, napari) and for runtimes without convscope.

:func:`export_run` is the one entry point (``convscope export RUN --format ... --out ...``). Every format holds the
run's network followed by its task's output activations (:class:`~convscope.export.network.ExportedNetwork`) and
convscope's description of it; every export is checked against torch eager before it is written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from convscope.config import MetadataConfig
from convscope.errors import ConvscopeError
from convscope.export.bioimageio import export_bioimageio, metadata_with
from convscope.export.common import ExportResult
from convscope.export.onnx import write_onnx
from convscope.export.torchscript import write_torchscript
from convscope.runs import TrainedRun, load_run

ExportFormat = Literal["bioimageio", "onnx", "torchscript"]
FORMATS: tuple[str, ...] = ("bioimageio", "onnx", "torchscript")

__all__ = ["FORMATS", "ExportFormat", "ExportResult", "export_run", "metadata_with"]


def export_run(run: str | Path | TrainedRun, out: str | Path, *, format: ExportFormat = "bioimageio",
               metadata: MetadataConfig | None = None, sample: str | Path | None = None, test: bool = True,
               overwrite: bool = False, log: Callable[[str], None] = print) -> ExportResult:
    """Export a run directory (or built-in model, or convscope package) to ``out``.

    Parameters
    ----------
    run : path-like or TrainedRun
    out : path-like
        ``.zip`` (bioimageio), ``.onnx`` or ``.pt`` (torchscript); never overwritten unless ``overwrite``.
    format : {"bioimageio", "onnx", "torchscript"}
    metadata, sample, test
        bioimage.io only: see :func:`convscope.export.bioimageio.export_bioimageio`.
    """
    if format not in FORMATS:
        raise ConvscopeError(f"--format {format}: unknown export format; use one of {', '.join(FORMATS)}")
    trained = run if isinstance(run, TrainedRun) else load_run(run, device="cpu")
    if format == "onnx":
        return write_onnx(trained, out, overwrite=overwrite)
    if format == "torchscript":
        return write_torchscript(trained, out, overwrite=overwrite)
    return export_bioimageio(trained, out, metadata=metadata, sample=sample, test=test, overwrite=overwrite, log=log)

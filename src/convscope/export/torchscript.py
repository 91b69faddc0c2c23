"""TorchScript export: the run's network with its output activations, traced (height and width free for dense
networks: any multiple of the size multiple), convscope's description stored beside the graph in the archive
(``extra_files["convscope.json"]``)."""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from convscope.export.architecture import example_input, exported_network
from convscope.export.common import ExportResult, check_out, export_description, parity
from convscope.io.atomic import write_bytes
from convscope.runs import TrainedRun

#: Name of convscope's description inside a TorchScript archive.
DESCRIPTION_FILE = "convscope.json"


def traced_network(run: TrainedRun) -> torch.jit.ScriptModule:
    """``run``'s exported network traced on an input of its size (a multiple of its size multiple)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on shape arithmetic, the deprecation notice of trace
        return torch.jit.trace(exported_network(run), example_input(run), check_trace=False)


def torchscript_bytes(run: TrainedRun) -> bytes:
    """The traced network of ``run`` as a TorchScript archive, with convscope's description inside."""
    buffer = io.BytesIO()
    torch.jit.save(traced_network(run), buffer, _extra_files={DESCRIPTION_FILE: json.dumps(export_description(run))})
    return buffer.getvalue()


def load_torchscript(data: bytes) -> torch.jit.ScriptModule:
    """A TorchScript archive's module, on the CPU, in eval mode."""
    return torch.jit.load(io.BytesIO(data), map_location="cpu").eval()


def script_outputs(module: torch.jit.ScriptModule) -> Callable[[torch.Tensor], list[np.ndarray]]:
    """A function running ``module`` on a (1, C, H, W) tensor, returning its outputs as arrays."""

    def run(x: torch.Tensor) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(x)
        return [o.numpy() for o in (out if isinstance(out, tuple | list) else (out,))]

    return run


def write_torchscript(run: TrainedRun, out: str | Path, *, overwrite: bool = False) -> ExportResult:
    """Write ``run``'s exported network to ``out`` (``.pt`` or ``.torchscript``), after checking it against torch
    eager."""
    out = check_out(out, suffixes=(".pt", ".torchscript"), overwrite=overwrite)
    data = torchscript_bytes(run)
    diff = parity(run, script_outputs(load_torchscript(data)), "TorchScript export")
    write_bytes(out, data)
    return ExportResult(out, "torchscript", diff)

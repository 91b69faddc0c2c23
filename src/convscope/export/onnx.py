"""ONNX export: the run's network with its output activations as an ONNX graph (opset 17), batch, height and width
dynamic, convscope's description in the graph's metadata (key ``convscope``). Needs the ``onnx`` extra."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convscope.errors import ConvscopeError
from convscope.export.architecture import example_input, exported_network
from convscope.export.common import ExportResult, check_out, export_description, parity
from convscope.inference.backends import ONNX_HINT, onnx_bytes, onnx_session
from convscope.io.atomic import write_bytes
from convscope.runs import TrainedRun


def onnx_graph(run: TrainedRun) -> bytes:
    """The exported network of ``run`` as ONNX bytes, with convscope's description as metadata."""
    try:
        import onnx
    except ImportError:
        raise ConvscopeError(f"ONNX export needs the onnx extra: {ONNX_HINT}") from None
    names = [o.name for o in run.task.exported_outputs()]
    graph = onnx_bytes(exported_network(run), example_input(run), output_names=names,
                       spatial=hasattr(run.model, "size_multiple"))
    model = onnx.load_from_string(graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = "convscope", json.dumps(export_description(run))
    model.producer_name = "convscope"
    return model.SerializeToString()


def onnx_outputs(session: Any) -> Callable[[torch.Tensor], list[np.ndarray]]:
    """A function running ``session`` on a (1, C, H, W) tensor, returning its outputs as arrays."""
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.ascontiguousarray(x.numpy())})


def write_onnx(run: TrainedRun, out: str | Path, *, overwrite: bool = False) -> ExportResult:
    """Write ``run``'s exported network to ``out`` (``.onnx``), after checking it against torch eager."""
    out = check_out(out, suffixes=(".onnx",), overwrite=overwrite)
    graph = onnx_graph(run)
    diff = parity(run, onnx_outputs(onnx_session(graph)), "ONNX export")
    write_bytes(out, graph)
    return ExportResult(out, "onnx", diff)

"""Network runners: what the predictor calls on a batch of tiles. ``torch`` runs the network eagerly; ``onnxruntime``
runs it as an ONNX graph (traced once per network and cached in ``$CONVSCOPE_CACHE/onnx/``, height and width dynamic)
in an ONNX Runtime session on the CPU; ``auto`` is ONNX Runtime on the CPU when the ``onnx`` extra is installed (it
is faster there: BENCHMARKS.md), else torch.

Both map a float32 batch (B, C, h, w) to the raw network output (B, K, ceil(h / grid), ceil(w / grid)) (or (B, K)
for a classifier), so the task decodes either the same way. ONNX Runtime needs the ``onnx`` extra
(``pip install 'convscope[onnx]'``).
"""

from __future__ import annotations

import copy
import hashlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from convscope.errors import ConvscopeError
from convscope.io.atomic import write_bytes
from convscope.models.weights import weights_cache

Backend = Literal["auto", "torch", "onnxruntime"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnxruntime")
#: The ONNX opset of every graph convscope writes.
OPSET = 17
ONNX_HINT = "pip install 'convscope[onnx]'"


def check_backend(name: str) -> Backend:
    """``name`` if it is a known backend; a :class:`ConvscopeError` listing them otherwise."""
    if name not in BACKENDS:
        raise ConvscopeError(f"--backend {name}: unknown backend; use one of {', '.join(BACKENDS)}")
    return name  # type: ignore[return-value]


def resolve_backend(name: str, device: torch.device) -> Backend:
    """The backend that runs: ``name``, or for ``auto`` ``onnxruntime`` on the CPU when the ``onnx`` extra is
    installed, else ``torch`` (a GPU stays with torch)."""
    name = check_backend(name)
    if name != "auto":
        return name
    if device.type != "cpu":
        return "torch"
    try:
        require_onnx("auto")
    except ConvscopeError:
        return "torch"
    return "onnxruntime"


def require_onnx(feature: str) -> Any:
    """The ``onnxruntime`` module; a :class:`ConvscopeError` with the install hint when the extra is missing."""
    try:
        import onnx  # noqa: F401  (the exporter writes through it)
        import onnxruntime
    except ImportError:
        raise ConvscopeError(f"{feature} needs the onnx extra: {ONNX_HINT}") from None
    return onnxruntime


def onnx_bytes(module: nn.Module, example: torch.Tensor, *, output_names: Sequence[str] = ("output",),
               spatial: bool = True) -> bytes:
    """The ONNX graph of ``module`` traced on ``example`` (N, C, H, W) float32, as bytes.

    The batch axis is dynamic, and so are the height and width when ``spatial`` (a fully convolutional network:
    then every size that is a multiple of the network's size multiple works, as for ``example``). Outputs are named
    ``output_names`` in the order ``module`` returns them. Opset :data:`OPSET`, TorchScript-based exporter.
    """
    require_onnx("ONNX export")
    module = module.eval()
    with torch.no_grad():
        outputs = module(example)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    if len(outputs) != len(output_names):
        raise ValueError(f"{len(outputs)} outputs but {len(output_names)} names")
    axes = {"input": {0: "batch", 2: "height", 3: "width"} if spatial else {0: "batch"}}
    for name, out in zip(output_names, outputs, strict=True):
        dense = spatial and out.ndim == 4
        axes[name] = {0: "batch", 2: f"{name}_height", 3: f"{name}_width"} if dense else {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on shape arithmetic, the exporter's deprecation notice
        torch.onnx.export(module, (example,), buffer, dynamo=False, input_names=["input"],
                          output_names=list(output_names), dynamic_axes=axes, opset_version=OPSET)
    return buffer.getvalue()


def onnx_session(model: bytes | str, *, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session of a graph (bytes or a file path), with ``threads`` intra-op threads (default:
    torch's thread count, so both backends use the same cores)."""
    ort = require_onnx("the onnxruntime backend")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors reach the caller as exceptions; keep ONNX Runtime's own log quiet
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxRunner:
    """A network as an ONNX Runtime session, called like the torch network on a batch of tiles.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
        One input (N, C, H, W) float32, the raw output first.
    size_multiple : int
        Heights and widths the graph takes are multiples of this; other batches are reflect-padded at the bottom
        and right and the output cropped back (as the star-convex network does itself).
    grid : int
        Output subsampling: the output of an (h, w) batch is cropped to (ceil(h / grid), ceil(w / grid)).
    """

    def __init__(self, session: Any, *, size_multiple: int = 1, grid: int = 1) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.size_multiple, self.grid = size_multiple, grid

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.detach().to("cpu", torch.float32).numpy()
        h, w = x.shape[-2:] if x.ndim == 4 else (0, 0)
        m = self.size_multiple
        if x.ndim == 4 and (h % m or w % m):
            mode = "reflect" if -h % m < h and -w % m < w else "edge"
            x = np.pad(x, ((0, 0), (0, 0), (0, -h % m), (0, -w % m)), mode=mode)
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0]
        if out.ndim == 4:
            out = out[..., : -(-h // self.grid), : -(-w // self.grid)]
        return torch.from_numpy(np.ascontiguousarray(out))


def onnx_runner(model: nn.Module, example: torch.Tensor, *, grid: int) -> OnnxRunner:
    """A copy of ``model`` (raw outputs) traced to ONNX on ``example`` and wrapped in an :class:`OnnxRunner`; the
    graph is cached by the network's class, weights and input channels (:func:`onnx_cache_path`)."""
    spatial = hasattr(model, "size_multiple")
    m = int(getattr(model, "size_multiple", 1))
    if spatial:  # traced at a size the network does not pad, so that no padding is baked into the graph
        example = torch.nn.functional.pad(example, (0, -example.shape[-1] % m, 0, -example.shape[-2] % m))
    cached = onnx_cache_path(model, example)
    if cached.is_file():
        graph = cached.read_bytes()
    else:
        graph = onnx_bytes(copy.deepcopy(model).float().cpu().eval(), example, spatial=spatial)
        write_bytes(cached, graph)
    return OnnxRunner(onnx_session(graph), size_multiple=m, grid=grid)


def onnx_cache_path(model: nn.Module, example: torch.Tensor) -> Path:
    """``$CONVSCOPE_CACHE/onnx/<hash>.onnx``: the hash of the network's architecture (its printout), weights, the
    traced input's shape (a classifier's is fixed), the opset and the torch version."""
    digest = hashlib.sha256(f"{model!r}|{tuple(example.shape)}|{OPSET}|{torch.__version__}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return weights_cache().parent / "onnx" / f"{digest.hexdigest()[:24]}.onnx"

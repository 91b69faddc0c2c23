"""What every export format shares: refusing to overwrite, the convscope description embedded in each exported file,
and the parity check of an exported network against torch eager."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convscope.errors import ConvscopeError
from convscope.export.architecture import exported_network, size_multiple
from convscope.runs import TrainedRun
from convscope.runs.package import EXPORT_FORMAT
from convscope.runs.runtime import provenance

#: Largest absolute difference allowed between an exported network and torch eager.
PARITY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportResult:
    """One written export.

    Attributes
    ----------
    path : Path
        The file written (``.onnx``, ``.pt`` TorchScript, or the bioimage.io ``.zip``).
    format : str
        ``onnx``, ``torchscript`` or ``bioimageio``.
    max_abs_diff : float
        Largest absolute difference between the exported network(s) and torch eager on the check inputs.
    warnings : tuple of str
        What the user should know (for example metadata bioimage.io's upload needs).
    """

    path: Path
    format: str
    max_abs_diff: float
    warnings: tuple[str, ...] = ()


def check_out(out: str | Path, *, suffixes: Sequence[str], overwrite: bool) -> Path:
    """``out`` as a Path; an error when its suffix is not one of ``suffixes`` or it exists and not ``overwrite``."""
    out = Path(out)
    if out.suffix.lower() not in suffixes:
        raise ConvscopeError(f"--out {out}: expected a {' or '.join(suffixes)} file name")
    if out.is_dir():
        raise ConvscopeError(f"--out {out}: is a folder; give a file name ending in {suffixes[0]}")
    if out.exists() and not overwrite:
        raise ConvscopeError(f"--out {out}: already exists; choose another name or pass --overwrite")
    return out


def export_description(run: TrainedRun) -> dict[str, Any]:
    """The description convscope embeds in every export (JSON-ready): the run's ``model/config.json``, its
    recipe, the output tensors and how convscope decodes them, the input size multiple, the training objects'
    median diameter when known (built-in models), the package versions."""
    return {
        "format": EXPORT_FORMAT,
        "run": run.name,
        "model_config": run.model_config,
        "recipe": run.config.model_dump(mode="json"),
        "outputs": [{"name": o.name, "channels": list(o.channels), "description": o.description}
                    for o in run.task.exported_outputs()],
        "size_multiple": size_multiple(run),
        "diameter": run.diameter,
        "versions": {k: v for k, v in provenance().items() if k != "created"},
    }


def check_inputs(run: TrainedRun) -> list[torch.Tensor]:
    """Inputs the parity check runs: the run's input size and, for a dense network, a larger, non-square size
    (both multiples of the size multiple), so a graph that fixed the height or width fails."""
    h, w, c = run.input_shape
    m = size_multiple(run)
    generator = torch.Generator().manual_seed(0)
    sizes = [(-(-h // m) * m, -(-w // m) * m)]
    if hasattr(run.model, "size_multiple"):
        sizes.append((sizes[0][0] + m, sizes[0][1] + 2 * m))
    return [torch.rand(1, c, *size, generator=generator) for size in sizes]


def parity(run: TrainedRun, exported: Callable[[torch.Tensor], Sequence[np.ndarray]], what: str) -> float:
    """Largest absolute difference between ``exported`` (input (1, C, H, W) float32 -> its output arrays) and the
    eager exported network on :func:`check_inputs`; a RuntimeError when it exceeds :data:`PARITY_TOLERANCE`."""
    network = exported_network(run)
    worst = 0.0
    for x in check_inputs(run):
        with torch.no_grad():
            eager = network(x)
        eager = eager if isinstance(eager, tuple) else (eager,)
        found = exported(x)
        for e, f in zip(eager, found, strict=True):
            if tuple(e.shape) != tuple(np.shape(f)):
                raise RuntimeError(f"{what}: output shape {tuple(np.shape(f))} differs from torch's {tuple(e.shape)} "
                                   f"for input {tuple(x.shape)}")
            worst = max(worst, float(np.max(np.abs(e.numpy() - np.asarray(f)))))
    if worst > PARITY_TOLERANCE:
        raise RuntimeError(f"{what}: differs from torch eager by {worst:.3g} (> {PARITY_TOLERANCE})")
    return worst

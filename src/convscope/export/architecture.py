"""What every export starts from: a trained run's network with its task's output activations
(:class:`~convscope.export.network.ExportedNetwork`), and the self-contained Python source of its architecture.

The architecture source (:func:`architecture_source`) is the code of convscope's model registry, layers and models
and of :mod:`convscope.export.network`, copied from the installed package with the imports between them removed, and
a factory ``convscope_network(model, options, heads)``. It imports only torch, so a bioimage.io package's
``pytorch_state_dict`` weights load where convscope is not installed; the copy is made at export time, so it is the
code the run was trained with.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
from typing import Any

import torch

from convscope.export.network import ExportedNetwork
from convscope.runs import TrainedRun

#: The modules copied into the architecture file, in order (each only needs the ones before it).
ARCHITECTURE_MODULES = ("convscope.errors", "convscope.models.registry", "convscope.models.layers",
                        "convscope.models.unet", "convscope.models.stardist", "convscope.models.classifiers",
                        "convscope.models.vgg16", "convscope.export.network")

#: The callable a bioimage.io consumer calls with the package's ``architecture.kwargs``.
FACTORY_NAME = "convscope_network"

_FACTORY = f'''
def {FACTORY_NAME}(model: str, options: dict, heads: list) -> nn.Module:
    """The exported network: convscope model ``model`` built with ``options``, its outputs split and activated as
    ``heads`` say (see ExportedNetwork)."""
    options = dict(options)
    if options.get("input_size") is not None:
        options["input_size"] = tuple(options["input_size"])
    return ExportedNetwork(_REGISTRY[model].fn(**options), [tuple(head) for head in heads])
'''


def exported_network(run: TrainedRun) -> ExportedNetwork:
    """A copy of ``run``'s network (eval mode, on the CPU, float32) followed by the activations of its task's
    :meth:`~convscope.tasks.base.Task.exported_outputs`."""
    return ExportedNetwork(copy.deepcopy(run.model).float().cpu().eval(), network_heads(run)).eval()


def network_heads(run: TrainedRun) -> list[list[Any]]:
    """The ``heads`` argument of :class:`ExportedNetwork` for ``run`` (JSON-ready)."""
    return [[o.start, o.stop, o.activation, o.scale] for o in run.task.exported_outputs()]


def architecture_kwargs(run: TrainedRun) -> dict[str, Any]:
    """The keyword arguments of :data:`FACTORY_NAME` that rebuild ``run``'s exported network."""
    model = run.model_config["model"]
    return {"model": model["name"], "options": dict(model["options"]), "heads": network_heads(run)}


def size_multiple(run: TrainedRun) -> int:
    """Input heights and widths the exported network takes: multiples of this (1 = any; classifiers take their
    input size)."""
    return int(getattr(run.model, "size_multiple", 1))


def example_input(run: TrainedRun, *, batch: int = 1) -> torch.Tensor:
    """A random input (batch, C, H, W) float32 of the run's input size, rounded up to :func:`size_multiple`."""
    h, w, c = run.input_shape
    m = size_multiple(run)
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, c, -(-h // m) * m, -(-w // m) * m, generator=generator)


def architecture_source() -> str:
    """The self-contained architecture file (Python source importing only torch) defining :data:`FACTORY_NAME`."""
    parts = ['"""convscope network architectures, copied from the convscope package that exported this model.\n\n'
             f'Build the exported network with {FACTORY_NAME}(**kwargs), kwargs from the package\'s rdf."""',
             "from __future__ import annotations"]
    for name in ARCHITECTURE_MODULES:
        source = inspect.getsource(importlib.import_module(name))
        parts.append(f"# ---- {name} ----\n{_without_package_imports(source)}")
    parts.append(_FACTORY)
    return "\n\n".join(parts)


def _without_package_imports(source: str) -> str:
    """``source`` without its module-level ``from __future__`` and ``from convscope...`` imports."""
    drop: set[int] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("convscope", "__future__"):
            drop.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return "\n".join(line for i, line in enumerate(source.splitlines(), 1) if i not in drop)

"""convscope: ConvNets for microscopy. Train, evaluate, predict and export, with honest reports.

>>> import convscope
>>> run = convscope.load_run("runs/nuclei")              # doctest: +SKIP
>>> labels = convscope.Predictor(run).segment(image)     # doctest: +SKIP

The API (:mod:`convscope.api`) is imported on first use, so that ``convscope.metrics`` and
``convscope.instances`` stay importable without torch.
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import Any

__version__ = metadata.version("convscope")

_API = ("Predictor", "RunConfig", "TrainedRun", "create_model", "evaluate", "evaluate_label_folders",
        "evaluate_labelled", "export_run", "finetune", "list_models", "load_recipe", "load_run", "matching",
        "matching_dataset", "predict", "predict_large", "resume", "train")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module("convscope.api"), name)
    raise AttributeError(f"module 'convscope' has no attribute {name!r}")

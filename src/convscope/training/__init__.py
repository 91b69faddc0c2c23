"""Training: typed recipes, the fit loop, run directories and evaluation.

Imports are lazy so that the numpy-only parts (``training.diagnosis``) load without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "RunConfig": "config", "load_recipe": "config", "parse_config": "config",
    "evaluate_run": "evaluate", "resume": "fit", "train": "fit", "RunDir": "rundir",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"convscope.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'convscope.training' has no attribute {name!r}")

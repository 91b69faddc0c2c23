"""Prediction with trained runs, and tiled prediction of images of any size.

Imports are lazy so that ``inference.tiling`` loads without the training stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Prediction": "predictor", "Predictor": "predictor", "expand_inputs": "predictor",
    "write_predictions": "predictor", "predict_tiled": "tiling", "tile_grid": "tiling",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(f"convscope.inference.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'convscope.inference' has no attribute {name!r}")

"""Prediction with trained runs: one :class:`Predictor` for every task, tiled prediction of images of any size,
and the files a prediction writes."""

from convscope.inference.outputs import expand_inputs, predict_paths, write_predictions
from convscope.inference.predictor import Predictor, Timings
from convscope.inference.tiling import predict_tiled, tile_grid

__all__ = ["Predictor", "Timings", "expand_inputs", "predict_paths", "predict_tiled", "tile_grid",
           "write_predictions"]

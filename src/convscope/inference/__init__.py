"""Prediction with trained runs."""

from convscope.inference.predictor import Prediction, Predictor, expand_inputs, write_predictions

__all__ = ["Prediction", "Predictor", "expand_inputs", "write_predictions"]

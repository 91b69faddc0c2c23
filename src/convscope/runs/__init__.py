"""The run directory, the product of training: its layout, its environment, and loading a trained run
(:func:`load_run`), the one way evaluation, prediction, the CLI, the napari plugin and export get a model."""

from convscope.runs.layout import MODEL_FORMAT, RunDir, read_json, read_run_config
from convscope.runs.trained import TrainedRun, build_trained_model, load_run

__all__ = ["MODEL_FORMAT", "RunDir", "TrainedRun", "build_trained_model", "load_run", "read_json", "read_run_config"]

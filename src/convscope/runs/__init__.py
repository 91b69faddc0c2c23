"""The run directory, the product of training: its layout, its environment, and loading a trained run
(:func:`load_run`), the one way evaluation, prediction, the CLI, the napari plugin and export get a model."""

from convscope.runs.layout import MODEL_FORMAT, RunDir, read_json, read_run_config
from convscope.runs.package import is_convscope_package, is_package, open_run_dir, unpack_package
from convscope.runs.trained import TrainedRun, build_trained_model, load_run

__all__ = ["MODEL_FORMAT", "RunDir", "TrainedRun", "build_trained_model", "is_convscope_package", "is_package",
           "load_run", "open_run_dir", "read_json", "read_run_config", "unpack_package"]

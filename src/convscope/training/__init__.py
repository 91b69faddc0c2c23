"""Training: typed recipes, the fit loop, run directories and evaluation."""

from convscope.training.config import RunConfig, load_recipe, parse_config
from convscope.training.evaluate import evaluate_run
from convscope.training.fit import resume, train
from convscope.training.rundir import RunDir

__all__ = ["RunConfig", "RunDir", "evaluate_run", "load_recipe", "parse_config", "resume", "train"]

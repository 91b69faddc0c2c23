"""The public Python API, re-exported by ``import convscope``: train, evaluate and predict from a recipe or a run."""

from __future__ import annotations

from convscope.config import load_recipe
from convscope.models import create_model, list_models
from convscope.training.evaluate import evaluate_run
from convscope.training.finetune import finetune
from convscope.training.fit import resume, train

__all__ = ["create_model", "evaluate_run", "finetune", "list_models", "load_recipe", "resume", "train"]

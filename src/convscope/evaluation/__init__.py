"""Evaluation: judge a trained run on a split (thresholds tuned on validation), score label images from any tool,
and compare runs; numbers only, the report draws them."""

from convscope.evaluation.labels import evaluate_label_folders
from convscope.evaluation.run import RunEvaluation, evaluate_run, finish_run

__all__ = ["RunEvaluation", "evaluate_label_folders", "evaluate_run", "finish_run"]

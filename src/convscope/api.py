"""The public Python API, re-exported by ``import convscope``.

>>> import convscope
>>> config = convscope.load_recipe("examples/ex7_stardist_dsb2018.yaml")      # doctest: +SKIP
>>> metrics = convscope.train(config, "runs/nuclei", data_dir="../shared/data")  # doctest: +SKIP
>>> run = convscope.load_run("runs/nuclei")                                    # doctest: +SKIP
>>> labels = convscope.Predictor(run).segment(image)                          # doctest: +SKIP
>>> convscope.matching(true_labels, labels).f1                                 # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from convscope.config import RunConfig, load_recipe
from convscope.evaluation import RunEvaluation, evaluate_label_folders, evaluate_run, finish_run
from convscope.inference import Predictor, predict_paths
from convscope.metrics import matching, matching_dataset
from convscope.models import create_model, list_models
from convscope.report.run import write_run_report
from convscope.runs import TrainedRun, load_run
from convscope.training.finetune import prepare_finetune
from convscope.training.fit import Fitted, OnEpoch, fit, resume_fit

__all__ = ["Predictor", "RunConfig", "TrainedRun", "create_model", "evaluate", "evaluate_label_folders", "finetune",
           "list_models", "load_recipe", "load_run", "matching", "matching_dataset", "predict", "resume", "train"]

Log = Callable[[str], None]


def train(config: RunConfig, out: str | Path, *, data_dir: str | Path | None = None, log: Log = print,
          on_epoch: OnEpoch | None = None, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Train a model as ``config`` says and write the whole run directory ``out``: config, history, weights,
    thresholds tuned on validation, ``metrics.json``, learning curves and ``report.html``.

    ``out`` must not exist or be empty (nothing is overwritten). ``on_epoch`` is called with every epoch's history
    row; setting ``cancel`` stops within one batch and leaves a resumable run (``{}`` is returned). Returns the
    metrics written to ``out/metrics.json``.
    """
    fitted = fit(config, out, data_dir=_path(data_dir), log=log, on_epoch=on_epoch, cancel=cancel)
    return _close(fitted, log)


def resume(out: str | Path, *, data_dir: str | Path | None = None, log: Log = print,
           on_epoch: OnEpoch | None = None, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Continue an interrupted run from its last checkpoint and finish it as :func:`train` does."""
    return _close(resume_fit(out, data_dir=_path(data_dir), log=log, on_epoch=on_epoch, cancel=cancel), log)


def finetune(run: str | Path, data: str | Path, out: str | Path, *, epochs: int | None = None,
             learning_rate: float | None = None, mix_original: int = 0, data_dir: str | Path | None = None,
             log: Log = print, on_epoch: OnEpoch | None = None, cancel: threading.Event | None = None
             ) -> dict[str, Any]:
    """Fine-tune ``run`` on the image / label pairs in ``data`` (``images/`` + ``masks/``) into the new run
    directory ``out``, complete as :func:`train` writes it (see
    :func:`convscope.training.finetune.prepare_finetune` for the options)."""
    config = prepare_finetune(run, data, out, epochs=epochs, learning_rate=learning_rate, mix_original=mix_original,
                              data_dir=_path(data_dir), log=log)
    return train(config, out, data_dir=data_dir, log=log, on_epoch=on_epoch, cancel=cancel)


def _close(fitted: Fitted, log: Log) -> dict[str, Any]:
    if not fitted.completed:
        return {}
    trained = load_run(fitted.run.path, device=fitted.config.train.device)
    evaluation = finish_run(trained, fitted.data, fitted.history, log=log)
    _report(evaluation)
    return evaluation.metrics


def _report(evaluation: RunEvaluation) -> None:
    write_run_report(evaluation.trained.run, history=evaluation.history, metrics=evaluation.metrics,
                     diagnosis=evaluation.diagnosis, examples=evaluation.examples, kind=evaluation.kind)


def evaluate(run: str | Path, *, split: str = "test", data_dir: str | Path | None = None, tta: bool | None = None,
             retune: bool = False, color: str | None = None, log: Log = print) -> RunEvaluation:
    """Re-evaluate a run on ``split`` ("test", "val" or "all"); update its ``metrics.json`` and report (see
    :func:`convscope.evaluation.evaluate_run` for ``tta``, ``retune`` and ``color``); an interrupted run's directory
    is left as it is."""
    evaluation = evaluate_run(run, split=split, data_dir=_path(data_dir), tta=tta, retune=retune, color=color, log=log)
    if evaluation.saved:
        _report(evaluation)
    return evaluation


def predict(run: str | Path | TrainedRun, inputs: Sequence[str | Path], out: str | Path, *, batch_size: int = 4,
            overwrite: bool = False, png: bool = False, probabilities: bool = False) -> list[Any]:
    """Predict image files and folders with a run and write the results to ``out``: a CSV of classes, or a folder
    of masks / label images with ``predictions.csv`` (see :mod:`convscope.inference.outputs`)."""
    trained = run if isinstance(run, TrainedRun) else load_run(run)
    return predict_paths(Predictor(trained, batch_size=batch_size), inputs, out, overwrite=overwrite, png=png,
                         probabilities=probabilities)


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)

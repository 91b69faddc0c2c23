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
from convscope.errors import ConvscopeError
from convscope.evaluation import RunEvaluation, evaluate_label_folders, evaluate_run, finish_run
from convscope.evaluation.folder import FolderEvaluation, evaluate_folder
from convscope.export import export_run
from convscope.export.package import predict_foreign
from convscope.inference import Predictor, predict_paths
from convscope.inference.backends import Backend
from convscope.inference.large import predict_large
from convscope.inference.predictor import predict_tile
from convscope.metrics import matching, matching_dataset
from convscope.models import create_model, list_models
from convscope.pretrained import is_pretrained
from convscope.report.run import write_run_report
from convscope.runs import TrainedRun, is_convscope_package, is_package, load_run
from convscope.runs.layout import RunDir
from convscope.runs.runtime import resolve_device
from convscope.training import distributed
from convscope.training.finetune import prepare_finetune
from convscope.training.fit import Fitted, OnEpoch, fit, resumable_config, resume_fit

__all__ = ["Predictor", "RunConfig", "TrainedRun", "create_model", "evaluate", "evaluate_label_folders",
           "evaluate_labelled", "export_run", "finetune", "list_models", "load_recipe", "load_run", "matching",
           "matching_dataset", "predict", "predict_large", "resume", "train"]

Log = Callable[[str], None]


def train(config: RunConfig, out: str | Path, *, data_dir: str | Path | None = None, log: Log = print,
          on_epoch: OnEpoch | None = None, cancel: threading.Event | None = None, nproc: int = 1) -> dict[str, Any]:
    """Train a model as ``config`` says and write the whole run directory ``out``: config, history, weights,
    thresholds tuned on validation, ``metrics.json``, learning curves and ``report.html``.

    ``out`` must not exist or be empty (nothing is overwritten). ``on_epoch`` is called with every epoch's history
    row; setting ``cancel`` stops within one batch and leaves a resumable run (``{}`` is returned). Returns the
    metrics written to ``out/metrics.json``.

    ``nproc > 1`` trains in that many processes with DistributedDataParallel (:mod:`convscope.training.distributed`;
    rank 0 logs with ``print``; ``on_epoch`` and ``cancel`` are not available there). Started by ``torchrun``, each
    process trains as its rank.
    """
    if nproc > 1:
        return _launch(config, out, data_dir, nproc)
    if distributed.from_environment() and not distributed.context().active:
        with distributed.process_group(resolve_device(config.train.device).type):
            return _train_rank(config, str(out), _path(data_dir), resume=False)
    fitted = fit(config, out, data_dir=_path(data_dir), log=log, on_epoch=on_epoch, cancel=cancel)
    return _close(fitted, log)


def resume(out: str | Path, *, data_dir: str | Path | None = None, log: Log = print,
           on_epoch: OnEpoch | None = None, cancel: threading.Event | None = None, nproc: int = 1) -> dict[str, Any]:
    """Continue an interrupted run from its last checkpoint and finish it as :func:`train` does (``nproc``: as
    for :func:`train`)."""
    if nproc > 1 or distributed.from_environment():
        config = resumable_config(out)
        if nproc > 1:
            return _launch(config, out, data_dir, nproc, resume=True)
        with distributed.process_group(resolve_device(config.train.device).type):
            return _train_rank(config, str(out), _path(data_dir), resume=True)
    return _close(resume_fit(out, data_dir=_path(data_dir), log=log, on_epoch=on_epoch, cancel=cancel), log)


def _launch(config: RunConfig, out: str | Path, data_dir: str | Path | None, nproc: int, *,
            resume: bool = False) -> dict[str, Any]:
    distributed.launch(_train_rank, nproc, (config, str(out), _path(data_dir), resume),
                       device_type=resolve_device(config.train.device).type)
    return RunDir(Path(out)).read_metrics()


def _train_rank(config: RunConfig, out: str, data_dir: Path | None, resume: bool) -> dict[str, Any]:
    """One rank of a distributed run: all train, rank 0 alone logs, evaluates and writes the report."""
    main = distributed.context().is_main
    log: Log = print if main else _silent
    fitted = (resume_fit(out, data_dir=data_dir, log=log) if resume
              else fit(config, out, data_dir=data_dir, log=log))
    return _close(fitted, log) if main else {}


def _silent(_message: str) -> None:
    return None


def finetune(run: str | Path, data: str | Path, out: str | Path, *, epochs: int | None = None,
             learning_rate: float | None = None, mix_original: int = 0, holdout: bool | None = None,
             data_dir: str | Path | None = None, log: Log = print, on_epoch: OnEpoch | None = None,
             cancel: threading.Event | None = None) -> dict[str, Any]:
    """Fine-tune ``run`` on the image / label pairs in ``data`` (``images/`` + ``masks/``) into the new run
    directory ``out``, complete as :func:`train` writes it (see
    :func:`convscope.training.finetune.prepare_finetune` for the options)."""
    config = prepare_finetune(run, data, out, epochs=epochs, learning_rate=learning_rate, mix_original=mix_original,
                              holdout=holdout, data_dir=_path(data_dir), log=log)
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
    is left as it is. A built-in model is scored on a labelled folder instead (:func:`evaluate_labelled`)."""
    if is_pretrained(run):
        raise ConvscopeError(f"{run}: a built-in model has no splits of its own; score it on your labelled images "
                             f"with convscope.evaluate_labelled({str(run)!r}, DIR) (DIR/images + DIR/masks)")
    evaluation = evaluate_run(run, split=split, data_dir=_path(data_dir), tta=tta, retune=retune, color=color, log=log)
    if evaluation.saved:
        _report(evaluation)
    return evaluation


def evaluate_labelled(run: str | Path | TrainedRun, folder: str | Path, *, diameter: float | None = None,
                      log: Log = print) -> FolderEvaluation:
    """Score a segmentation run or built-in model (``"nuclei"``) on the user's labelled ``folder`` (``images/`` +
    ``masks/``); nothing is written (see :func:`convscope.evaluation.folder.evaluate_folder`)."""
    trained = run if isinstance(run, TrainedRun) else load_run(run)
    return evaluate_folder(trained, folder, diameter=diameter, log=log)


def predict(run: str | Path | TrainedRun, inputs: Sequence[str | Path], out: str | Path, *, batch_size: int = 4,
            overwrite: bool = False, png: bool = False, probabilities: bool = False, diameter: float | None = None,
            backend: Backend = "auto", tile: int | None = None, log: Log | None = None) -> list[Any]:
    """Predict image files and folders with a run or built-in model and write the results to ``out``: a CSV of
    classes, or a folder of masks / label images with ``predictions.csv`` (see :mod:`convscope.inference.outputs`;
    ``diameter``: the objects' diameter in pixels for models that record their training object size). ``run`` may
    be a bioimage.io package: convscope's own load as runs; another tool's are run with their declared pre- and
    postprocessing and write their outputs as TIFFs (:func:`convscope.export.package.predict_foreign`).
    ``backend``: see :class:`convscope.inference.Predictor` (``auto``: ONNX Runtime on the CPU when installed);
    ``tile``: the largest tile side a dense task's images are predicted in (default
    :data:`~convscope.inference.predictor.PREDICT_TILE`; 0: the model's training patch)."""
    if not isinstance(run, TrainedRun) and is_package(run) and not is_convscope_package(run):
        return predict_foreign(run, inputs, out, batch_size=batch_size, overwrite=overwrite)
    trained = run if isinstance(run, TrainedRun) else load_run(run)
    predictor = Predictor(trained, batch_size=batch_size, backend=backend, tile=predict_tile(tile))
    return predict_paths(predictor, inputs, out, overwrite=overwrite, png=png, probabilities=probabilities,
                         diameter=diameter, log=log)


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)

"""Evaluation of a classifier on a split, and the files that close a run: metrics.json, curves, report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from convscope.config import RunConfig
from convscope.datasets.base import ClassificationData, ImageSet
from convscope.errors import ConvscopeError
from convscope.metrics import classification_report
from convscope.metrics.overfitting import diagnose_overfitting
from convscope.models.summary import count_params
from convscope.runs.layout import RunDir
from convscope.tasks import ClassificationTask
from convscope.tasks.instances import INSTANCE_TASKS
from convscope.training.tensors import TensorImages, ordered_batches

Log = Callable[[str], None]
N_EXAMPLES = 24


@torch.no_grad()
def predict_logits(model: Callable[[torch.Tensor], torch.Tensor], data: TensorImages, *, batch_size: int,
                   channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, outputs) float32 and labels (N,) int64 of a whole set, in order, in eval mode."""
    module = getattr(model, "_orig_mod", model)
    was_training = module.training if isinstance(module, nn.Module) else False
    if isinstance(module, nn.Module):
        module.eval()
    outs, labels = [], []
    for index in ordered_batches(len(data), batch_size):
        x, y = data.batch(index, channels_last=channels_last)
        outs.append(model(x).float())
        labels.append(y)
    if isinstance(module, nn.Module):
        module.train(was_training)
    return torch.cat(outs), torch.cat(labels)


def evaluate_loss(model: Callable[[torch.Tensor], torch.Tensor], task: ClassificationTask, data: TensorImages, *,
                  batch_size: int, channels_last: bool = False) -> dict[str, float]:
    """Mean loss and the task's epoch metrics of ``model`` on ``data``: ``{"loss": ..., "accuracy": ...}``."""
    logits, labels = predict_logits(model, data, batch_size=batch_size, channels_last=channels_last)
    stats = {k: float(v) for k, v in task.batch_stats(logits, labels).items()}
    return {"loss": task.loss(logits, labels).item(), **task.summarize(stats, len(labels))}


def evaluate_split(model: nn.Module, task: ClassificationTask, images: ImageSet, config: RunConfig,
                   device: torch.device) -> tuple[dict[str, Any], np.ndarray]:
    """Split metrics (accuracy, loss, per-class P/R/F1, confusion matrix) and probabilities (N, K)."""
    tensors = TensorImages.from_set(images, config.data.normalize, device)
    logits, labels = predict_logits(model, tensors, batch_size=config.train.batch_size)
    probs = task.probabilities(logits).cpu().numpy()
    report = classification_report(images.labels, probs.argmax(1), task.class_names)
    metrics = {"accuracy": report.accuracy, "loss": task.loss(logits, labels).item(), "n_images": len(images)}
    metrics.update({k: v for k, v in report.to_dict().items() if k not in metrics})
    return metrics, probs


def misclassified(images: ImageSet, probs: np.ndarray, limit: int = N_EXAMPLES) -> list[dict[str, Any]]:
    """The most confident mistakes: image (H, W, C), path, true and predicted class, probability."""
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != images.labels)
    wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:limit]
    names = images.class_names
    return [{"image": images.images[i], "path": images.paths[i], "true": names[images.labels[i]],
             "pred": names[pred[i]], "probability": float(probs[i, pred[i]])} for i in wrong]


def load_trained_model(run: RunDir, device: torch.device) -> nn.Module:
    """The model of a finished run with its best weights, in eval mode, on ``device``."""
    from safetensors.torch import load_file

    from convscope.models import create_model

    cfg = run.read_model_config()
    options = dict(cfg["model"]["options"])
    options["input_size"] = tuple(options["input_size"])
    model = create_model(cfg["model"]["name"], **options)
    model.load_state_dict(load_file(run.weights, device="cpu"))
    return model.to(device).eval()


def finish_run(run: RunDir, config: RunConfig, data: ClassificationData, task: ClassificationTask,
               history: list[dict[str, float]], *, log: Log = print,
               splits: tuple[str, ...] = ("val", "test")) -> dict[str, Any]:
    """Evaluate the best weights on ``splits`` and write metrics.json, learning_curves.png, report.html."""
    from convscope.runs.runtime import resolve_device

    device = resolve_device(config.train.device)
    model = load_trained_model(run, device)
    metrics = run.read_metrics()
    examples: dict[str, list[dict[str, Any]]] = {}
    for split in splits:
        images = getattr(data, split)
        if images is None:
            continue
        metrics[split], probs = evaluate_split(model, task, images, config, device)
        examples[split] = misclassified(images, probs)
        log(f"{split}: accuracy {metrics[split]['accuracy']:.4f}  loss {metrics[split]['loss']:.4f}  "
            f"({len(images)} images)")
    return close_run(run, model, metrics, history, examples, log=log)


def close_run(run: RunDir, model: nn.Module, metrics: dict[str, Any], history: list[dict[str, float]],
              examples: dict[str, list[dict[str, Any]]], *, log: Log = print) -> dict[str, Any]:
    """Add the overfitting diagnosis and parameter counts to ``metrics``; write metrics.json, the learning
    curves and report.html. Any task."""
    from convscope.report.run import write_run_report

    diagnosis = diagnose_overfitting(history) if history else None
    if diagnosis is not None:
        metrics["overfitting"] = diagnosis.to_dict()
        log(f"overfitting: {diagnosis.summary}")
    trainable, non_trainable = count_params(model)
    metrics["params"] = {"trainable": trainable, "non_trainable": non_trainable}
    run.write_metrics(metrics)
    write_run_report(run, history=history, metrics=metrics, diagnosis=diagnosis, examples=examples)
    return metrics


def evaluate_run(path: str | Path, *, split: str = "test", data_dir: Path | None = None, tta: bool | None = None,
                 retune: bool = False, log: Log = print) -> dict[str, Any]:
    """Re-evaluate a finished run on ``split`` ("test", "val" or "all"); update metrics.json and the report.

    The data are loaded as in training (same recipe, seed and split), from ``data_dir`` when given. ``tta``
    (instance runs): switch test-time augmentation on or off; when that changes the run's setting, the decoding
    thresholds are tuned again on the validation images and both are saved with the model. ``retune`` (instance
    runs): tune them again in any case.
    """
    from convscope.datasets import load_classification
    from convscope.runs.layout import read_run_config

    run = RunDir.open(path)
    config = read_run_config(run)
    splits = ("val", "test") if split == "all" else (split,)
    if config.task in INSTANCE_TASKS:
        return _evaluate_instances(run, config, data_dir, splits, log, tta=tta, retune=retune)
    if tta is not None or retune:
        option = "test-time augmentation (--tta)" if tta is not None else "tuning thresholds (--retune)"
        raise ConvscopeError(f"{path}: {option} is for instance runs (stardist, flows)")
    if config.task == "semantic":
        return _evaluate_semantic(run, config, data_dir, splits, log)
    data = load_classification(config.data, data_dir=data_dir, seed=config.train.seed)
    task = ClassificationTask(tuple(run.read_model_config()["class_names"]))
    if task.class_names != data.class_names:
        raise ConvscopeError(f"{path}: the data's classes {data.class_names} differ from the model's "
                             f"{task.class_names}; pass the --data folder the run was trained on")
    return finish_run(run, config, data, task, run.read_history(), log=log, splits=splits)


def _evaluate_semantic(run: RunDir, config: RunConfig, data_dir: Path | None, splits: tuple[str, ...],
                       log: Log) -> dict[str, Any]:
    from convscope.datasets.segmentation import load_segmentation
    from convscope.tasks.semantic import SemanticTask
    from convscope.training.evaluate_semantic import finish_semantic_run

    model_cfg = run.read_model_config()
    data = load_segmentation(config.data, data_dir=data_dir, seed=config.train.seed)
    task = SemanticTask(tuple(model_cfg["class_names"]), loss_name=model_cfg.get("loss", config.train.loss),
                        threshold=model_cfg.get("threshold", 0.5))
    return finish_semantic_run(run, config, data, task, run.read_history(), log=log, splits=splits, tune=False)


def _evaluate_instances(run: RunDir, config: RunConfig, data_dir: Path | None, splits: tuple[str, ...],
                        log: Log, *, tta: bool | None = None, retune: bool = False) -> dict[str, Any]:
    from convscope.datasets.segmentation import load_segmentation
    from convscope.io.atomic import write_json
    from convscope.training.evaluate_instances import finish_instance_run

    data = load_segmentation(config.data, data_dir=data_dir, seed=config.train.seed, instances=True)
    model_cfg = run.read_model_config()
    section = model_cfg[config.task]
    if tta is not None and bool(section.get("tta", False)) != tta:
        section["tta"] = tta
        write_json(run.model_config, model_cfg)
        log(f"test-time augmentation {'on' if tta else 'off'}: tuning the thresholds again")
        retune = True
    return finish_instance_run(run, config, data, run.read_history(), log=log, splits=splits, tune=retune)

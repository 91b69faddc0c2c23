"""The loss and epoch metrics of a model on a fixed set of batches: the validation score of every epoch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from convscope.tasks import Task
from convscope.training.tensors import ordered_batches


@torch.inference_mode()
def predict_batches(model: Callable[[torch.Tensor], torch.Tensor], data: Any, *, batch_size: int,
                    channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (N, outputs, ...) float32 and targets of every sample of ``data`` (a :class:`TrainData` whose
    targets are already encoded), in order, in eval mode (the module's mode is restored) and inference mode (no
    autograd bookkeeping at all; the outputs are inference tensors: read them, do not change them in place)."""
    module = getattr(model, "_orig_mod", model)
    was_training = module.training if isinstance(module, nn.Module) else False
    if isinstance(module, nn.Module):
        module.eval()
    outs, targets = [], []
    for index in ordered_batches(len(data), batch_size):
        x, y = data.batch(index, channels_last=channels_last)
        outs.append(model(x).float())
        targets.append(y)
    if isinstance(module, nn.Module):
        module.train(was_training)
    return torch.cat(outs), torch.cat(targets)


def evaluate_loss(model: Callable[[torch.Tensor], torch.Tensor], task: Task, data: Any, *, batch_size: int,
                  channels_last: bool = False) -> dict[str, float]:
    """Loss and the task's epoch metrics of ``model`` on the whole of ``data`` (one loss over every sample, so a
    Dice loss is the set's): ``{"loss": ..., <metric>: ...}``."""
    outputs, targets = predict_batches(model, data, batch_size=batch_size, channels_last=channels_last)
    stats = {k: float(v) for k, v in task.batch_stats(outputs, targets).items()}
    return {"loss": task.loss(outputs, targets).item(), **task.summarize(stats, len(targets))}

"""convscope's own training step of a throughput-benchmark classifier on one random batch, for the probes
(bench/bf16_probe.py, bench/roofline.py, bench/step_variants.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from convscope.config import TrainConfig
from convscope.models import create_model, get_entry
from convscope.runs.runtime import seed_everything, tune_allocator
from convscope.tasks import ClassificationTask
from convscope.training.step import adam, make_train_step

#: The benchmark classifiers' classes: MNIST digits, RBC normal / abnormal.
CLASSES = {"mnist_cnn": 10, "vgg1": 2}


def classifier(name: str) -> tuple[nn.Module, ClassificationTask, tuple[int, int, int]]:
    """A fresh ``name`` model for its classes, at the input it was designed for: (model, task, (C, H, W))."""
    h, w, c = get_entry(name).default_input
    task = ClassificationTask(tuple(str(k) for k in range(CLASSES[name])))
    return create_model(name, in_channels=c, num_classes=task.num_outputs, input_size=(h, w)), task, (c, h, w)


@dataclass
class ClassifierStep:
    """A channels_last model with its task, fused Adam and one random batch ``x`` (B, C, H, W) float32 in [0, 1]
    (channels_last), ``y`` (B,) int64."""

    model: nn.Module
    task: ClassificationTask
    optimizer: torch.optim.Optimizer
    cfg: TrainConfig
    x: torch.Tensor
    y: torch.Tensor

    def step_with(self, forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], object]:
        """convscope's training step (``make_train_step``) through ``forward`` (the model, a trace of it, a DDP
        wrapper) on the batch, as a function of nothing."""
        step = make_train_step(forward, self.model, self.task, self.optimizer, None, self.cfg)
        return lambda: step(self.x, self.y)

    def step(self) -> Callable[[], object]:
        return self.step_with(self.model)


def classifier_step(name: str, *, batch: int = 32, precision: str = "float32") -> ClassifierStep:
    """``name`` (seed 0, glibc allocator tuned as training does) ready for timing its training step."""
    seed_everything(0)
    tune_allocator()
    model, task, shape = classifier(name)
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(batch, *shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES[name], (batch,))
    optimizer = adam(model.parameters(), 1e-3, torch.device("cpu"))
    return ClassifierStep(model, task, optimizer, TrainConfig(batch_size=batch, precision=precision), x, y)

"""How much bfloat16 autocast would speed up a training step of the course's classifiers on this CPU (a probe for
issue 17; the feature is ``train.precision: bfloat16``): convscope's training step (``make_train_step``) of ``vgg1``
(85x85x3) and ``mnist_cnn`` (28x28x1), batch 32, random data, channels_last, fused Adam, 1 thread (``T=2`` in the
environment: 2); float32 and bfloat16 alternate twice.

    PYTHONPATH=src .venv/bin/python bench/bf16_probe.py

On CPUs without bfloat16 units (no AVX-512 BF16 / AMX) autocast runs but is not expected to be faster.
"""

from __future__ import annotations

import os
import time

import torch

from convscope.config import TrainConfig
from convscope.models import create_model
from convscope.tasks import ClassificationTask
from convscope.training.step import adam, make_train_step

MODELS = {"vgg1": ((85, 85, 3), 2, 20), "mnist_cnn": ((28, 28, 1), 10, 300)}  # shape, classes, timed steps


def step_time(name: str, precision: str, steps: int) -> float:
    """Milliseconds per training step (convscope's own, in ``precision``) of a fresh ``name`` model (3 untimed
    steps first)."""
    (h, w, c), classes, _ = MODELS[name]
    torch.manual_seed(0)
    task = ClassificationTask(tuple(str(k) for k in range(classes)))
    model = create_model(name, in_channels=c, num_classes=task.num_outputs, input_size=(h, w))
    model = model.to(memory_format=torch.channels_last)
    cpu = torch.device("cpu")
    step = make_train_step(model, model, task, adam(model.parameters(), 1e-3, cpu), None,
                           TrainConfig(precision=precision))
    x = torch.randn(32, c, h, w).to(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (32,))
    for _ in range(3):
        step(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    torch.set_num_threads(int(os.environ.get("T", "1")))
    for name, (_, _, steps) in MODELS.items():
        for precision in ("float32", "bfloat16", "float32", "bfloat16"):
            print(f"{name} {precision} {step_time(name, precision, steps):.1f} ms/step", flush=True)


if __name__ == "__main__":
    main()

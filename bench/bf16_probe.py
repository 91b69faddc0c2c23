"""How much bfloat16 autocast would speed up a training step of the course's classifiers on this CPU (a probe for
issue 17; the feature is ``train.precision: bfloat16``): convscope's training step (``make_train_step``) of ``vgg1``
(85x85x3) and ``mnist_cnn`` (28x28x1), batch 32, random data in [0, 1], channels_last, fused Adam, glibc allocator
tuned (``bench/classifier_step.py``), 1 thread (``T=2`` in the environment: 2); float32 and bfloat16 alternate
twice.

    PYTHONPATH=src .venv/bin/python bench/bf16_probe.py

On CPUs without bfloat16 units (no AVX-512 BF16 / AMX) autocast runs but is not expected to be faster.
"""

from __future__ import annotations

import os
import time

import torch
from classifier_step import classifier_step

STEPS = {"vgg1": 20, "mnist_cnn": 300}  # timed steps


def step_time(name: str, precision: str, steps: int) -> float:
    """Milliseconds per training step (convscope's own, in ``precision``) of a fresh ``name`` model (3 untimed
    steps first)."""
    step = classifier_step(name, precision=precision).step()
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    torch.set_num_threads(int(os.environ.get("T", "1")))
    for name, steps in STEPS.items():
        for precision in ("float32", "bfloat16", "float32", "bfloat16"):
            print(f"{name} {precision} {step_time(name, precision, steps):.1f} ms/step", flush=True)


if __name__ == "__main__":
    main()

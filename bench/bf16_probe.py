"""How much bfloat16 autocast would speed up a training step of the course's classifiers on this CPU (a probe for
issue 17; the feature is ``train.precision: bfloat16``): Adam steps of ``vgg1`` (85x85x3) and ``mnist_cnn``
(28x28x1), batch 32, random data, channels_last, fused Adam, 1 thread (``T=2`` in the environment: 2); float32 and
``torch.autocast("cpu", torch.bfloat16)`` alternate twice.

    PYTHONPATH=src .venv/bin/python bench/bf16_probe.py

On CPUs without bfloat16 units (no AVX-512 BF16 / AMX) autocast runs but is not expected to be faster.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from convscope.models import create_model

MODELS = {"vgg1": ((85, 85, 3), 1, 20), "mnist_cnn": ((28, 28, 1), 10, 300)}  # shape, outputs, timed steps


def step_time(name: str, bf16: bool, steps: int) -> float:
    """Milliseconds per Adam step of a fresh ``name`` model (3 untimed steps first)."""
    (h, w, c), outputs, _ = MODELS[name]
    torch.manual_seed(0)
    model = create_model(name, in_channels=c, num_classes=outputs, input_size=(h, w))
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    x = torch.randn(32, c, h, w).to(memory_format=torch.channels_last)
    y = torch.randint(0, max(outputs, 2), (32,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(x).float()
        loss = F.binary_cross_entropy_with_logits(out[:, 0], y.float()) if outputs == 1 else F.cross_entropy(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    torch.set_num_threads(int(__import__("os").environ.get("T", "1")))
    for name, (_, _, steps) in MODELS.items():
        for bf16 in (False, True, False, True):
            print(f"{name} {'bfloat16' if bf16 else 'float32'} {step_time(name, bf16, steps):.1f} ms/step", flush=True)


if __name__ == "__main__":
    main()

"""Training throughput on in-memory data, with the trainer's own step (for bench/throughput.py)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from convscope.config import NormalizeConfig, TrainConfig
from convscope.datasets.base import ImageSet
from convscope.models import count_params
from convscope.runs.runtime import resolve_device, seed_everything, set_threads, tune_allocator
from convscope.tasks import ClassificationTask
from convscope.training.step import adam, make_train_step
from convscope.training.tensors import ShuffledBatches, TensorImages


def measure_throughput(
    model_name: str, x: np.ndarray, y: np.ndarray, *, batch_size: int, epochs: int,
    channels_last: bool = True, compile: bool = False, num_threads: int | None = None, device: str = "auto",
    allocator: bool = True, precision: str = "float32",
) -> dict[str, Any]:
    """Train ``model_name`` on ``x`` for ``epochs`` and time every epoch.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C), uint8
    y : ndarray, shape (N,), int64
        Class labels; two classes train one sigmoid output, more a softmax.

    Returns
    -------
    dict
        ``framework``, ``torch``, ``model``, ``batch_size``, ``n_images``, ``epoch_seconds``,
        ``images_per_s`` (``n_images`` / the median seconds of the epochs after the first), ``params``,
        ``threads``, ``channels_last``, ``compile``, ``allocator``, ``precision``, ``device``.
    """
    from convscope.models import create_model

    seed_everything(0)
    threads = set_threads(num_threads)
    dev = resolve_device(device)
    if allocator and dev.type == "cpu":
        tune_allocator()
    names = tuple(str(k) for k in range(int(y.max()) + 1))
    task = ClassificationTask(names if len(names) > 1 else ("0", "1"))
    h, w, c = x.shape[1:]
    model = create_model(model_name, in_channels=c, num_classes=task.num_outputs, input_size=(h, w)).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    data = TensorImages.from_set(ImageSet(x, y.astype(np.int64), task.class_names, ("",) * len(y)),
                                 NormalizeConfig(), dev)
    cfg = TrainConfig(batch_size=batch_size, epochs=epochs, channels_last=channels_last, compile=compile,
                      precision=precision)
    optimizer = adam(model.parameters(), cfg.learning_rate, dev)
    forward = torch.compile(model) if compile else model
    step = make_train_step(forward, model, task, optimizer, None, cfg)
    batches = ShuffledBatches(len(y), batch_size, seed=0)
    seconds = []
    for epoch in range(1, epochs + 1):
        batches.set_epoch(epoch)
        start = time.perf_counter()
        for index in batches:
            xb, yb = data.batch(index, channels_last=channels_last)
            loss, _, _ = step(xb, yb)
        float(loss)  # wait for the device
        seconds.append(time.perf_counter() - start)
    rest = seconds[1:] or seconds
    trainable, _ = count_params(model)
    return {
        "framework": "convscope", "torch": torch.__version__, "model": model_name, "batch_size": batch_size,
        "n_images": len(y), "epoch_seconds": seconds, "images_per_s": len(y) / float(np.median(rest)),
        "params": trainable, "threads": threads, "channels_last": channels_last, "compile": compile,
        "allocator": allocator, "precision": precision, "device": str(dev),
    }

"""One training step, phase by phase: batch, augmentation, targets, forward, backward, Adam, epoch sums.

:func:`make_train_step` and :func:`make_fit_step` are what :func:`convscope.training.fit.fit` runs for every batch;
given a :class:`PhaseTimer` they also add up the wall time of each phase (``bench/profile_train.py``), at no cost
otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol

import torch
from torch import nn

from convscope.config import TrainConfig
from convscope.tasks import Task

#: The phases of a step, in the order they run; ``optimizer`` includes clearing the gradients.
PHASES = ("data", "augment", "targets", "forward", "backward", "optimizer", "bookkeeping")

#: Devices whose Adam has a fused kernel (one pass over each parameter instead of a dozen elementwise ops).
FUSED_ADAM_DEVICES = ("cpu", "cuda")

Phase = Callable[[str], AbstractContextManager[Any]]


class TrainData(Protocol):
    """Batches by sample index: :class:`~convscope.training.tensors.TensorImages`,
    :class:`~convscope.training.patches.PatchSampler`, :class:`~convscope.training.patches.PatchGrid`."""

    def __len__(self) -> int: ...

    def batch(self, index: torch.Tensor, *, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]: ...


class PhaseTimer:
    """Wall-clock seconds spent in each of :data:`PHASES`, added up over steps.

    On a CUDA device the device is synchronised at the end of every phase, so its kernels count where they are
    queued (which slows the steps down: for profiling only). CPU operations are synchronous already.
    """

    def __init__(self, device: torch.device | None = None) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._sync = device is not None and device.type == "cuda"

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the ``with`` block as phase ``name`` (one of :data:`PHASES`)."""
        if name not in self.seconds:
            raise ValueError(f"unknown phase {name!r}; one of {', '.join(PHASES)}")
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._sync:
                torch.cuda.synchronize()
            self.seconds[name] += time.perf_counter() - start

    def reset(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)


def _untimed(_name: str) -> AbstractContextManager[None]:
    return nullcontext()


def adam(params: Iterable[nn.Parameter], lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with PyTorch's defaults (betas 0.9 / 0.999, eps 1e-8, no weight decay), fused where the device has the
    kernel: the same update, computed in one pass per parameter tensor (on a CPU 4-5x faster than the default
    per-parameter loop, which matters for small models whose step is mostly optimiser)."""
    return torch.optim.Adam(params, lr=lr, fused=True if device.type in FUSED_ADAM_DEVICES else None)


def autocast(precision: str, device: torch.device) -> AbstractContextManager[Any]:
    """The context a training forward pass runs in: nothing for ``"float32"``; for ``"bfloat16"``
    :func:`torch.autocast` to bfloat16 on ``device`` (convolutions and dense layers in bfloat16, the float32 weights
    cast on the fly; the autograd graph keeps their gradients in float32)."""
    if precision == "float32":
        return nullcontext()
    if precision != "bfloat16":
        raise ValueError(f"unknown precision {precision!r}; float32 or bfloat16")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def weight_penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor | None:
    """``l1 * sum|w| + l2 * sum w**2`` over trainable conv/dense kernels (not biases or norms)."""
    if not (l1 or l2):
        return None
    kernels = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    penalty = sum(l1 * p.abs().sum() + l2 * p.pow(2).sum() for p in kernels)
    return penalty  # type: ignore[return-value]


def make_train_step(
    forward: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, task: Task,
    optimizer: torch.optim.Optimizer, augment: nn.Module | None, cfg: TrainConfig, *, timer: PhaseTimer | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """One optimisation step on a normalised batch: augment, forward, loss (+ L1/L2), backward, Adam.

    The returned function takes ``x`` (B, C, H, W) float32 and ``y`` (B,) or (B, H, W) int64 or (B, K, H, W)
    float32 target fields and returns the detached task loss (without the penalty), the logits and the targets
    they answer (augmented together with the images for segmentation, then encoded by ``task.encode``).
    ``forward`` may be a compiled ``model``. ``cfg.precision`` ``"bfloat16"`` runs the forward pass under
    :func:`autocast`; the logits are returned (and the loss computed) in float32. With ``timer`` the phases
    ``augment`` ... ``optimizer`` are timed.
    """
    phase = timer.phase if timer is not None else _untimed
    device = next(model.parameters()).device

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        model.train()
        with phase("augment"):
            if augment is not None and y.ndim == 3:  # segmentation: image and class map move together
                x, mask = augment(x, y[:, None].float())
                y = mask[:, 0].round().long()
            elif augment is not None and y.ndim == 4:  # cached target fields (flows: labels, potential) move along
                x, y = augment(x, y)
            elif augment is not None:
                x = augment(x)
        with phase("targets"):
            y = task.encode(y)
        with phase("forward"):
            with autocast(cfg.precision, device):
                logits = forward(x)
            logits = logits.float()
            loss = task.loss(logits, y)
            penalty = weight_penalty(model, cfg.l1, cfg.l2)
        with phase("optimizer"):
            optimizer.zero_grad(set_to_none=True)
        with phase("backward"):
            (loss + penalty if penalty is not None else loss).backward()
        with phase("optimizer"):
            optimizer.step()
        return loss.detach(), logits.detach(), y

    return step


def add_batch_stats(totals: dict[str, Any], task: Task, loss: torch.Tensor, logits: torch.Tensor,
                    y: torch.Tensor) -> None:
    """Add one batch's loss sum, sample count and :meth:`Task.batch_stats` to the epoch's ``totals`` (0-d tensors,
    no device sync; ``totals["n"]`` an int)."""
    with torch.no_grad():
        for key, value in {"loss": loss * len(y), **task.batch_stats(logits, y)}.items():
            totals[key] = totals[key] + value if key in totals else value
        totals["n"] = totals.get("n", 0) + len(y)


def make_fit_step(
    data: TrainData, train_step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]], task: Task,
    totals: dict[str, Any], *, channels_last: bool, timer: PhaseTimer | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The fit loop's step over sample indices (B,) int64: the batch from ``data``, ``train_step`` on it, its sums
    added to ``totals``; returns the detached loss. With ``timer`` the ``data`` and ``bookkeeping`` phases are
    timed (give ``train_step`` the same timer for the others)."""
    phase = timer.phase if timer is not None else _untimed

    def run(index: torch.Tensor) -> torch.Tensor:
        with phase("data"):
            x, y = data.batch(index, channels_last=channels_last)
        loss, logits, y = train_step(x, y)
        with phase("bookkeeping"):
            add_batch_stats(totals, task, loss, logits, y)
        return loss

    return run

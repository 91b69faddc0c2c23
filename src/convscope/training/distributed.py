"""Training on several processes with DistributedDataParallel (torch.distributed): gloo on the CPU, nccl on GPUs.

Every process (a *rank*) builds the same model from the same seed and trains on its own share of every epoch, as
torch's DistributedSampler shares it: every ``world_size``-th item of the epoch's shuffled images or random patches
(:class:`convscope.training.tensors.ShuffledBatches`), so the ranks see different patches; each rank augments with its
own seed ``(seed, epoch, rank)``. DDP averages the gradients, so the parameters stay equal on every rank; the epoch's
training loss and metrics are summed over the ranks. Rank 0 alone validates (and tells the others the result, so early
stopping, the learning-rate schedule and the time limit decide the same everywhere) and writes the run directory:
config, history, weights, checkpoints, ``distributed.json`` (the ranks and a digest of each rank's final parameters)
and, after training, metrics and the report.

Two ways to start:

* ``convscope train RECIPE --out RUN --nproc N`` (:func:`launch`): N processes on this machine (spawned), talking
  over a free local port;
* ``torchrun --nproc-per-node N --no-python convscope train RECIPE --out RUN`` (or several nodes): torchrun's
  ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` are read
  (:func:`from_environment`).
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from convscope.errors import ConvscopeError
from convscope.io.atomic import write_json

#: The file rank 0 writes into the run directory after distributed training.
REPORT = "distributed.json"


@dataclass(frozen=True)
class Context:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that validates, logs and writes."""
        return self.rank == 0


def context() -> Context:
    """The current process group's context, or a single process's."""
    if not (dist.is_available() and dist.is_initialized()):
        return Context()
    return Context(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def from_environment() -> bool:
    """Whether this process was started by ``torchrun`` (or another launcher setting ``RANK`` and ``WORLD_SIZE``)
    as one of several."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def main_process() -> bool:
    """False in every process but rank 0 of a distributed run, also once its process group is gone (torchrun's
    ``RANK``)."""
    return context().is_main and os.environ.get("RANK", "0") == "0"


def backend(device: torch.device) -> str:
    """``nccl`` for CUDA, else ``gloo``."""
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device: torch.device) -> torch.device:
    """The device of this rank: ``cuda:LOCAL_RANK`` for CUDA, else ``device``."""
    if device.type == "cuda" and context().active:
        torch.cuda.set_device(context().local_rank)
        return torch.device("cuda", context().local_rank)
    return device


@contextmanager
def process_group(device_type: str = "cpu") -> Iterator[Context]:
    """Join the process group described by the environment (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``,
    ``WORLD_SIZE``) for the block; leave it after."""
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    try:
        yield context()
    finally:
        dist.destroy_process_group()


def launch(worker: Callable[..., Any], nproc: int, args: tuple[Any, ...], *, device_type: str = "cpu") -> None:
    """Run ``worker(*args)`` in ``nproc`` new processes on this machine, joined in one process group.

    ``worker`` must be importable (a module-level function). A :class:`ConvscopeError` in a rank is raised here
    with its message.
    """
    if nproc < 1:
        raise ConvscopeError(f"--nproc {nproc}: give at least 1 process")
    if device_type == "cuda" and nproc > torch.cuda.device_count():
        raise ConvscopeError(f"--nproc {nproc}: only {torch.cuda.device_count()} GPUs here; one process per GPU")
    port = _free_port()
    try:
        mp.start_processes(_entry, args=(worker, nproc, port, device_type, args), nprocs=nproc, join=True,
                           start_method="spawn")
    except mp.ProcessRaisedException as err:
        last = str(err).strip().splitlines()[-1]
        if last.startswith("convscope.errors.ConvscopeError: "):
            raise ConvscopeError(last.removeprefix("convscope.errors.ConvscopeError: ")) from None
        raise


def _entry(rank: int, worker: Callable[..., Any], nproc: int, port: int, device_type: str,
           args: tuple[Any, ...]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(nproc),
                      LOCAL_RANK=str(rank))
    with process_group(device_type):
        worker(*args)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when several ranks train (rank 0's parameters and buffers are
    broadcast to all first), else ``model``."""
    if not context().active:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sum_over_ranks(totals: dict[str, Any]) -> dict[str, Any]:
    """The per-rank sums of an epoch (tensors or numbers), summed over all ranks."""
    if not context().active or not totals:
        return totals
    keys = sorted(totals)
    values = torch.tensor([float(totals[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    return {k: (int(v) if isinstance(totals[k], int) else float(v)) for k, v in zip(keys, values.tolist(),
                                                                                    strict=True)}


def from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object)."""
    if not context().active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if context().active:
        dist.barrier()


def reseed(seed: int, epoch: int) -> None:
    """Seed torch's generator (augmentation) with ``(seed, epoch, rank)``, so that ranks augment differently
    and a resumed run augments as an uninterrupted one."""
    if context().active:
        torch.manual_seed(int(np.random.SeedSequence([seed, epoch, context().rank]).generate_state(1)[0]))


def threads_per_rank() -> int | None:
    """CPU threads for each of the ranks on this machine (they share its cores), or None for one process."""
    ctx = context()
    if not ctx.active:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size)))


def parameter_digest(model: nn.Module) -> str:
    """sha256 of the model's parameters and buffers (names and bytes)."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(value.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_report(run_path: Path, model: nn.Module, device: torch.device) -> None:
    """Gather every rank's :func:`parameter_digest` and let rank 0 write them to ``RUN/distributed.json`` (with the
    world size and backend); a ``RuntimeError`` when the ranks' parameters differ."""
    ctx = context()
    if not ctx.active:
        return
    digests: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(digests, parameter_digest(model))
    if ctx.is_main:
        write_json(run_path / REPORT, {"world_size": ctx.world_size, "backend": backend(device),
                                       "parameter_digests": digests, "in_sync": len(set(digests)) == 1})
    if len(set(digests)) != 1:
        raise RuntimeError(f"the ranks' parameters differ after training: {digests}")

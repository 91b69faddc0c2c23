"""Device, threads and seeds: the environment a run executes in."""

from __future__ import annotations

import os
import platform
import random
from datetime import UTC, datetime
from importlib import metadata

import numpy as np
import torch

from convscope.errors import ConvscopeError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; other names are checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConvscopeError(f"train.device: unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConvscopeError(f"train.device={name}: no CUDA GPU here; use train.device=auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConvscopeError(f"train.device={name}: MPS is not available here; use train.device=auto or cpu")
    return device


def bfloat16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions and matmuls in hardware: a CPU with AVX-512 BF16 or AMX
    (as oneDNN reports it), a CUDA GPU of compute capability 8 or newer, or Apple MPS (assumed: not measured here,
    where only the CPU path was)."""
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "mps"


def set_threads(num_threads: int | None) -> int:
    """Use ``num_threads`` CPU threads (default: every core this process may use). Returns the count."""
    if num_threads:
        n = num_threads
    elif hasattr(os, "sched_getaffinity"):
        n = len(os.sched_getaffinity(0))
    else:
        n = os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds the legacy global generator third-party code may use
    torch.manual_seed(seed)


def provenance() -> dict[str, str]:
    """Versions and time, recorded in ``config.yaml`` beside the resolved recipe."""
    versions = {}
    for pkg in ("convscope", "torch", "numpy", "kornia", "pytorch-ignite"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    versions["python"] = platform.python_version()
    versions["created"] = datetime.now(UTC).isoformat(timespec="seconds")
    return versions


def tune_allocator() -> bool:
    """Keep large freed blocks in the process instead of returning them to the OS (glibc only).

    A CPU training step allocates and frees the same multi-megabyte activation buffers every batch;
    glibc serves blocks above its mmap threshold with fresh ``mmap`` calls whose page faults cost
    system time (here 2.5 s of 50 s for a VGG on 85x85 crops). Raising the mmap and trim thresholds
    makes the allocator reuse them, as jemalloc/tcmalloc would. Process-wide; returns whether it applied.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 31))

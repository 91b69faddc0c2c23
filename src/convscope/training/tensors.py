"""Image sets as tensors in memory, batched without per-sample Python work."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from convscope.config import NormalizeConfig
from convscope.datasets.base import ImageSet
from convscope.transforms.normalize import normalization_bounds


@dataclass(frozen=True)
class TensorImages:
    """An :class:`ImageSet` on a device: raw images, labels and per-image normalisation bounds.

    ``images`` is (N, C, H, W) in its stored integer dtype (uint16 is widened to int32, which torch
    handles everywhere); batches are converted to float32 and normalised on the fly.
    """

    images: torch.Tensor
    labels: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    @classmethod
    def from_set(cls, data: ImageSet, normalize: NormalizeConfig, device: torch.device) -> TensorImages:
        images = data.images
        if images.dtype == np.uint16:
            images = images.astype(np.int32)
        low, high = normalization_bounds(data.images, normalize)
        return cls(
            torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device),
            torch.from_numpy(data.labels.astype(np.int64)).to(device),
            torch.from_numpy(low).to(device),
            torch.from_numpy(high).to(device),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index: torch.Tensor, *, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float32 images (B, C, H, W) and int64 labels (B,) at ``index``."""
        index = index.to(self.images.device)
        low = self.low[index].view(-1, 1, 1, 1)
        high = self.high[index].view(-1, 1, 1, 1)
        x = (self.images[index].float() - low) / (high - low)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[index]


class ShuffledBatches:
    """Index batches over ``n`` items, reshuffled every epoch with a seed derived from (seed, epoch).

    An epoch is ``samples`` indices (default ``n``: one pass): the concatenation of as many permutations of the
    ``n`` items as needed, cut at ``samples``, so a small training set can be given the same number of steps per
    epoch as a large one. The same (seed, epoch) always gives the same order, so a resumed run sees the batches an
    uninterrupted run would. Call :meth:`set_epoch` before iterating. A final batch of one item is dropped (batch
    norm cannot train on it). With ``world`` ranks, rank ``rank`` takes every ``world``-th index of the epoch's
    order (``samples // world`` each, as torch's DistributedSampler): disjoint shares.
    """

    def __init__(self, n: int, batch_size: int, seed: int, *, samples: int | None = None, rank: int = 0,
                 world: int = 1) -> None:
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, 0
        self.samples = n if samples is None else samples
        self.rank, self.world = rank, world

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(self.samples // self.world, self.batch_size)
        return full + (rest > 1)

    def __iter__(self) -> Iterator[torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        passes = -(-self.samples // self.n) if self.n else 0
        order = torch.cat([torch.randperm(self.n, generator=gen) for _ in range(passes)])[: self.samples]
        if self.world > 1:
            order = order[self.rank :: self.world][: self.samples // self.world]
        for i in range(len(self)):
            yield order[i * self.batch_size : (i + 1) * self.batch_size]


def ordered_batches(n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Index batches 0..n-1 in order (for evaluation)."""
    for i in range(math.ceil(n / batch_size)):
        yield torch.arange(i * batch_size, min(n, (i + 1) * batch_size))

"""Segmentation training data: random patches from whole images, and a fixed patch grid for validation.

Images smaller than a patch are padded: class maps by reflection (with their images), instance label images with
background (and their images with 0, the normalised background), since a reflected object would get the id of the
object it mirrors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from convscope.config import NormalizeConfig
from convscope.datasets.segmentation import SegmentationSet
from convscope.transforms.normalize import normalization_bounds


def normalized_images(data: SegmentationSet, cfg: NormalizeConfig, patch: int, *,
                      instances: bool = False) -> list[np.ndarray]:
    """Every image normalised to float32 (C, H, W), padded to at least ``patch`` x ``patch`` (reflected, or
    with 0 for ``instances``)."""
    out = []
    for image in data.images:
        low, high = normalization_bounds(image[None], cfg)
        x = ((image.astype(np.float32) - low[0]) / (high[0] - low[0])).transpose(2, 0, 1)
        out.append(_pad_to(x, patch, reflect=not instances))
    return out


def _pad_to(a: np.ndarray, patch: int, *, reflect: bool = True) -> np.ndarray:
    """Pad the last two axes of ``a`` at the end up to ``patch``: symmetric reflection, or zeros."""
    h, w = a.shape[-2:]
    ph, pw = max(0, patch - h), max(0, patch - w)
    if not (ph or pw):
        return a
    pad = [(0, 0)] * (a.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(a, pad, mode="symmetric") if reflect else np.pad(a, pad)


class PatchSampler:
    """Random ``patch`` x ``patch`` crops, ``samples`` per epoch, drawn anew every epoch (seeded).

    With probability ``foreground_bias`` a crop is centred near a random foreground pixel, otherwise it is
    uniform over the image. Images are chosen in proportion to their area. ``batch`` returns float32
    images (B, C, p, p) and int64 class maps or instance labels (B, p, p) on ``device``, or with ``targets``
    (one (K, H, W) float32 array per image, such as flow potentials) crops of those, (B, K, p, p) float32.
    """

    def __init__(self, data: SegmentationSet, normalize: NormalizeConfig, *, patch: int, samples: int,
                 foreground_bias: float, seed: int, device: torch.device, instances: bool = False,
                 targets: Sequence[np.ndarray] | None = None) -> None:
        self.images = normalized_images(data, normalize, patch, instances=instances)
        self.masks = [_pad_to(m.astype(np.int64), patch, reflect=not instances) for m in data.masks]
        self.targets = None if targets is None else [_pad_to(t, patch, reflect=False) for t in targets]
        self.patch, self.samples, self.bias, self.seed, self.device = patch, samples, foreground_bias, seed, device
        areas = np.array([m.size for m in self.masks], np.float64)
        self.image_p = areas / areas.sum()
        self.foreground = [np.flatnonzero(m.ravel()) for m in self.masks]
        self.set_epoch(0)

    def __len__(self) -> int:
        return self.samples

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's crops: image index and top-left corner per sample."""
        rng = np.random.default_rng([self.seed, epoch])
        which = rng.choice(len(self.images), size=self.samples, p=self.image_p)
        corners = np.empty((self.samples, 2), np.int64)
        for i, k in enumerate(which):
            h, w = self.masks[k].shape
            fg = self.foreground[k]
            if len(fg) and rng.random() < self.bias:
                cy, cx = divmod(int(fg[rng.integers(len(fg))]), w)
                jitter = rng.integers(-self.patch // 4, self.patch // 4 + 1, size=2)
                y0 = int(np.clip(cy - self.patch // 2 + jitter[0], 0, h - self.patch))
                x0 = int(np.clip(cx - self.patch // 2 + jitter[1], 0, w - self.patch))
            else:
                y0, x0 = int(rng.integers(h - self.patch + 1)), int(rng.integers(w - self.patch + 1))
            corners[i] = (y0, x0)
        self.which, self.corners = which, corners

    def batch(self, index: torch.Tensor, *, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.patch
        xs, ys = [], []
        for i in index.tolist():
            k, (y0, x0) = self.which[i], self.corners[i]
            xs.append(self.images[k][:, y0 : y0 + p, x0 : x0 + p])
            source = self.masks[k] if self.targets is None else self.targets[k]
            ys.append(source[..., y0 : y0 + p, x0 : x0 + p])
        x = torch.from_numpy(np.stack(xs)).to(self.device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, torch.from_numpy(np.stack(ys)).to(self.device)


class PatchGrid:
    """Every image cut into ``patch`` x ``patch`` crops that cover it (the last row/column aligned to
    the border, so crops may overlap): a fixed validation set with the :class:`PatchSampler` interface.

    ``targets`` (one (K, H, W) float32 array per image) are cut instead of the masks, as in :class:`PatchSampler`.
    With ``encode`` (a task's target encoder, (B, p, p) int64 or (B, K, p, p) float32 -> targets) the targets are
    encoded once here.
    """

    def __init__(self, data: SegmentationSet, normalize: NormalizeConfig, *, patch: int,
                 device: torch.device, instances: bool = False, targets: Sequence[np.ndarray] | None = None,
                 encode: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        xs, ys = [], []
        images = normalized_images(data, normalize, patch, instances=instances)
        sources = data.masks if targets is None else targets
        for image, source in zip(images, sources, strict=True):
            source = _pad_to(source.astype(np.int64) if targets is None else source, patch, reflect=not instances)
            h, w = source.shape[-2:]
            for y0 in _starts(h, patch):
                for x0 in _starts(w, patch):
                    xs.append(image[:, y0 : y0 + patch, x0 : x0 + patch])
                    ys.append(source[..., y0 : y0 + patch, x0 : x0 + patch])
        self.x = torch.from_numpy(np.stack(xs)).to(device)
        self.y = torch.from_numpy(np.stack(ys)).to(device)
        if encode is not None:
            self.y = torch.cat([encode(self.y[i : i + 64]) for i in range(0, len(self.y), 64)])

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, index: torch.Tensor, *, channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.x[index.to(self.x.device)]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.y[index.to(self.y.device)]


def _starts(size: int, patch: int) -> list[int]:
    starts = list(range(0, size - patch + 1, patch))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts

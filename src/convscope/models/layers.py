"""Building blocks shared by the models."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv_block(
    in_channels: int, out_channels: int, *, padding: int = 0, batch_norm: bool = False
) -> list[nn.Module]:
    """3x3 convolution (+ batch norm) + ReLU. ``padding=0`` is Keras' "valid", ``1`` is "same"."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, 3, padding=padding, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return layers


def dense_stack(
    in_features: int,
    widths: Sequence[int],
    out_features: int,
    *,
    dropouts: Sequence[float] | None = None,
    batch_norm: bool = False,
) -> nn.Sequential:
    """Dense ReLU layers of ``widths`` (each followed by its dropout), then a linear output of logits.

    The output has no activation: the task applies sigmoid/softmax (and the loss works on logits).
    """
    dropouts = list(dropouts) if dropouts is not None else [0.0] * len(widths)
    if len(dropouts) != len(widths):
        raise ValueError(f"{len(widths)} dense layers but {len(dropouts)} dropout rates")
    layers: list[nn.Module] = []
    for width, rate in zip(widths, dropouts, strict=True):
        layers.append(nn.Linear(in_features, width, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU(inplace=True))
        if rate > 0:
            layers.append(nn.Dropout(rate))
        in_features = width
    layers.append(nn.Linear(in_features, out_features))
    return nn.Sequential(*layers)


def flat_features(features: nn.Module, in_channels: int, input_size: tuple[int, int]) -> int:
    """Number of features ``features`` produces for one (C, H, W) input, found by a dry run."""
    was_training = features.training
    features.eval()
    try:
        with torch.no_grad():
            out = features(torch.zeros(1, in_channels, *input_size))
    except RuntimeError:
        out = None
    features.train(was_training)
    if out is None or out.shape[-1] < 1 or out.shape[-2] < 1:
        raise ValueError(f"input size {tuple(input_size)} is too small for this model")
    return int(out.numel())


class Classifier(nn.Module):
    """A convolutional feature extractor followed by a flattening dense head.

    Input ``(N, C, H, W)`` float32, output ``(N, num_classes)`` logits.
    """

    def __init__(self, features: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))

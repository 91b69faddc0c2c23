"""Image classification: one logit (sigmoid + BCE) for two classes, K logits (softmax + CE) for K."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ClassificationTask:
    """What differs for classification: output units, loss, and logits to probabilities.

    Parameters
    ----------
    class_names : tuple of str
        At least two names; index = label.
    """

    class_names: tuple[str, ...]

    name = "classification"

    def __post_init__(self) -> None:
        if len(self.class_names) < 2:
            raise ValueError("classification needs at least two classes")

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    @property
    def num_outputs(self) -> int:
        """Output units of the model's head: 1 for a binary task, else the number of classes."""
        return 1 if self.binary else len(self.class_names)

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """Training targets: the class indices (B,) int64 themselves."""
        return target

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """BCE-with-logits (binary) or cross-entropy; ``logits`` (N, num_outputs), ``labels`` (N,) int64."""
        if self.binary:
            return F.binary_cross_entropy_with_logits(logits[:, 0], labels.to(logits.dtype), reduction=reduction)
        return F.cross_entropy(logits, labels, reduction=reduction)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Class probabilities, shape (N, n_classes), float32; rows sum to 1."""
        if self.binary:
            p = torch.sigmoid(logits[:, 0].float())
            return torch.stack([1 - p, p], dim=1)
        return torch.softmax(logits.float(), dim=1)

    metric_names = ("accuracy",)

    def batch_stats(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Counts of one batch that add up over an epoch: ``{"correct": ...}`` (0-d tensors, no sync)."""
        return {"correct": (self.predict(logits) == labels).sum()}

    def summarize(self, stats: dict[str, float], n: int) -> dict[str, float]:
        """Epoch metrics from summed :meth:`batch_stats` over ``n`` samples: ``{"accuracy": ...}``."""
        return {"accuracy": stats["correct"] / max(n, 1)}

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Predicted class index per row, (N,) int64 (threshold 0.5 for the binary case)."""
        if self.binary:
            return (logits[:, 0] > 0).long()
        return logits.argmax(dim=1)

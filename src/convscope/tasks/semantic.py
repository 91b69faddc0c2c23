"""Semantic segmentation: a class per pixel, judged by Dice and IoU rather than pixel accuracy.

Binary tasks (background + one foreground class) have one output channel (sigmoid); K-class tasks have K
(softmax). Targets are int64 class maps (N, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from convscope.tasks.losses import Loss, make_loss


@dataclass(frozen=True)
class SemanticTask:
    """Output channels, loss, decoding and epoch metrics of semantic segmentation.

    Parameters
    ----------
    class_names : tuple of str
        Class 0 is the background; at least two names.
    loss_name : str
        A loss of :func:`convscope.tasks.losses.make_loss` (binary: ``bce``, ``weighted_bce``, ``dice``,
        ``bce_dice``, ``focal``; multi-class: ``ce_dice``).
    threshold : float
        Foreground probability threshold of a binary task (``p > threshold``), tuned on validation.
    """

    class_names: tuple[str, ...] = ("background", "foreground")
    loss_name: str = "bce_dice"
    threshold: float = 0.5
    _loss: Loss = field(init=False, repr=False, compare=False)

    name = "semantic"
    metric_names = ("dice", "iou", "pixel_accuracy")

    def __post_init__(self) -> None:
        if len(self.class_names) < 2:
            raise ValueError("semantic segmentation needs a background and at least one foreground class")
        if self.binary and self.loss_name == "ce_dice":
            object.__setattr__(self, "loss_name", "bce_dice")
        if not self.binary and self.loss_name != "ce_dice":
            object.__setattr__(self, "loss_name", "ce_dice")
        object.__setattr__(self, "_loss", make_loss(self.loss_name))

    @property
    def binary(self) -> bool:
        return len(self.class_names) == 2

    @property
    def num_outputs(self) -> int:
        return 1 if self.binary else len(self.class_names)

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """Training targets: the class maps (B, H, W) int64 themselves."""
        return target

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits`` (N, outputs, H, W) against the class map ``target`` (N, H, W) int64."""
        if self.binary:
            return self._loss(logits, (target > 0).unsqueeze(1).to(logits.dtype))
        return self._loss(logits, target)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-class probabilities (N, K, H, W) float32."""
        if self.binary:
            p = torch.sigmoid(logits[:, :1].float())
            return torch.cat([1 - p, p], dim=1)
        return torch.softmax(logits.float(), dim=1)

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Class map (N, H, W) int64: ``sigmoid > threshold`` (binary) or the arg-max class."""
        if self.binary:
            return (torch.sigmoid(logits[:, 0].float()) > self.threshold).long()
        return logits.argmax(dim=1)

    def batch_stats(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Pixel counts that add up over batches: ``correct``, ``pixels`` and ``tp_k``/``fp_k``/``fn_k``
        for every foreground class k (0-d tensors, no device sync)."""
        pred = self.predict(logits)
        stats = {"correct": (pred == target).sum(), "pixels": torch.tensor(target.numel(), device=target.device)}
        for k in range(1, len(self.class_names)):
            p, t = pred == k, target == k
            stats[f"tp_{k}"] = (p & t).sum()
            stats[f"fp_{k}"] = (p & ~t).sum()
            stats[f"fn_{k}"] = (~p & t).sum()
        return stats

    def summarize(self, stats: dict[str, float], n: int) -> dict[str, float]:
        """Dice and IoU (pooled over pixels, mean over foreground classes) and pixel accuracy.

        A class absent from both target and prediction scores 1.0 (nothing to find, nothing wrong).
        """
        dice, iou = [], []
        for k in range(1, len(self.class_names)):
            tp, fp, fn = stats[f"tp_{k}"], stats[f"fp_{k}"], stats[f"fn_{k}"]
            dice.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
            iou.append(tp / (tp + fp + fn) if tp + fp + fn else 1.0)
        return {"dice": sum(dice) / len(dice), "iou": sum(iou) / len(iou),
                "pixel_accuracy": stats["correct"] / max(stats["pixels"], 1)}

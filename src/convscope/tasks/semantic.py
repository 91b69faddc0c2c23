"""Semantic segmentation: a class per pixel, judged by Dice and IoU rather than pixel accuracy.

Binary tasks (background + one foreground class) have one output channel (sigmoid); K-class tasks have K
(softmax). Targets are int64 class maps (N, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch

from convscope.metrics.pixel import segmentation_report, tune_threshold
from convscope.tasks.base import ExportedOutput, Kind, SplitResult, select_best_worst
from convscope.tasks.losses import Loss, make_loss

#: Best and worst images of a split shown as error overlays in the report (each).
N_OVERLAYS = 3


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
    kind: ClassVar[Kind] = "semantic"
    metric_names = ("dice", "iou", "pixel_accuracy")
    grid = 1
    tta = False
    section = None

    def __post_init__(self) -> None:
        if len(self.class_names) < 2:
            raise ValueError("semantic segmentation needs a background and at least one foreground class")
        if self.binary and self.loss_name == "ce_dice":
            object.__setattr__(self, "loss_name", "bce_dice")
        if not self.binary and self.loss_name != "ce_dice":
            object.__setattr__(self, "loss_name", "ce_dice")
        object.__setattr__(self, "_loss", make_loss(self.loss_name))

    @classmethod
    def from_recipe(cls, recipe: Any, class_names: Sequence[str]) -> SemanticTask:
        """The task of a recipe (:class:`convscope.config.RunConfig`; the loss is ``train.loss``)."""
        return cls(tuple(class_names), loss_name=recipe.train.loss)

    @classmethod
    def from_model_config(cls, config: dict[str, Any]) -> SemanticTask:
        """The task of a saved run (``model/config.json``), with its tuned threshold."""
        return cls(tuple(config["class_names"]), loss_name=config.get("loss", "bce_dice"),
                   threshold=config.get("threshold", 0.5))

    @property
    def model_options(self) -> dict[str, Any]:
        return {}

    @property
    def thresholds(self) -> dict[str, float]:
        """``{"prob": threshold}`` of a binary task (foreground probability); ``{}`` for K classes (arg-max)."""
        return {"prob": self.threshold} if self.binary else {}

    def with_thresholds(self, thresholds: dict[str, float]) -> SemanticTask:
        return replace(self, threshold=float(thresholds.get("prob", self.threshold)))

    def saved(self) -> dict[str, Any]:
        """The threshold and the loss, for ``model/config.json``."""
        return {"threshold": self.threshold, "loss": self.loss_name}

    def reported(self) -> dict[str, Any]:
        """The run-level entries of ``metrics.json``: the threshold used."""
        return {"threshold": self.threshold}

    def describe(self) -> str:
        return f"loss {self.loss_name}"

    def targets(self, labels: np.ndarray) -> None:
        return None

    def unflip(self, output: np.ndarray, axis: int) -> np.ndarray:
        """Class scores move with the pixels: flipped back."""
        return np.flip(output, axis).copy()

    def exported_outputs(self) -> tuple[ExportedOutput, ...]:
        """One tensor: the foreground probability (binary) or the class probabilities per pixel."""
        if self.binary:
            how = f"convscope's mask is probability > {self.threshold:.3g} (tuned on validation)"
            return (ExportedOutput("probability", self.class_names[1:], 0, 1, "sigmoid",
                                   description=f"{self.class_names[1]} probability per pixel; {how}"),)
        return (ExportedOutput("probabilities", self.class_names, 0, self.num_outputs, "softmax",
                               description="class probabilities per pixel; convscope's mask is the most probable "
                               "class"),)

    def split_output(self, output: np.ndarray) -> np.ndarray:
        """The logits (num_outputs, H, W) float32 of one image."""
        return np.asarray(output, np.float32)

    def decode(self, pred: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Class map (H, W) uint8 from logits (num_outputs, H, W), without building probability maps:
        ``sigmoid(z) > t`` is ``z > log(t / (1 - t))``."""
        if self.binary:
            t = min(max(self.threshold, 1e-6), 1 - 1e-6)
            return (pred[0] > np.log(t / (1 - t))).astype(np.uint8)
        return pred.argmax(0).astype(np.uint8)

    def tune(self, preds: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> tuple[dict[str, float], float]:
        """The foreground threshold of a binary task with the best Dice on the validation images; K classes
        have none (``{}``, NaN)."""
        if not self.binary:
            return {}, float("nan")
        best, scores = tune_threshold([1 / (1 + np.exp(-z[0])) for z in preds], list(truths), metric="dice")
        return {"prob": float(best)}, float(np.max(scores))

    def evaluate_split(self, images: Sequence[np.ndarray], truths: Sequence[np.ndarray], preds: Sequence[np.ndarray],
                       names: Sequence[str], results: Sequence[np.ndarray] | None = None) -> SplitResult:
        """Micro/macro/per-image pixel metrics (each per-image entry also has the fraction of foreground pixels
        in the true mask and in the prediction), and the lowest- and highest-Dice images as error overlays."""
        masks = list(results) if results is not None else [self.decode(z) for z in preds]
        metrics = segmentation_report(list(truths), masks, class_names=self.class_names,
                                      image_names=list(names)).to_dict()
        for row, mask, pred in zip(metrics["per_image"], truths, masks, strict=True):
            row["true_foreground_fraction"] = float(np.count_nonzero(mask) / mask.size)
            row["predicted_foreground_fraction"] = float(np.count_nonzero(pred) / pred.size)
        per_image = metrics["per_image"]
        worst, best = select_best_worst([row["dice"] for row in per_image], N_OVERLAYS)
        examples = [
            {"image": images[i], "true_mask": truths[i], "pred_mask": masks[i], "name": per_image[i]["name"],
             "dice": per_image[i]["dice"], "iou": per_image[i]["iou"], "group": group}
            for group, indices in (("worst", worst), ("best", best)) for i in indices]
        summary = (f"dice {metrics['dice']:.4f}  iou {metrics['iou']:.4f}  pixel accuracy "
                   f"{metrics['pixel_accuracy']:.4f} (all-background: {metrics['all_background_accuracy']:.4f}; "
                   f"{len(masks)} images)")
        return SplitResult(self.kind, metrics, examples, summary)

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

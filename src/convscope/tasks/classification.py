"""Image classification: one logit (sigmoid + BCE) for two classes, K logits (softmax + CE) for K."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from convscope.metrics import classification_report
from convscope.tasks.base import ExportedOutput, Kind, SplitResult

#: Misclassified images shown in the report (the most confident mistakes).
N_EXAMPLES = 24


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
    kind: ClassVar[Kind] = "classification"
    grid = 1
    tta = False
    section = None

    @property
    def model_options(self) -> dict[str, Any]:
        """None: the head's size comes from :attr:`num_outputs`."""
        return {}

    @property
    def thresholds(self) -> dict[str, float]:
        """None: the class is the most probable one."""
        return {}

    def __post_init__(self) -> None:
        if len(self.class_names) < 2:
            raise ValueError("classification needs at least two classes")

    @classmethod
    def from_recipe(cls, recipe: Any, class_names: Sequence[str]) -> ClassificationTask:
        """The task of a recipe (:class:`convscope.config.RunConfig`) for data with ``class_names``."""
        return cls(tuple(class_names))

    @classmethod
    def from_model_config(cls, config: dict[str, Any]) -> ClassificationTask:
        """The task of a saved run (``model/config.json``)."""
        return cls(tuple(config["class_names"]))

    def with_thresholds(self, thresholds: dict[str, float]) -> ClassificationTask:
        """The task itself: a classifier has no decoding thresholds."""
        return self

    def saved(self) -> dict[str, Any]:
        """Nothing besides the class names, which every run saves."""
        return {}

    def reported(self) -> dict[str, Any]:
        """No run-level entries in ``metrics.json``."""
        return {}

    def describe(self) -> str:
        return f"{len(self.class_names)} classes"

    def targets(self, labels: np.ndarray) -> None:
        return None

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

    def unflip(self, output: np.ndarray, axis: int) -> np.ndarray:
        """A class does not move when the image is flipped."""
        return output

    def exported_outputs(self) -> tuple[ExportedOutput, ...]:
        """One tensor: the class probabilities (n_classes,), as :meth:`decode` gives them."""
        return (ExportedOutput("probabilities", self.class_names, 0, self.num_outputs,
                               "sigmoid_pair" if self.binary else "softmax",
                               description="class probabilities (they sum to 1); the class is the most probable one"),)

    def split_output(self, output: np.ndarray) -> np.ndarray:
        """The logits (num_outputs,) float32 of one image: the prediction keeps them (the loss needs them)."""
        return np.asarray(output, np.float32)

    def decode(self, pred: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
        """Class probabilities (n_classes,) float32 of one image's logits."""
        return self.probabilities(torch.from_numpy(np.asarray(pred, np.float32)[None]))[0].numpy()

    def tune(self, preds: Sequence[np.ndarray], truths: Sequence[int]) -> tuple[dict[str, float], float]:
        """Nothing to tune: ``({}, accuracy)``."""
        probs = np.stack([self.decode(p) for p in preds])
        return {}, float(np.mean(probs.argmax(1) == np.asarray(truths)))

    def evaluate_split(self, images: Sequence[np.ndarray], truths: Sequence[int], preds: Sequence[np.ndarray],
                       names: Sequence[str], results: Sequence[np.ndarray] | None = None) -> SplitResult:
        """Accuracy, loss, per-class precision / recall / F1 and the confusion matrix of a split, and its most
        confident mistakes (``image`` (H, W, C), ``path``, ``true``, ``pred``, ``probability``): all of them up to
        ``N_EXAMPLES`` + a quarter, else the ``N_EXAMPLES`` most confident."""
        logits = torch.from_numpy(np.stack(preds).astype(np.float32))
        labels = np.asarray(truths, np.int64)
        probs = self.probabilities(logits).numpy()
        report = classification_report(labels, probs.argmax(1), self.class_names)
        metrics: dict[str, Any] = {"accuracy": report.accuracy,
                                   "loss": self.loss(logits, torch.from_numpy(labels)).item(),
                                   "n_images": len(labels)}
        metrics.update({k: v for k, v in report.to_dict().items() if k not in metrics})
        summary = f"accuracy {metrics['accuracy']:.4f}  loss {metrics['loss']:.4f}  ({len(labels)} images)"
        return SplitResult(self.kind, metrics, self._mistakes(images, labels, probs, names), summary)

    def _mistakes(self, images: Sequence[np.ndarray], labels: np.ndarray, probs: np.ndarray, names: Sequence[str],
                  limit: int = N_EXAMPLES) -> list[dict[str, Any]]:
        pred = probs.argmax(1)
        wrong = np.flatnonzero(pred != labels)
        wrong = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")]
        if len(wrong) > limit + limit // 4:  # a few more than the limit are all shown: never "24 of 25"
            wrong = wrong[:limit]
        return [{"image": images[i], "path": names[i], "true": self.class_names[labels[i]],
                 "pred": self.class_names[pred[i]], "probability": float(probs[i, pred[i]])} for i in wrong]

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Predicted class index per row, (N,) int64 (threshold 0.5 for the binary case)."""
        if self.binary:
            return (logits[:, 0] > 0).long()
        return logits.argmax(dim=1)

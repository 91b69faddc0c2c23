"""Classification metrics from integer labels: confusion matrix, accuracy, per-class and macro scores.

Plain numpy, importable without torch. Conventions (the same as scikit-learn with ``zero_division=0``):

- The confusion matrix has rows = true class, columns = predicted class.
- **precision** of class ``k`` = correct predictions of ``k`` / all predictions of ``k``; a class that is
  never predicted has precision ``0.0`` (not NaN).
- **recall** of class ``k`` = correct predictions of ``k`` / all images whose true class is ``k``; a class
  with no images (support 0) has recall ``0.0``.
- **F1** = ``2 * precision * recall / (precision + recall)``, ``0.0`` when both are 0.
- **macro average** = the unweighted mean over the classes that occur, i.e. that are the true class or the
  predicted class of at least one image (scikit-learn's default label set). A class absent from both
  ``y_true`` and ``y_pred`` carries no evidence and is left out rather than counted as 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "ClassScores",
    "ClassificationReport",
    "classification_report",
    "confusion_matrix",
    "report_from_confusion",
]


def _as_labels(values: ArrayLike, name: str, n_classes: int) -> np.ndarray:
    """Validate integer class indices in ``[0, n_classes)`` and return them as a 1-D int64 array."""
    arr = np.asarray(values)
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.reshape(-1).astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(
            f"{name} holds class indices outside [0, {n_classes}): min {arr.min()}, max {arr.max()}"
        )
    return arr


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> np.ndarray:
    """Count images per (true class, predicted class).

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (N,)
        True and predicted class indices in ``[0, n_classes)``; any shape is flattened, both must have
        the same number of elements.
    n_classes : int
        The number of classes ``K`` (>= 1).

    Returns
    -------
    ndarray of int64, shape (K, K)
        ``matrix[i, j]`` = the number of images of true class ``i`` predicted as class ``j``.
    """
    if int(n_classes) < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    k = int(n_classes)
    t = _as_labels(y_true, "y_true", k)
    p = _as_labels(y_pred, "y_pred", k)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    counts = np.bincount(t * k + p, minlength=k * k)
    return counts.reshape(k, k).astype(np.int64)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` element-wise as float64, 0.0 where ``den == 0``."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den != 0)
    return out


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall, F1 (floats in [0, 1]) and support (number of true images) of one class."""

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support}


@dataclass(frozen=True, eq=False)
class ClassificationReport:
    """The scores of one split (compare ``to_dict()`` results, not reports: ``==`` is identity).

    Attributes
    ----------
    class_names : tuple of str
        The ``K`` class names, in class-index order.
    confusion : ndarray of int64, shape (K, K)
        Rows = true class, columns = predicted class.
    accuracy : float
        Fraction of images whose predicted class is the true class.
    n_images : int
        Number of images scored.
    per_class : tuple of ClassScores
        One entry per class, in class-index order.
    macro_precision, macro_recall, macro_f1 : float
        Unweighted means over the classes that occur (see the module docstring).
    """

    class_names: tuple[str, ...]
    confusion: np.ndarray
    accuracy: float
    n_images: int
    per_class: tuple[ClassScores, ...]
    macro_precision: float
    macro_recall: float
    macro_f1: float

    def scores(self, name: str) -> ClassScores:
        """The scores of the class called ``name``."""
        return self.per_class[self.class_names.index(name)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready split metrics (the caller adds ``loss``).

        Returns
        -------
        dict
            ``{"accuracy", "n_images", "per_class": {name: {"precision", "recall", "f1", "support"}},
            "macro_avg": {"precision", "recall", "f1"}, "confusion_matrix": [[int]]}``.
        """
        return {
            "accuracy": self.accuracy,
            "n_images": self.n_images,
            "per_class": {n: s.to_dict() for n, s in zip(self.class_names, self.per_class, strict=True)},
            "macro_avg": {
                "precision": self.macro_precision,
                "recall": self.macro_recall,
                "f1": self.macro_f1,
            },
            "confusion_matrix": self.confusion.tolist(),
        }


def report_from_confusion(matrix: ArrayLike, class_names: Sequence[str]) -> ClassificationReport:
    """Scores from a confusion matrix (rows = true, columns = predicted), int array of shape (K, K)."""
    cm = np.asarray(matrix)
    names = tuple(str(n) for n in class_names)
    k = len(names)
    if cm.shape != (k, k):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {k} class names")
    if len(set(names)) != k:
        raise ValueError(f"class names must be unique, got {list(names)}")
    cm = cm.astype(np.int64)  # a copy, made read-only: the report is immutable
    cm.flags.writeable = False
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    n = int(cm.sum())
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted > 0)
    per_class = tuple(
        ClassScores(float(p), float(r), float(f), int(s))
        for p, r, f, s in zip(precision, recall, f1, support, strict=True)
    )

    def macro(values: np.ndarray) -> float:
        return float(values[present].mean()) if present.any() else 0.0

    return ClassificationReport(
        class_names=names,
        confusion=cm,
        accuracy=float(tp.sum() / n) if n else 0.0,
        n_images=n,
        per_class=per_class,
        macro_precision=macro(precision),
        macro_recall=macro(recall),
        macro_f1=macro(f1),
    )


def classification_report(
    y_true: ArrayLike, y_pred: ArrayLike, class_names: Sequence[str]
) -> ClassificationReport:
    """Accuracy, per-class precision/recall/F1/support, macro averages and the confusion matrix.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (N,)
        True and predicted class indices in ``[0, K)``.
    class_names : sequence of str, length K
        Unique class names in class-index order.

    Returns
    -------
    ClassificationReport
        Precision of a class never predicted and recall of a class without images are 0.0 (never NaN);
        with no images at all every score is 0.0.
    """
    return report_from_confusion(confusion_matrix(y_true, y_pred, len(class_names)), class_names)

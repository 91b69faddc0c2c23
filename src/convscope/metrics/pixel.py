"""Pixel metrics for semantic segmentation: accuracy, IoU (Jaccard), Dice, precision and recall per class.

Plain numpy, importable without torch. Label maps are integer (or bool) arrays of class indices in
``[0, K)``, any shape (typically (H, W)); class 0 is background. Conventions:

- Per class ``k``, with ``tp``, ``fp``, ``fn`` its true-positive, false-positive and false-negative pixels:
  ``IoU = tp / (tp + fp + fn)``, ``Dice = 2 tp / (2 tp + fp + fn)``, ``precision = tp / (tp + fp)``,
  ``recall = tp / (tp + fn)``. Pixel accuracy = correctly labelled pixels / all pixels.
- **Empty classes, never NaN**: a score whose denominator is 0 is **1.0 when the class makes no error**
  (``fp == fn == 0``: the class is absent from both truth and prediction, nothing to find and nothing
  wrongly found) and **0.0 otherwise** (e.g. precision of a class never predicted but present: 0.0; recall
  of a class absent from the truth but predicted: 0.0). So an image without foreground predicted without
  foreground has foreground IoU = Dice = 1.0.
- The headline ``dice``, ``iou``, ``precision`` and ``recall`` of a :class:`PixelScores` are the mean over
  the non-background classes 1..K-1 (for a binary task: the foreground class).
- **micro** = scores of the pooled counts of all images (large images weigh more); **macro** = the mean of
  the per-image scores (every image weighs the same; images without foreground that are predicted empty
  count 1.0).
- A probability map becomes a mask with :func:`binarize`: foreground where ``probability > threshold``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "ClassPixelScores",
    "PixelScores",
    "SegmentationReport",
    "all_background_accuracy",
    "average_scores",
    "binarize",
    "pixel_confusion",
    "pixel_scores",
    "scores_from_confusion",
    "segmentation_report",
    "tune_threshold",
]

BINARY_CLASSES = ("background", "foreground")
THRESHOLD_METRICS = ("dice", "iou", "pixel_accuracy")
_CHUNK = 1 << 22  # pixels per bincount, bounding temporary memory for large images


def _as_label_map(values: ArrayLike, name: str, num_classes: int) -> np.ndarray:
    """Validate a label map of integer class indices (or bools) in ``[0, num_classes)``; no copy."""
    arr = np.asarray(values)
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices (or bools), got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"{name} holds classes outside [0, {num_classes}): min {arr.min()}, max {arr.max()}")
    return arr


def pixel_confusion(y_true: ArrayLike, y_pred: ArrayLike, *, num_classes: int = 2) -> np.ndarray:
    """Count pixels per (true class, predicted class).

    Parameters
    ----------
    y_true, y_pred : array_like of int or bool, same shape (e.g. (H, W))
        Class indices in ``[0, num_classes)``.
    num_classes : int
        K >= 2.

    Returns
    -------
    ndarray of int64, shape (K, K)
        ``matrix[i, j]`` = pixels of true class ``i`` predicted as ``j``.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    t = _as_label_map(y_true, "y_true", num_classes)
    p = _as_label_map(y_pred, "y_pred", num_classes)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    t, p = t.reshape(-1), p.reshape(-1)
    counts = np.zeros(num_classes * num_classes, dtype=np.int64)
    for start in range(0, t.size, _CHUNK):
        idx = t[start : start + _CHUNK].astype(np.int64) * num_classes + p[start : start + _CHUNK]
        counts += np.bincount(idx, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def _ratio(num: np.ndarray, den: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """``num / den`` as float64; where ``den == 0``: 1.0 if ``errors == 0`` else 0.0 (never NaN)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.where(np.asarray(errors) == 0, 1.0, 0.0)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _scores_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, np.ndarray]:
    """IoU, Dice, precision, recall from per-class (or per-threshold) counts, with the empty-class rule."""
    errors = fp + fn
    return {
        "iou": _ratio(tp, tp + fp + fn, errors),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, errors),
        "precision": _ratio(tp, tp + fp, errors),
        "recall": _ratio(tp, tp + fn, errors),
    }


@dataclass(frozen=True)
class ClassPixelScores:
    """Scores of one class (floats in [0, 1]) and its support (true pixels of the class)."""

    iou: float
    dice: float
    precision: float
    recall: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        return {"iou": self.iou, "dice": self.dice, "precision": self.precision, "recall": self.recall,
                "support": self.support}


@dataclass(frozen=True)
class PixelScores:
    """Pixel scores of one image, or of many images pooled (micro) or averaged (macro).

    Attributes
    ----------
    class_names : tuple of str
        K names, class-index order; index 0 is background.
    pixel_accuracy : float
        Fraction of pixels labelled correctly.
    per_class : tuple of ClassPixelScores
        One per class.
    n_pixels : int
        Pixels scored (summed over images for aggregates).
    """

    class_names: tuple[str, ...]
    pixel_accuracy: float
    per_class: tuple[ClassPixelScores, ...]
    n_pixels: int

    def _foreground_mean(self, key: str) -> float:
        return float(np.mean([getattr(s, key) for s in self.per_class[1:]]))

    @property
    def dice(self) -> float:
        """Mean Dice over the non-background classes (binary: the foreground Dice)."""
        return self._foreground_mean("dice")

    @property
    def iou(self) -> float:
        """Mean IoU over the non-background classes."""
        return self._foreground_mean("iou")

    @property
    def precision(self) -> float:
        """Mean precision over the non-background classes."""
        return self._foreground_mean("precision")

    @property
    def recall(self) -> float:
        """Mean recall over the non-background classes."""
        return self._foreground_mean("recall")

    def scores(self, name: str) -> ClassPixelScores:
        """The scores of the class called ``name``."""
        return self.per_class[self.class_names.index(name)]

    def to_dict(self) -> dict[str, Any]:
        """``{"pixel_accuracy", "dice", "iou", "precision", "recall", "n_pixels", "per_class": {name: {...}}}``."""
        return {
            "pixel_accuracy": self.pixel_accuracy, "dice": self.dice, "iou": self.iou,
            "precision": self.precision, "recall": self.recall, "n_pixels": self.n_pixels,
            "per_class": {n: s.to_dict() for n, s in zip(self.class_names, self.per_class, strict=True)},
        }


def _class_names(class_names: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(n) for n in class_names)
    if len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(f"need at least two unique class names, got {list(names)}")
    return names


def scores_from_confusion(confusion: ArrayLike, class_names: Sequence[str] = BINARY_CLASSES) -> PixelScores:
    """Scores from a pixel confusion matrix (rows = true, columns = predicted), int array of shape (K, K)."""
    names = _class_names(class_names)
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.shape != (len(names), len(names)):
        raise ValueError(f"confusion matrix shape {cm.shape} does not match {len(names)} class names")
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    n = int(cm.sum())
    if n == 0:
        raise ValueError("no pixels to score")
    s = _scores_from_counts(tp, fp, fn)
    per_class = tuple(
        ClassPixelScores(float(s["iou"][k]), float(s["dice"][k]), float(s["precision"][k]), float(s["recall"][k]),
                         int(tp[k] + fn[k]))
        for k in range(len(names))
    )
    return PixelScores(names, float(tp.sum() / n), per_class, n)


def pixel_scores(
    y_true: ArrayLike, y_pred: ArrayLike, *, class_names: Sequence[str] = BINARY_CLASSES
) -> PixelScores:
    """Scores of one image.

    Parameters
    ----------
    y_true, y_pred : array_like of int or bool, shape (H, W)
        True and predicted class indices in ``[0, K)``, K = ``len(class_names)``.
    class_names : sequence of str
        K >= 2 unique names; default ``("background", "foreground")`` for binary masks.

    Returns
    -------
    PixelScores
    """
    names = _class_names(class_names)
    return scores_from_confusion(pixel_confusion(y_true, y_pred, num_classes=len(names)), names)


def average_scores(scores: Sequence[PixelScores]) -> PixelScores:
    """Macro average: the mean of per-image scores (supports and pixel counts are summed)."""
    if not scores:
        raise ValueError("no images to average")
    names = scores[0].class_names
    if any(s.class_names != names for s in scores):
        raise ValueError("cannot average scores of different class sets")

    def mean(get: Any) -> float:
        return float(np.mean([get(s) for s in scores]))

    per_class = tuple(
        ClassPixelScores(
            mean(lambda s, k=k: s.per_class[k].iou), mean(lambda s, k=k: s.per_class[k].dice),
            mean(lambda s, k=k: s.per_class[k].precision), mean(lambda s, k=k: s.per_class[k].recall),
            sum(s.per_class[k].support for s in scores),
        )
        for k in range(len(names))
    )
    return PixelScores(names, mean(lambda s: s.pixel_accuracy), per_class, sum(s.n_pixels for s in scores))


def all_background_accuracy(masks: ArrayLike | Iterable[ArrayLike], *, background: int = 0) -> float:
    """Pixel accuracy of predicting background everywhere: the fraction of background pixels, pooled.

    On imbalanced images this is high (e.g. 0.88) although such a "model" finds no object at all, which is
    why pixel accuracy alone is misleading and IoU / Dice are reported.

    Parameters
    ----------
    masks : array of int or bool, or an iterable of them (images may differ in size)
        True label maps; any non-``background`` value is an object.
    background : int
        The background label.

    Returns
    -------
    float
    """
    items = [masks] if isinstance(masks, np.ndarray) else list(masks)
    n_background = n_pixels = 0
    for item in items:
        arr = np.asarray(item)
        if arr.dtype.kind not in "biu":
            raise ValueError(f"masks must hold integer labels or bools, got dtype {arr.dtype}")
        n_background += int(np.count_nonzero(arr == background))
        n_pixels += arr.size
    if n_pixels == 0:
        raise ValueError("no pixels in masks")
    return n_background / n_pixels


@dataclass(frozen=True, eq=False)
class SegmentationReport:
    """Pixel scores of a split (compare ``to_dict()`` results; ``==`` is identity).

    Attributes
    ----------
    class_names : tuple of str
        K names; index 0 is background.
    per_image : tuple of PixelScores
        One per image, in input order.
    image_names : tuple of str
        One per image.
    micro : PixelScores
        Scores of the pooled pixel counts.
    macro : PixelScores
        Mean of the per-image scores.
    confusion : ndarray of int64, shape (K, K)
        Pooled pixel confusion matrix (rows = true, columns = predicted), read-only.
    all_background_accuracy : float
        Pixel accuracy of predicting background everywhere, pooled: compare with ``micro.pixel_accuracy``.
    """

    class_names: tuple[str, ...]
    per_image: tuple[PixelScores, ...]
    image_names: tuple[str, ...]
    micro: PixelScores
    macro: PixelScores
    confusion: np.ndarray
    all_background_accuracy: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready metrics; the headline scores are micro (pooled), ``"macro"`` holds the per-image means.

        Returns
        -------
        dict
            ``{"average": "micro", "pixel_accuracy", "dice", "iou", "precision", "recall", "n_pixels",
            "per_class", "n_images", "all_background_accuracy", "macro": {...}, "confusion_matrix",
            "per_image": [{"name", "pixel_accuracy", "dice", ...}]}``.
        """
        return {
            "average": "micro",
            **self.micro.to_dict(),
            "n_images": len(self.per_image),
            "all_background_accuracy": self.all_background_accuracy,
            "macro": self.macro.to_dict(),
            "confusion_matrix": self.confusion.tolist(),
            "per_image": [{"name": n, **s.to_dict()} for n, s in zip(self.image_names, self.per_image, strict=True)],
        }


def segmentation_report(
    y_true: Sequence[ArrayLike], y_pred: Sequence[ArrayLike], *, class_names: Sequence[str] = BINARY_CLASSES,
    image_names: Sequence[str] | None = None,
) -> SegmentationReport:
    """Per-image, micro and macro pixel scores of a set of images.

    Parameters
    ----------
    y_true, y_pred : sequence of array_like of int or bool, each (H_i, W_i)
        True and predicted label maps, pairwise of the same shape, class indices in ``[0, K)``.
    class_names : sequence of str
        K >= 2 unique names, index 0 = background.
    image_names : sequence of str, optional
        Default ``"0"``, ``"1"``, ...

    Returns
    -------
    SegmentationReport
    """
    names = _class_names(class_names)
    if len(y_true) != len(y_pred) or not len(y_true):
        raise ValueError(f"need the same non-zero number of true and predicted maps, got {len(y_true)} "
                         f"and {len(y_pred)}")
    image_names = tuple(str(i) for i in range(len(y_true))) if image_names is None else tuple(image_names)
    if len(image_names) != len(y_true):
        raise ValueError(f"{len(image_names)} image names for {len(y_true)} images")
    matrices = [pixel_confusion(t, p, num_classes=len(names)) for t, p in zip(y_true, y_pred, strict=True)]
    per_image = tuple(scores_from_confusion(cm, names) for cm in matrices)
    pooled = np.sum(matrices, axis=0)
    pooled.flags.writeable = False
    background = float(pooled[0].sum() / pooled.sum())  # true background pixels / all pixels
    return SegmentationReport(names, per_image, image_names, scores_from_confusion(pooled, names),
                              average_scores(per_image), pooled, background)


def binarize(probs: ArrayLike, threshold: float = 0.5) -> np.ndarray:
    """Foreground mask of a probability map: ``probs > threshold``, as uint8 (0/1), same shape."""
    p = np.asarray(probs)
    return (p > p.dtype.type(threshold)).astype(np.uint8)


def _as_probabilities(values: ArrayLike) -> np.ndarray:
    p = np.asarray(values)
    if p.dtype.kind != "f":
        raise ValueError(f"probabilities must be floating point, got dtype {p.dtype}")
    if p.size and (not np.isfinite(p).all() or p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must be finite and in [0, 1] (pass sigmoid(logits), not logits)")
    return p


def _threshold_counts(probs: ArrayLike, mask: ArrayLike, thresholds: np.ndarray) -> np.ndarray:
    """(tp, fp, fn, tn) of ``probs > t`` against a binary mask for each threshold; int64, shape (4, T)."""
    p = _as_probabilities(probs)
    m = _as_label_map(mask, "mask", 2).astype(bool)
    if p.shape != m.shape:
        raise ValueError(f"probabilities {p.shape} and mask {m.shape} differ in shape")
    if not p.size:
        raise ValueError("empty probability map")
    t = thresholds.astype(p.dtype)  # compare as binarize does
    n, n_fg = p.size, int(m.sum())
    predicted = n - np.searchsorted(np.sort(p, axis=None), t, side="right")
    tp = n_fg - np.searchsorted(np.sort(p[m]), t, side="right")
    fp = predicted - tp
    fn = n_fg - tp
    return np.stack([tp, fp, fn, n - tp - fp - fn]).astype(np.int64)


def _threshold_metric(counts: np.ndarray, metric: str) -> np.ndarray:
    tp, fp, fn, tn = counts
    if metric == "pixel_accuracy":
        return (tp + tn) / counts.sum(axis=0)
    return _scores_from_counts(tp, fp, fn)[metric]


def tune_threshold(
    probs_list: Sequence[ArrayLike], masks_list: Sequence[ArrayLike], *,
    thresholds: ArrayLike = np.linspace(0.05, 0.95, 19), metric: str = "dice", average: str = "micro",
) -> tuple[float, np.ndarray]:
    """The foreground-probability threshold that maximises a metric on validation images.

    Parameters
    ----------
    probs_list : sequence of array_like of float, each (H_i, W_i)
        Foreground probabilities in [0, 1].
    masks_list : sequence of array_like of int or bool, each (H_i, W_i)
        Binary true masks (0/1 or bool).
    thresholds : array_like of float, shape (T,)
        Candidates in [0, 1]; a pixel is foreground when its probability is > the threshold.
    metric : {"dice", "iou", "pixel_accuracy"}
        The foreground score to maximise.
    average : {"micro", "macro"}
        Score of the pooled counts, or mean of the per-image scores.

    Returns
    -------
    best_threshold : float
        The best candidate; among ties (within 1e-12) the one closest to 0.5.
    scores : ndarray of float64, shape (T,)
        The metric at each candidate threshold.
    """
    if metric not in THRESHOLD_METRICS:
        raise ValueError(f"metric must be one of {', '.join(THRESHOLD_METRICS)}, got {metric!r}")
    if average not in ("micro", "macro"):
        raise ValueError(f"average must be 'micro' or 'macro', got {average!r}")
    ts = np.asarray(thresholds, dtype=np.float64)
    if ts.ndim != 1 or not ts.size or not np.isfinite(ts).all() or ts.min() < 0 or ts.max() > 1:
        raise ValueError("thresholds must be a non-empty 1-D array of values in [0, 1]")
    if len(probs_list) != len(masks_list) or not len(probs_list):
        raise ValueError(f"need the same non-zero number of probability maps and masks, got {len(probs_list)} "
                         f"and {len(masks_list)}")
    counts = [_threshold_counts(p, m, ts) for p, m in zip(probs_list, masks_list, strict=True)]
    if average == "micro":
        scores = _threshold_metric(np.sum(counts, axis=0), metric)
    else:
        scores = np.mean([_threshold_metric(c, metric) for c in counts], axis=0)
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(ts[best[np.argmin(np.abs(ts[best] - 0.5))]]), scores.astype(np.float64)

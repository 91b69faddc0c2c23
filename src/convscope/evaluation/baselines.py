"""Classical baselines scored like the network: do I need deep learning?

Two plain functions from an image to a result, with scikit-image:

* :func:`otsu_mask`: Otsu's threshold of the grey image (semantic segmentation, binary);
* :func:`watershed_labels`: Otsu's mask split into objects by a watershed of its distance transform, seeded at
  the distance maxima (instances).

:func:`score_baseline` runs one of them over a split and returns the metrics in the layout of a split entry of a
run's ``metrics.json`` (pixel scores from :mod:`convscope.metrics.pixel`, matching from
:mod:`convscope.metrics.matching`), with ``"baseline"`` naming the method. The one free choice, which side of the
threshold is foreground, is :func:`choose_polarity`'s: pass it validation images, never the test images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from skimage.feature import peak_local_max
from skimage.filters import threshold_multiotsu, threshold_otsu
from skimage.segmentation import watershed

from convscope.datasets.segmentation import SegmentationSet
from convscope.metrics.matching import DEFAULT_THRESHOLDS, evaluate_label_pairs
from convscope.metrics.pixel import segmentation_report

Polarity = Literal["bright", "dark"]
Kind = Literal["semantic", "instances"]
#: IoU thresholds of the pooled matching table (as in metrics.json of instance runs).
REPORTED_IOUS: tuple[float, ...] = tuple(sorted({*DEFAULT_THRESHOLDS, 0.75}))
BASELINE_NAMES = {"semantic": "Otsu threshold", "instances": "Otsu + distance-transform watershed"}
#: The semantic baseline with more than two classes.
MULTICLASS_NAME = "multi-level Otsu thresholds"


def grey(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` float64 mean of the colour channels; an alpha channel (2 or 4 channels) is left out.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Any real dtype.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float64)
    channels = image.shape[2]
    colour = image[:, :, : channels - 1] if channels in (2, 4) else image
    return colour.astype(np.float64).mean(axis=2)


def otsu_mask(image: np.ndarray, *, polarity: Polarity = "bright") -> np.ndarray:
    """Foreground by Otsu's threshold of the grey image.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Any real dtype (alpha ignored).
    polarity : {"bright", "dark"}
        Foreground is above (``bright``) or at or below (``dark``) the threshold.

    Returns
    -------
    ndarray, shape (H, W), uint8
        0/1. A constant image gives all background.
    """
    g = grey(image)
    if g.min() == g.max():
        return np.zeros(g.shape, np.uint8)
    t = threshold_otsu(g)
    return (g > t if polarity == "bright" else g <= t).astype(np.uint8)


def watershed_labels(image: np.ndarray, *, polarity: Polarity = "bright", min_distance: int = 3,
                     min_size: int = 10) -> np.ndarray:
    """Instances: Otsu's mask split by a watershed of its distance transform.

    Seeds are the maxima of the Euclidean distance to the background at least ``min_distance`` pixels apart (one
    per connected region at least); the watershed floods the negated distance within the mask, so touching round
    objects separate along their neck.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Any real dtype (alpha ignored).
    polarity : {"bright", "dark"}
        As in :func:`otsu_mask`.
    min_distance : int
        Smallest distance in pixels between two seeds.
    min_size : int
        Objects smaller than this many pixels are dropped.

    Returns
    -------
    ndarray, shape (H, W), uint16 (uint32 above 65,535 objects)
        0 = background, ids 1..n.
    """
    mask = otsu_mask(image, polarity=polarity).astype(bool)
    if not mask.any():
        return np.zeros(mask.shape, np.uint16)
    distance = ndimage.distance_transform_edt(mask)
    regions, n_regions = ndimage.label(mask)
    peaks = peak_local_max(distance, min_distance=min_distance, labels=regions, exclude_border=False,
                           num_peaks_per_label=np.inf)
    markers = np.zeros(mask.shape, np.int64)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    seeded = np.unique(regions[tuple(peaks.T)]) if len(peaks) else np.zeros(0, np.int64)
    for k, region in enumerate(np.setdiff1d(np.arange(1, n_regions + 1), seeded)):  # seedless thin regions
        markers.flat[np.flatnonzero(regions.ravel() == region)[0]] = len(peaks) + 1 + k
    labels = watershed(-distance, markers, mask=mask)
    if min_size > 1:
        areas = np.bincount(labels.ravel())
        labels[areas[labels] < min_size] = 0
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(mask.shape)
    return labels.astype(np.uint16 if labels.max() <= np.iinfo(np.uint16).max else np.uint32)


def choose_polarity(images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> Polarity:
    """The polarity whose Otsu masks reach the higher pooled Dice on these (validation) images.

    Parameters
    ----------
    images : sequence of ndarray, each (H, W) or (H, W, C)
    masks : sequence of ndarray, each (H, W), integer (0 = background; any other value = foreground)
    """
    best: tuple[float, Polarity] = (-1.0, "bright")
    for polarity in ("bright", "dark"):
        tp = fp = fn = 0
        for image, mask in zip(images, masks, strict=True):
            pred, true = otsu_mask(image, polarity=polarity).astype(bool), np.asarray(mask) > 0
            tp += int(np.count_nonzero(pred & true))
            fp += int(np.count_nonzero(pred & ~true))
            fn += int(np.count_nonzero(~pred & true))
        dice = 2 * tp / max(2 * tp + fp + fn, 1)
        if dice > best[0]:
            best = (dice, polarity)  # type: ignore[assignment]
    return best[1]


def otsu_classes(image: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """Class map by Otsu's multi-level thresholds: the grey image is cut into ``len(order)`` intensity bands and
    band ``k`` (darkest first) becomes class ``order[k]``.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
        Any real dtype (alpha ignored).
    order : sequence of int
        The class of each band, darkest first (:func:`choose_band_classes`).

    Returns
    -------
    ndarray, shape (H, W), uint8
        Class indices. An image with fewer grey levels than bands is all ``order[0]``.
    """
    g = grey(image)
    classes = np.asarray(order, np.uint8)
    try:
        thresholds = threshold_multiotsu(g, classes=len(order))
    except ValueError:  # fewer distinct grey levels than classes
        return np.full(g.shape, classes[0], np.uint8)
    return classes[np.digitize(g, thresholds)]


def choose_band_classes(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], n_classes: int) -> list[int]:
    """The class of each intensity band of :func:`otsu_classes` (darkest first) that agrees with the most pixels of
    these (validation) class maps: a one-to-one assignment (Hungarian) on the band x class pixel counts."""
    counts = np.zeros((n_classes, n_classes), np.int64)
    for image, mask in zip(images, masks, strict=True):
        bands = otsu_classes(image, range(n_classes)).astype(np.int64)
        truth = np.clip(np.asarray(mask).astype(np.int64), 0, n_classes - 1)
        counts += np.bincount((bands * n_classes + truth).ravel(), minlength=n_classes**2).reshape(n_classes, -1)
    bands, classes = linear_sum_assignment(-counts)
    return [int(c) for _, c in sorted(zip(bands, classes, strict=True))]


def score_baseline(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], *, kind: Kind,
                   polarity: Polarity | Sequence[int] = "bright", names: Sequence[str] | None = None,
                   class_names: Sequence[str] = ("background", "foreground"),
                   min_distance: int = 3, min_size: int = 10) -> dict[str, Any]:
    """Score a classical baseline on a split, in the layout of the split entry of a run's ``metrics.json``.

    Parameters
    ----------
    images : sequence of ndarray, each (H, W) or (H, W, C)
        The split's images, as stored.
    masks : sequence of ndarray, each (H, W), integer
        ``semantic``: class maps 0/1; ``instances``: instance labels (0 = background).
    kind : {"semantic", "instances"}
        :func:`otsu_mask` scored with pixel Dice/IoU, or :func:`watershed_labels` scored with matching at
        IoU 0.1 ... 0.9 and 0.75.
    polarity : {"bright", "dark"} or sequence of int
        From :func:`choose_polarity` on the validation images; with more than two classes the class of each
        intensity band, from :func:`choose_band_classes`.
    names : sequence of str, optional
        One per image (default ``"0"``, ``"1"``, ...).
    class_names : sequence of str
        The semantic classes; more than two are scored with :func:`otsu_classes`.
    min_distance, min_size : int
        Watershed options (instances).

    Returns
    -------
    dict
        Semantic: the :func:`~convscope.metrics.pixel.segmentation_report` dict (``dice``, ``iou``,
        ``pixel_accuracy``, ``per_class``, ``per_image`` ...); instances: the
        :func:`~convscope.metrics.matching.evaluate_label_pairs` dict (``matching`` by IoU, ``per_image`` ...).
        Both with ``"baseline"`` (the method's name) and ``"polarity"``.

    Raises
    ------
    ValueError
        An unknown ``kind``, or images and masks of different counts.
    """
    if len(images) != len(masks) or not len(images):
        raise ValueError(f"need the same non-zero number of images and masks, got {len(images)} and {len(masks)}")
    names = [str(i) for i in range(len(images))] if names is None else [str(n) for n in names]
    if kind == "semantic" and len(class_names) > 2:
        order = list(polarity) if not isinstance(polarity, str) else list(range(len(class_names)))
        preds = [otsu_classes(im, order) for im in images]
        metrics = segmentation_report(list(masks), preds, class_names=class_names, image_names=names).to_dict()
        return {"baseline": MULTICLASS_NAME, "polarity": order, **metrics}
    if kind == "semantic":
        preds = [otsu_mask(im, polarity=polarity) for im in images]  # type: ignore[arg-type]
        truths = [(np.asarray(m) > 0).astype(np.uint8) for m in masks]
        metrics = segmentation_report(truths, preds, class_names=class_names, image_names=names).to_dict()
    elif kind == "instances":
        preds = [watershed_labels(im, polarity=polarity, min_distance=min_distance, min_size=min_size)
                 for im in images]
        metrics = evaluate_label_pairs(list(masks), preds, names=names, thresholds=REPORTED_IOUS)
    else:
        raise ValueError(f"kind must be 'semantic' or 'instances', got {kind!r}")
    return {"baseline": BASELINE_NAMES[kind], "polarity": polarity, **metrics}


def run_baseline(kind: str, val: SegmentationSet, test: SegmentationSet | None,
                 class_names: Sequence[str]) -> dict[str, Any] | None:
    """The classical baseline of a segmentation run, scored on its test images like the network.

    The polarity is chosen on the validation images (:func:`choose_polarity`); the scores are those of
    :func:`score_baseline` on the test images, named as the network's per-image rows are.

    Parameters
    ----------
    kind : str
        The task's kind: ``"semantic"`` or ``"instances"``; anything else has no baseline.
    val, test : SegmentationSet
        The run's validation and test splits (class maps or instance labels).
    class_names : sequence of str

    Returns
    -------
    dict or None
        The :func:`score_baseline` dict of the test split; None for classification or without test images.
    """
    if kind not in ("semantic", "instances") or test is None or not len(test):
        return None
    if kind == "semantic" and len(class_names) > 2:
        polarity: Any = choose_band_classes(val.images, val.masks, len(class_names))
    else:
        polarity = choose_polarity(val.images, val.masks)
    return score_baseline(test.images, test.masks, kind=kind, polarity=polarity,  # type: ignore[arg-type]
                          names=list(test.paths), class_names=class_names)


def baseline_summary(scores: dict[str, Any]) -> str:
    """One line for the terminal: ``"Otsu threshold: Dice 0.81 ..."`` or the matching scores at IoU 0.5."""
    if "matching" in scores:
        at = scores["matching"]["0.5"]
        return (f"{scores['baseline']}: at IoU 0.5 accuracy {at['accuracy']:.4f}  F1 {at['f1']:.4f}  "
                f"PQ {at['panoptic_quality']:.4f}")
    return f"{scores['baseline']}: Dice {scores['dice']:.4f}  IoU {scores['iou']:.4f}"

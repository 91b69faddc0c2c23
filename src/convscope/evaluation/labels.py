"""Label images on disk judged against ground truth on disk: ``convscope evaluate-labels GT_DIR PRED_DIR``.

Any tool's label images (convscope's, StarDist's, Cellpose's, hand-made) are paired by file stem and scored with
the StarDist-compatible matching of :mod:`convscope.metrics.matching`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from convscope.datasets.facts import binary_regions, relabel_components
from convscope.errors import ConvscopeError
from convscope.io import read_image
from convscope.metrics.matching import DEFAULT_THRESHOLDS, LABEL_SUFFIXES, evaluate_label_items, progress


def _label_files(folder: Path, role: str) -> dict[str, Path]:
    """Label images (TIFF/PNG) of a folder by file stem."""
    if not folder.is_dir():
        raise ConvscopeError(f"{folder}: {role} folder not found; check the path")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in LABEL_SUFFIXES:
            continue
        if path.stem in files:
            raise ConvscopeError(f"{path}: two {role} label images named '{path.stem}' ({files[path.stem].name}, "
                                 f"{path.name}); keep one")
        files[path.stem] = path
    if not files:
        raise ConvscopeError(f"{folder}: no {role} label images ({', '.join(LABEL_SUFFIXES)}); check the folder")
    return files


def _missing_partner(files: dict[str, Path], others: dict[str, Path], other_dir: Path, fix: str) -> None:
    missing = [files[s] for s in files if s not in others]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConvscopeError(f"{missing[0]}: no label image named '{missing[0].stem}' in {other_dir}{more}; {fix}")


def _read_labels(path: Path) -> np.ndarray:
    """A label image from disk: (H, W), integer, non-negative."""
    image = read_image(path)
    fix = "save the labels as a single-channel integer (uint8/uint16/uint32) TIFF or PNG"
    if image.ndim != 2:
        raise ConvscopeError(f"{path}: label image has shape {image.shape}, expected (H, W); {fix}")
    if image.dtype.kind not in "iu":
        raise ConvscopeError(f"{path}: label image has dtype {image.dtype}, expected integer labels; {fix}")
    if image.dtype.kind == "i" and image.min() < 0:
        raise ConvscopeError(f"{path}: label image holds negative values; {fix}")
    return image


def instance_labels(labels: np.ndarray, path: str | os.PathLike[str], *, relabel: bool = False) -> np.ndarray:
    """``labels`` as instance labels: a binary mask (one value over several separate objects) is refused, or with
    ``relabel`` its connected components become the objects (touching objects stay merged).

    Parameters
    ----------
    labels : ndarray, shape (H, W), non-negative integer
    path : str or PathLike
        Named in the error.
    relabel : bool
        Label the connected components of a binary mask instead of refusing it.

    Returns
    -------
    ndarray, shape (H, W)
        ``labels`` unchanged, or the relabelled binary mask (uint16/uint32).

    Raises
    ------
    ConvscopeError
        A binary mask without ``relabel``: matching it would score all its objects as one.
    """
    n = binary_regions(labels)
    if not n:
        return labels
    if relabel:
        return relabel_components(labels)
    raise ConvscopeError(f"{path}: binary mask (one value for {n} separate objects), not instance labels; matching "
                         "would score them as one object: label the objects, or pass --relabel (connected "
                         "components; touching objects stay merged)")


def _read_pairs(pairs: Sequence[tuple[Path, Path]], relabel: bool) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    for gt_path, pred_path in pairs:
        y_true = instance_labels(_read_labels(gt_path), gt_path, relabel=relabel)
        y_pred = instance_labels(_read_labels(pred_path), pred_path, relabel=relabel)
        if y_true.shape != y_pred.shape:
            raise ConvscopeError(
                f"{pred_path}: size {y_pred.shape[1]}x{y_pred.shape[0]} (WxH) differs from the ground truth "
                f"{gt_path} ({y_true.shape[1]}x{y_true.shape[0]}); predict at the original image size (no resizing "
                "or cropping)")
        yield gt_path.stem, y_true, y_pred


def evaluate_label_folders(
    gt_dir: str | os.PathLike[str], pred_dir: str | os.PathLike[str], *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS, criterion: str = "iou",
    per_image_thresholds: Sequence[float] = (0.5,), show_progress: bool = False, relabel: bool = False,
) -> dict[str, Any]:
    """Score the label images of a folder against ground truth in another, paired by file stem.

    Backs ``convscope evaluate-labels GT_DIR PRED_DIR``: any tool's label images are judged the same way.

    Parameters
    ----------
    gt_dir, pred_dir : str or PathLike
        Folders of label images (``.tif``, ``.tiff``, ``.png``; (H, W) non-negative integers, 0 = background);
        ``gt_dir/a.tif`` is paired with ``pred_dir/a.png`` etc. Other files are ignored.
    thresholds : sequence of float
        Thresholds of the pooled table (default 0.1 ... 0.9).
    criterion : {"iou", "iot", "iop"}
    per_image_thresholds : sequence of float
        Thresholds reported per image.
    show_progress : bool
        A progress bar (tqdm) on stderr.
    relabel : bool
        Give the connected components of binary masks (one value over several objects, either folder) their own
        ids; without it such a mask is refused (see :func:`instance_labels`).

    Returns
    -------
    dict
        As :func:`~convscope.metrics.matching.evaluate_label_pairs`; ``per_image`` in file-name order,
        ``"name"`` = the file stem.

    Raises
    ------
    ConvscopeError
        A missing folder, no label images, a file without a partner (either way), two files with the same
        stem, an unreadable or non-label image, a binary mask (without ``relabel``), or a size mismatch; the
        message names the file and the fix.
    """
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    truth, pred = _label_files(gt_dir, "ground-truth"), _label_files(pred_dir, "predicted")
    _missing_partner(truth, pred, pred_dir, "add the prediction or remove the ground truth file")
    _missing_partner(pred, truth, gt_dir, "add its ground truth or remove the prediction")
    pairs = [(truth[s], pred[s]) for s in truth]
    items = progress(_read_pairs(pairs, relabel), len(pairs), show_progress, "evaluating")
    return evaluate_label_items(items, thresholds, criterion, per_image_thresholds)

"""The cheap data checks ``train`` runs first, on the data it has just loaded.

:func:`check_loaded` judges the splits a recipe loaded (images and labels in memory, no file read again) for the
recipe's task, in a few milliseconds per image: masks that do not fit the task (binary masks where instance labels
are needed, every mask empty), constant images, class balance, foreground fraction, objects and their median
diameter, and exact duplicates across train / validation / test. It returns the same :class:`DataCheck` as the full
``convscope data check`` (:func:`convscope.datasets.check.check_data`), which also reads every file, finds near
duplicates, touching objects and more. The trainer refuses data with an error finding and writes the check into the
run directory, where the report shows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from convscope.datasets.base import ClassificationData
from convscope.datasets.check import INSTANCE_TASKS, DataCheck, Finding, FolderReport, class_balance
from convscope.datasets.facts import binary_regions
from convscope.datasets.segmentation import SegmentationData

_SPLITS = ("train", "val", "test")
_TINY_FOREGROUND = 0.05
_SHOWN = 2


def check_loaded(data: ClassificationData | SegmentationData, task: str, *, target: str = "training data"
                 ) -> DataCheck:
    """The cheap checks of loaded data for ``task``.

    Parameters
    ----------
    data : ClassificationData or SegmentationData
        As :func:`convscope.datasets.load_task_data` returns it for the task's kind.
    task : {"classification", "semantic", "stardist", "flows"}
    target : str
        What the data are (the data set's name), shown as the check's target.

    Returns
    -------
    DataCheck
        Two folder reports, ``"<target>: images and labels"`` and ``"<target>: across train / val / test"``;
        error findings mean the task cannot learn from these labels.
    """
    splits = {name: split for name in _SPLITS if (split := getattr(data, name)) is not None and len(split)}
    if "val" in splits and list(splits["val"].paths) == list(splits["train"].paths):
        del splits["val"]  # validation reuses the training images by design (fine-tuning on every pair)
    counts = " / ".join(f"{len(s)} {name}" for name, s in splits.items())
    if isinstance(data, ClassificationData):
        findings = _classification_findings(data)
        images = {name: split.images for name, split in splits.items()}
    else:
        findings = _mask_findings([m for s in splits.values() for m in s.masks],
                                  [p for s in splits.values() for p in s.paths], task)
        images = {name: split.images for name, split in splits.items()}
    paths = {name: list(split.paths) for name, split in splits.items()}
    findings += _constant_images(images, paths)
    n = sum(len(s) for s in splits.values())
    labels = FolderReport(f"{target}: images and labels ({counts})", "loaded", n, tuple(findings))
    across = FolderReport(f"{target}: across {' / '.join(splits)}", "splits", n, (_exact_leakage(images, paths),))
    return DataCheck(target, task, (labels, across))


def _examples(paths: Sequence[str]) -> str:
    shown = ", ".join(str(p).rsplit("/", 1)[-1] for p in paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def _classification_findings(data: ClassificationData) -> list[Finding]:
    names = data.class_names
    findings = [class_balance(np.bincount(data.train.labels, minlength=len(names)).tolist(), names)]
    if data.test is not None:
        missing = [names[i] for i in np.flatnonzero(np.bincount(data.test.labels, minlength=len(names)) == 0)]
        if missing:
            findings.append(Finding("test classes", "warning", f"no test image of class {', '.join(missing)}",
                                    "add test images of every class; per-class scores are undefined otherwise"))
    return findings


def _mask_findings(masks: Sequence[np.ndarray], paths: Sequence[str], task: str) -> list[Finding]:
    findings: list[Finding] = []
    instances = task in INSTANCE_TASKS
    if instances:
        binary = [(p, n) for m, p in zip(masks, paths, strict=True) if (n := binary_regions(m))]
        if binary:
            findings.append(Finding(
                "instance ids", "error", f"{len(binary)} of {len(masks)} masks are binary: one value for several "
                f"separate objects (e.g. {_examples([p for p, _ in binary])}: {binary[0][1]} objects)",
                "label the objects, or train on `convscope data check DIR --relabel NEW_DIR` (connected components)"))
    empty = [p for m, p in zip(masks, paths, strict=True) if not m.any()]
    if empty:
        every = len(empty) == len(masks)
        findings.append(Finding("empty masks", "error" if every else "note",
                                f"{len(empty)} of {len(masks)} masks are empty ({_examples(empty)})",
                                "add the labels" if every else "fine as negatives if intended"))
    if instances:
        areas = [np.bincount(m.ravel())[1:] for m in masks if m.any()]
        areas = np.concatenate([a[a > 0] for a in areas]) if areas else np.zeros(0)
        if areas.size:
            diameters = np.sqrt(4.0 * areas / np.pi)
            findings.append(Finding("objects", "ok", f"{areas.size:,} objects, {areas.size / len(masks):.1f} per "
                                    f"image; median diameter {np.median(diameters):.1f} px"))
    else:
        fg = np.array([np.count_nonzero(m) / m.size for m in masks])
        tiny = fg.mean() < _TINY_FOREGROUND
        findings.append(Finding("foreground", "note" if tiny else "ok", f"foreground fraction: mean {fg.mean():.3f}, "
                                f"range {fg.min():.3f} to {fg.max():.3f}",
                                "raise data.foreground_bias; use a Dice loss" if tiny else ""))
    return findings


def _is_constant(images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """(N,) bool: every pixel of the image has one value (one reduction for a stacked (N, H, W, C) array)."""
    if isinstance(images, np.ndarray):
        flat = images.reshape(len(images), -1)
        return flat.min(axis=1) == flat.max(axis=1)
    return np.array([im.min() == im.max() for im in images], dtype=bool)


Images = dict[str, Sequence[np.ndarray] | np.ndarray]  # split -> its images, (H, W, C) each


def _constant_images(images: Images, paths: dict[str, list[str]]) -> list[Finding]:
    constant = [p for name in images
                for flag, p in zip(_is_constant(images[name]), paths[name], strict=True) if flag]
    if not constant:
        return [Finding("images", "ok", "no constant image")]
    return [Finding("constant", "warning", f"{len(constant)} image(s) hold one value only ({_examples(constant)})",
                    "remove blank images (nothing to learn from)")]


def _digest(image: np.ndarray) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(image).tobytes())
    digest.update(f"{image.shape}{image.dtype}".encode())
    return digest.hexdigest()


def _exact_leakage(images: Images, paths: dict[str, list[str]]) -> Finding:
    first: dict[str, tuple[str, str]] = {}
    across: list[tuple[str, str]] = []
    for name in images:
        for image, path in zip(images[name], paths[name], strict=True):
            key = _digest(image)
            if key not in first:
                first[key] = (name, path)
            elif first[key][0] != name:
                across.append((f"{first[key][0]}:{first[key][1]}", f"{name}:{path}"))
    if not across:
        return Finding("leakage (exact)", "ok", f"no identical images across {', '.join(images)}")
    a, b = across[0]
    return Finding("leakage (exact)", "warning", f"{len(across)} image(s) also in an earlier split ({a} = {b})",
                   "remove the duplicates; test scores are optimistic otherwise")

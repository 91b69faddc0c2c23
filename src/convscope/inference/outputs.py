"""Predicting files and folders, and writing what a user keeps: a CSV of classes, mask images, label images.

What is written follows the task's kind: a classifier writes one CSV (``path, class, probability, p_<class>...``);
a semantic run ``OUT/<name>_mask.tif`` per image (+ PNG, probability maps) and ``OUT/predictions.csv``; an instance
run ``OUT/<name>_labels.tif`` (uint16, uint32 beyond 65,535 objects) and ``OUT/predictions.csv`` (object count and
mean area). ``<name>`` is the image's path relative to the folder the inputs share, so no two images write the same
file (:func:`convscope.inference.destinations.output_names`). Every image file is written atomically, the CSV row by
row as the images are done (complete only at the end; after a failure the rows so far stay in ``*.partial``); inputs
and earlier outputs are never overwritten (a non-empty ``OUT`` or an existing CSV needs ``overwrite``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convscope.errors import ConvscopeError
from convscope.inference.destinations import RowsAsYouGo, output_folder, output_names
from convscope.inference.inputs import Color, InputPreparation
from convscope.inference.predictor import Predictor
from convscope.inference.progress import Progress, TerminalProgress
from convscope.inference.rescale import segment_at_diameter
from convscope.io.image import IMAGE_SUFFIXES, write_image

#: The leading columns of what predict writes: a classifier's CSV (then ``p_<class>`` per class), and the
#: ``predictions.csv`` of a semantic run and of an instance run (then ``diameter, scale`` for a sized run).
CLASS_COLUMNS = ("path", "class", "probability")
MASK_COLUMNS = ("path", "mask", "foreground_fraction")
LABEL_COLUMNS = ("path", "labels", "count", "mean_area")
#: The CSV a segmentation writes in its output folder, and the endings of its files per image.
PREDICTIONS_CSV = "predictions.csv"
LABELS_ENDING, MASK_ENDING, PROBABILITY_ENDING = "_labels.tif", "_mask.tif", "_prob.tif"


@dataclass(frozen=True)
class Prediction:
    """One image's class: its path, the predicted class and its probability, all class probabilities."""

    path: str
    label: str
    probability: float
    probabilities: tuple[float, ...]


@dataclass(frozen=True)
class MaskResult:
    """One image's semantic outputs: its path, the written mask file and the foreground fraction."""

    path: str
    mask: str
    foreground_fraction: float


@dataclass(frozen=True)
class LabelResult:
    """One image's instance outputs: its path, the written label image, the object count and mean area (pixels)."""

    path: str
    labels: str
    count: int
    mean_area: float
    diameter: float | None = None  # the object diameter (pixels) the image was rescaled for, if it was
    scale: float | None = None


def expand_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files from files and folders (recursive, sorted; a file given twice counts once); an error for a
    missing or empty input."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                           and not p.name.startswith("."))
            if not found:
                raise ConvscopeError(f"{item}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise ConvscopeError(f"{item}: no such file or folder")
    seen: set[str] = set()
    unique = []
    for f in files:
        key = os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def input_preparation(predictor: Predictor, *, color: Color | None = None, channels: tuple[int, ...] | None = None,
                      log: Callable[[str], None] | None = None) -> InputPreparation:
    """How files become inputs of ``predictor``'s run: its ``data.color`` (or ``color``), ``channels`` picked
    first, a classifier's resize and input size (see :mod:`convscope.inference.inputs`)."""
    cfg = predictor.run.model_config
    h, w, c = predictor.run.input_shape
    whole = predictor.task.kind == "classification"
    resize = tuple(cfg["resize"]) if cfg.get("resize") and whole else None
    return InputPreparation(channels=c, color=color or cfg.get("color", "auto"), pick=channels,
                            resize=resize, size=(h, w) if whole else None, log=log)  # type: ignore[arg-type]


def load_input(predictor: Predictor, path: Path) -> np.ndarray:
    """One file prepared as the run's training images were: (H, W, C), checked against what the model takes
    (the error names the file)."""
    return input_preparation(predictor).load(path)


def predict_paths(predictor: Predictor, inputs: Sequence[str | Path], out: str | Path, *, overwrite: bool = False,
                  png: bool = False, probabilities: bool = False, diameter: float | None = None,
                  color: Color | None = None, channels: tuple[int, ...] | None = None,
                  log: Callable[[str], None] | None = None, progress: Progress | None = None) -> list[Any]:
    """Predict image files and folders and write the results to ``out`` (see the module docstring).

    Parameters
    ----------
    predictor : Predictor
    inputs : sequence of path-like
        Image files and folders (searched recursively).
    out : path-like
        A CSV file (classification) or a folder (segmentation, instances).
    overwrite : bool
        Replace an existing ``out`` CSV (classification), or write into a non-empty ``out`` folder, replacing files
        of the same name (segmentation, instances). Inputs are never overwritten.
    png, probabilities : bool
        Semantic runs: also write masks as PNG (binary: 0/255) and the probability maps (float32 TIFF).
    diameter : float, optional
        Instance runs that know their training object diameter (built-in models): the objects' diameter in
        pixels; each image is rescaled so that its objects match the training size
        (:func:`convscope.inference.rescale.segment_at_diameter`). Without it such a model estimates the diameter
        from a first pass (checked by a second at the scale it asks for); ``log`` hears which value was used.
    color : {"auto", "gray", "rgb"}, optional
        Instead of the run's ``data.color``; ``auto`` converts grey <-> RGB to the model's channel count.
    channels : tuple of int, optional
        Keep these channels (0-based) of every image first.
    log : callable, optional
        Hears conversions (once per kind) and, for built-in models, the diameters used.
    progress : callable, optional
        ``progress(what, done, total)`` with ``what`` "files" or "tiles" (see :mod:`convscope.inference.progress`);
        default: bars on a terminal.

    Returns
    -------
    list of Prediction, MaskResult or LabelResult
        One per image, in sorted path order.
    """
    files = expand_inputs(inputs)
    if diameter is not None and (predictor.run.diameter is None or predictor.task.kind != "instances"):
        raise ConvscopeError("--diameter: needs an instance model that records its training object diameter (a "
                             "built-in model, `convscope models --pretrained`)")
    writer = _WRITERS[predictor.task.kind]
    prepare = input_preparation(predictor, color=color, channels=channels, log=log)
    with _reporting(predictor, progress) as report:
        return writer(predictor, files, Path(out), overwrite=overwrite, png=png, probabilities=probabilities,
                      inputs=inputs, diameter=diameter, log=log, prepare=prepare, report=report)


@contextmanager
def _reporting(predictor: Predictor, progress: Progress | None) -> Iterator[Progress]:
    """``progress`` (default: terminal bars) for the files, and the predictor's tiles reported to it."""
    bars = TerminalProgress() if progress is None else None
    report: Progress = progress if progress is not None else bars  # type: ignore[assignment]
    previous = predictor.progress
    predictor.progress = lambda done, total: report("tiles", done, total)
    try:
        yield report
    finally:
        predictor.progress = previous
        if bars is not None:
            bars.close()


def _named(path: Path, err: ConvscopeError) -> ConvscopeError:
    """``err`` with the file it happened on, unless it names it already."""
    return err if str(path) in str(err) else ConvscopeError(f"{path}: {err}")


def _classes(predictor: Predictor, files: list[Path], out: Path, *, overwrite: bool, inputs: Sequence[str | Path],
             prepare: InputPreparation, report: Progress, **_: Any) -> list[Prediction]:
    names = predictor.task.class_names
    _refuse_input(out, [*inputs, *files])
    results: list[Prediction] = []
    step = max(predictor.batch_size, 1)
    with RowsAsYouGo(out, [*CLASS_COLUMNS, *(f"p_{name}" for name in names)],
                     overwrite=overwrite) as csv_out:
        for start in range(0, len(files), step):
            chunk = files[start : start + step]
            preds = predictor.predict_many([prepare.load(p) for p in chunk])
            rows = []
            for path, pred in zip(chunk, preds, strict=True):
                p = predictor.decode(pred, (0, 0))
                k = int(p.argmax())
                rows.append(Prediction(str(path), names[k], float(p[k]), tuple(map(float, p))))
            csv_out.add([_class_row(r) for r in rows])
            results += rows
            report("files", len(results), len(files))
    return results


def _class_row(r: Prediction) -> list[str]:
    return [r.path, r.label, f"{r.probability:.6f}", *(f"{p:.6f}" for p in r.probabilities)]


def _refuse_input(out: Path, inputs: Sequence[str | Path]) -> None:
    if any(os.path.realpath(out) == os.path.realpath(p) for p in inputs):
        raise ConvscopeError(f"--out {out}: is one of the inputs; choose another file name")


def write_predictions(rows: Sequence[Prediction], out: str | Path, *, class_names: Sequence[str],
                      overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> None:
    """Write ``path, class, probability, p_<class>...`` rows to a CSV file, atomically.

    Refuses to replace an input file, and an existing ``out`` unless ``overwrite``.
    """
    out = Path(out)
    _refuse_input(out, [*inputs, *(r.path for r in rows)])
    with RowsAsYouGo(out, [*CLASS_COLUMNS, *(f"p_{name}" for name in class_names)],
                     overwrite=overwrite) as csv_out:
        csv_out.add([_class_row(r) for r in rows])


def _masks(predictor: Predictor, files: list[Path], out: Path, *, png: bool, probabilities: bool, overwrite: bool,
           prepare: InputPreparation, report: Progress, **_: Any) -> list[MaskResult]:
    task = predictor.task
    results = []
    with output_folder(out, files, overwrite=overwrite), \
            RowsAsYouGo(out / PREDICTIONS_CSV, MASK_COLUMNS,
                        overwrite=overwrite) as csv_out:
        for i, (path, name) in enumerate(zip(files, output_names(files), strict=True)):
            try:
                image = prepare.load(path)
                logits = predictor.predict(image)
                mask = predictor.decode(logits, image.shape[:2])
            except ConvscopeError as err:
                raise _named(path, err) from None
            mask_path = out / f"{name}{MASK_ENDING}"
            write_image(mask_path, mask)
            if png:
                write_image(out / f"{name}_mask.png", mask * 255 if task.binary else mask)
            if probabilities:
                import torch

                probs = task.probabilities(torch.from_numpy(logits[None]))[0].numpy()
                write_image(out / f"{name}{PROBABILITY_ENDING}", probs[1] if task.binary else probs)
            result = MaskResult(str(path), str(mask_path), float((mask > 0).mean()))
            csv_out.add([[result.path, result.mask, f"{result.foreground_fraction:.6f}"]])
            results.append(result)
            report("files", i + 1, len(files))
    return results


def _labels(predictor: Predictor, files: list[Path], out: Path, *, diameter: float | None, overwrite: bool,
            log: Callable[[str], None] | None, prepare: InputPreparation, report: Progress,
            **_: Any) -> list[LabelResult]:
    sized_run = predictor.run.diameter is not None
    header = [*LABEL_COLUMNS, *(["diameter", "scale"] if sized_run else [])]
    results = []
    with output_folder(out, files, overwrite=overwrite), \
            RowsAsYouGo(out / PREDICTIONS_CSV, header, overwrite=overwrite) as csv_out:
        for i, (path, name) in enumerate(zip(files, output_names(files), strict=True)):
            try:
                labels, sized = _segment(predictor, prepare.load(path), path, diameter, log)
            except ConvscopeError as err:
                raise _named(path, err) from None
            label_path = out / f"{name}{LABELS_ENDING}"
            write_image(label_path, labels)
            areas = np.bincount(labels.ravel())[1:]
            areas = areas[areas > 0]
            r = LabelResult(str(path), str(label_path), len(areas), float(areas.mean()) if len(areas) else 0.0,
                            *sized)
            row = [r.path, r.labels, r.count, f"{r.mean_area:.2f}"]
            csv_out.add([[*row, f"{r.diameter:.2f}", f"{r.scale:.4f}"] if sized_run else row])
            results.append(r)
            report("files", i + 1, len(files))
    return results


def _segment(predictor: Predictor, image: np.ndarray, path: Path, diameter: float | None,
             log: Callable[[str], None] | None) -> tuple[np.ndarray, tuple[float, float] | tuple[None, None]]:
    """One image's label image (compact dtype) and, for a model that knows its object size, the diameter and
    scale it was segmented at."""
    if predictor.run.diameter is None:
        return compact_dtype(predictor.segment(image)), (None, None)
    found = segment_at_diameter(predictor, image, model_diameter=predictor.run.diameter, diameter=diameter)
    if log is not None:
        how = "estimated" if found.estimated else "given"
        log(f"{path.name}: object diameter {found.diameter:.1f} px ({how}), image scaled by {found.scale:.3g}")
    return compact_dtype(found.labels), (found.diameter, found.scale)


_WRITERS: dict[str, Callable[..., list[Any]]] = {"classification": _classes, "semantic": _masks,
                                                 "instances": _labels}


def compact_dtype(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint16 when its largest id fits, else uint32."""
    return labels.astype(np.uint16) if labels.max(initial=0) <= np.iinfo(np.uint16).max else labels.astype(np.uint32)

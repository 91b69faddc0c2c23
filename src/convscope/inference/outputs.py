"""Predicting files and folders, and writing what a user keeps: a CSV of classes, mask images, label images.

What is written follows the task's kind: a classifier writes one CSV (``path, class, probability, p_<class>...``);
a semantic run ``OUT/<stem>_mask.tif`` per image (+ PNG, probability maps) and ``OUT/predictions.csv``; an instance
run ``OUT/<stem>_labels.tif`` (uint16, uint32 beyond 65,535 objects) and ``OUT/predictions.csv`` (object count and
mean area). Every file is written atomically; inputs are never overwritten.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from convscope.datasets.folders import load_image
from convscope.errors import ConvscopeError
from convscope.inference.predictor import Predictor
from convscope.inference.rescale import segment_at_diameter
from convscope.io.atomic import write_text
from convscope.io.image import IMAGE_SUFFIXES, write_image


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
    """Image files from files and folders (recursive, sorted); an error for a missing or empty input."""
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
    return files


def load_input(predictor: Predictor, path: Path) -> np.ndarray:
    """One file prepared as the run's training images were (colour, and a classifier's resize): (H, W, C),
    checked against what the model takes (the error names the file)."""
    cfg = predictor.run.model_config
    whole = predictor.task.kind == "classification"
    resize = tuple(cfg["resize"]) if cfg.get("resize") and whole else None
    h, w, c = predictor.run.input_shape
    color = cfg.get("color", "auto")
    if color == "auto" and predictor.run.builtin:  # a built-in model reads what it takes: grey or RGB
        color = "gray" if c == 1 else "rgb"
    image = load_image(path, color=color, resize=resize)
    if image.shape[2] != c or (whole and image.shape != (h, w, c)):
        shape = f"{h}x{w}x{c}" if whole else f"{c} channel{'s' if c > 1 else ''}"
        fix = "retrain with data.resize set" if image.shape[2] == c else "check data.color of the recipe"
        raise ConvscopeError(f"{path}: image is {'x'.join(map(str, image.shape))} but the model takes {shape}; "
                             f"{fix}")
    return image


def predict_paths(predictor: Predictor, inputs: Sequence[str | Path], out: str | Path, *, overwrite: bool = False,
                  png: bool = False, probabilities: bool = False, diameter: float | None = None,
                  log: Callable[[str], None] | None = None) -> list[Any]:
    """Predict image files and folders and write the results to ``out`` (see the module docstring).

    Parameters
    ----------
    predictor : Predictor
    inputs : sequence of path-like
        Image files and folders (searched recursively).
    out : path-like
        A CSV file (classification) or a folder (segmentation, instances).
    overwrite : bool
        Classification: replace an existing ``out`` CSV.
    png, probabilities : bool
        Semantic runs: also write masks as PNG (binary: 0/255) and the probability maps (float32 TIFF).
    diameter : float, optional
        Instance runs that know their training object diameter (built-in models): the objects' diameter in
        pixels; each image is rescaled so that its objects match the training size
        (:func:`convscope.inference.rescale.segment_at_diameter`). Without it such a model estimates the diameter
        from a first pass; ``log`` hears which value was used.

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
    return writer(predictor, files, Path(out), overwrite=overwrite, png=png, probabilities=probabilities,
                  inputs=inputs, diameter=diameter, log=log)


def _classes(predictor: Predictor, files: list[Path], out: Path, *, overwrite: bool, inputs: Sequence[str | Path],
             **_: Any) -> list[Prediction]:
    names = predictor.task.class_names
    results: list[Prediction] = []
    step = max(predictor.batch_size, 1)
    with tqdm(total=len(files), desc="predict", unit="img", disable=len(files) < 256) as bar:
        for start in range(0, len(files), step):
            chunk = files[start : start + step]
            preds = predictor.predict_many([load_input(predictor, p) for p in chunk])
            for path, pred in zip(chunk, preds, strict=True):
                p = predictor.decode(pred, (0, 0))
                k = int(p.argmax())
                results.append(Prediction(str(path), names[k], float(p[k]), tuple(map(float, p))))
            bar.update(len(chunk))
    write_predictions(results, out, class_names=names, overwrite=overwrite, inputs=inputs)
    return results


def write_predictions(rows: Sequence[Prediction], out: str | Path, *, class_names: Sequence[str],
                      overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> None:
    """Write ``path, class, probability, p_<class>...`` rows to a CSV file, atomically.

    Refuses to replace an input file, and an existing ``out`` unless ``overwrite``.
    """
    out = Path(out)
    if any(out.resolve() == Path(p).resolve() for p in [*inputs, *(r.path for r in rows)]):
        raise ConvscopeError(f"--out {out}: is one of the inputs; choose another file name")
    if out.exists() and not overwrite:
        raise ConvscopeError(f"--out {out}: already exists; choose another name or pass --overwrite")
    _write_csv(out, ["path", "class", "probability", *(f"p_{name}" for name in class_names)],
               [[r.path, r.label, f"{r.probability:.6f}", *(f"{p:.6f}" for p in r.probabilities)] for r in rows])


def _masks(predictor: Predictor, files: list[Path], out: Path, *, png: bool, probabilities: bool,
           **_: Any) -> list[MaskResult]:
    check_out_dir(out, files)
    task = predictor.task
    results = []
    for path in _progress(files):
        image = load_input(predictor, path)
        logits = predictor.predict(image)
        mask = predictor.decode(logits, image.shape[:2])
        mask_path = out / f"{path.stem}_mask.tif"
        write_image(mask_path, mask)
        if png:
            write_image(out / f"{path.stem}_mask.png", mask * 255 if task.binary else mask)
        if probabilities:
            import torch

            probs = task.probabilities(torch.from_numpy(logits[None]))[0].numpy()
            write_image(out / f"{path.stem}_prob.tif", probs[1] if task.binary else probs)
        results.append(MaskResult(str(path), str(mask_path), float((mask > 0).mean())))
    _write_csv(out / "predictions.csv", ["path", "mask", "foreground_fraction"],
               [[r.path, r.mask, f"{r.foreground_fraction:.6f}"] for r in results])
    return results


def _labels(predictor: Predictor, files: list[Path], out: Path, *, diameter: float | None,
            log: Callable[[str], None] | None, **_: Any) -> list[LabelResult]:
    check_out_dir(out, files)
    results = []
    for path in _progress(files):
        image = load_input(predictor, path)
        sized: tuple[float, float] | tuple[None, None] = (None, None)
        if predictor.run.diameter is not None:  # objects rescaled to the training size
            found = segment_at_diameter(predictor, image, model_diameter=predictor.run.diameter, diameter=diameter)
            labels, sized = compact_dtype(found.labels), (found.diameter, found.scale)
            if log is not None:
                how = "estimated" if found.estimated else "given"
                log(f"{path.name}: object diameter {found.diameter:.1f} px ({how}), image scaled by {found.scale:.3g}")
        else:
            labels = compact_dtype(predictor.segment(image))
        label_path = out / f"{path.stem}_labels.tif"
        write_image(label_path, labels)
        areas = np.bincount(labels.ravel())[1:]
        areas = areas[areas > 0]
        results.append(LabelResult(str(path), str(label_path), len(areas), float(areas.mean()) if len(areas) else 0.0,
                                   *sized))
    header, rows = ["path", "labels", "count", "mean_area"], [[r.path, r.labels, r.count, f"{r.mean_area:.2f}"]
                                                              for r in results]
    if predictor.run.diameter is not None:
        header += ["diameter", "scale"]
        rows = [[*row, f"{r.diameter:.2f}", f"{r.scale:.4f}"] for row, r in zip(rows, results, strict=True)]
    _write_csv(out / "predictions.csv", header, rows)
    return results


_WRITERS: dict[str, Callable[..., list[Any]]] = {"classification": _classes, "semantic": _masks,
                                                 "instances": _labels}


def _progress(files: list[Path]) -> Any:
    return tqdm(files, desc="segment", unit="img", disable=len(files) < 4)


def check_out_dir(out: Path, files: Sequence[Path]) -> None:
    """Refuse an ``--out`` that is a file or holds input images; create it."""
    if out.exists() and not out.is_dir():
        raise ConvscopeError(f"--out {out}: is a file; give a folder for the outputs")
    if any(f.resolve().parent == out.resolve() for f in files):
        raise ConvscopeError(f"--out {out}: holds input images; choose another folder (inputs are never overwritten)")
    out.mkdir(parents=True, exist_ok=True)


def compact_dtype(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint16 when its largest id fits, else uint32."""
    return labels.astype(np.uint16) if labels.max(initial=0) <= np.iinfo(np.uint16).max else labels.astype(np.uint32)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buf.getvalue())

"""Prediction with a trained run: images or files in, class probabilities out."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.config import NormalizeConfig
from convscope.datasets.base import ImageSet
from convscope.errors import ConvscopeError
from convscope.io.atomic import write_text
from convscope.io.image import IMAGE_SUFFIXES
from convscope.runs.layout import RunDir
from convscope.runs.runtime import resolve_device
from convscope.tasks import ClassificationTask
from convscope.training.evaluate import load_trained_model, predict_logits
from convscope.training.tensors import TensorImages


@dataclass(frozen=True)
class Prediction:
    """One image's result: its path, the predicted class and its probability, all class probabilities."""

    path: str
    label: str
    probability: float
    probabilities: tuple[float, ...]


class Predictor:
    """A trained classifier with the preprocessing it was trained with.

    Examples
    --------
    >>> predictor = Predictor.from_run("runs/rbc_vgg1")          # doctest: +SKIP
    >>> probs = predictor.predict(images)  # (N, H, W, C) uint8 -> (N, n_classes) float32
    """

    def __init__(self, run: RunDir, device: str = "auto") -> None:
        self.run = run
        self.device = resolve_device(device)
        self.config = run.read_model_config()
        self.class_names: tuple[str, ...] = tuple(self.config["class_names"])
        self.task = ClassificationTask(self.class_names)
        self.model = load_trained_model(run, self.device)
        self.normalize = NormalizeConfig(**self.config["normalize"])
        self.input_shape = tuple(self.config["input_shape"])

    @classmethod
    def from_run(cls, path: str | Path, device: str = "auto") -> Predictor:
        return cls(RunDir.open(path), device)

    def predict(self, images: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        images : ndarray, shape (N, H, W, C)
            Images of the model's input shape and dtype family, not normalised.

        Returns
        -------
        ndarray, shape (N, n_classes), float32
        """
        if images.ndim != 4 or tuple(images.shape[1:]) != self.input_shape:
            raise ConvscopeError(f"images of shape {images.shape[1:]}; the model takes (N, "
                                 f"{', '.join(map(str, self.input_shape))})")
        labels = np.zeros(len(images), np.int64)
        tensors = TensorImages.from_set(ImageSet(images, labels, self.class_names, ("",) * len(images)),
                                        self.normalize, self.device)
        logits, _ = predict_logits(self.model, tensors, batch_size=batch_size)
        return self.task.probabilities(logits).cpu().numpy()

    def load(self, path: Path) -> np.ndarray:
        """Read one file and prepare it as in training (color, resize); (H, W, C) as stored."""
        from convscope.datasets.folders import load_image

        resize = tuple(self.config["resize"]) if self.config["resize"] else None
        image = load_image(path, color=self.config["color"], resize=resize)
        if image.shape != self.input_shape:
            h, w, c = self.input_shape
            fix = "retrain with data.resize set" if image.shape[2] == c else "check data.color of the recipe"
            raise ConvscopeError(f"{path}: image is {'x'.join(map(str, image.shape))} but the model takes "
                                 f"{h}x{w}x{c}; {fix}")
        return image

    def predict_paths(self, inputs: Sequence[str | Path], *, batch_size: int = 64) -> list[Prediction]:
        """Predictions for image files and folders (searched recursively), in sorted path order."""
        from tqdm import tqdm

        files = expand_inputs(inputs)
        results: list[Prediction] = []
        with tqdm(total=len(files), desc="predict", unit="img", disable=len(files) < 256) as bar:
            for start in range(0, len(files), batch_size):
                chunk = files[start : start + batch_size]
                probs = self.predict(np.stack([self.load(p) for p in chunk]), batch_size=batch_size)
                for path, p in zip(chunk, probs, strict=True):
                    k = int(p.argmax())
                    results.append(Prediction(str(path), self.class_names[k], float(p[k]), tuple(map(float, p))))
                bar.update(len(chunk))
        return results


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
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "class", "probability", *(f"p_{name}" for name in class_names)])
    for r in rows:
        writer.writerow([r.path, r.label, f"{r.probability:.6f}", *(f"{p:.6f}" for p in r.probabilities)])
    write_text(out, buf.getvalue())


__all__ = ["Prediction", "Predictor", "expand_inputs", "write_predictions"]

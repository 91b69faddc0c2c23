"""Whole-image semantic segmentation with a trained run: any image size, tiled, no seams."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from convscope.config import NormalizeConfig
from convscope.errors import ConvscopeError
from convscope.inference.tiling import predict_tiled
from convscope.io.atomic import write_text
from convscope.io.image import write_image
from convscope.runs.layout import RunDir
from convscope.runs.runtime import resolve_device
from convscope.tasks.semantic import SemanticTask
from convscope.transforms.normalize import normalization_bounds


@dataclass(frozen=True)
class MaskResult:
    """One image's outputs: its path, the written mask file(s) and the foreground fraction."""

    path: str
    mask: str
    foreground_fraction: float


class Segmenter:
    """A trained semantic-segmentation run with its normalisation, tile size and tuned threshold."""

    def __init__(self, run: RunDir, device: str = "auto", batch_size: int = 4) -> None:
        """``task`` (and so the threshold ``decode`` uses) comes from ``model/config.json``; assign
        ``segmenter.task`` to decode at another threshold."""
        from convscope.training.evaluate import load_trained_model

        self.config = run.read_model_config()
        if self.config["task"] != "semantic":
            raise ConvscopeError(f"{run.path}: a {self.config['task']} run, not a segmentation run")
        self.device = resolve_device(device)
        self.model = load_trained_model(run, self.device)
        self.task = SemanticTask(tuple(self.config["class_names"]), loss_name=self.config.get("loss", "bce_dice"),
                                 threshold=self.config.get("threshold", 0.5))
        self.normalize = NormalizeConfig(**self.config["normalize"])
        self.tile = int(self.config["input_shape"][0])
        self.channels = int(self.config["input_shape"][2])
        self.batch_size = batch_size

    @classmethod
    def from_run(cls, path: str | Path, device: str = "auto", batch_size: int = 4) -> Segmenter:
        return cls(RunDir.open(path), device, batch_size)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities (K, H, W) float32 of ``image`` (H, W, C), any size, not normalised."""
        return self.task.probabilities(torch.from_numpy(self.logits(image)[None]))[0].numpy()

    def segment(self, image: np.ndarray) -> np.ndarray:
        """Class map (H, W) uint8 of ``image`` (H, W, C) at the tuned threshold."""
        return self.decode(self.logits(image))

    def decode(self, logits: np.ndarray) -> np.ndarray:
        """Class map (H, W) uint8 from logits (outputs, H, W), without building probability maps:
        ``sigmoid(z) > t`` is ``z > log(t / (1 - t))``."""
        if self.task.binary:
            t = min(max(self.task.threshold, 1e-6), 1 - 1e-6)
            return (logits[0] > np.log(t / (1 - t))).astype(np.uint8)
        return logits.argmax(0).astype(np.uint8)

    @torch.no_grad()
    def logits(self, image: np.ndarray) -> np.ndarray:
        """Network output (outputs, H, W) float32 of ``image`` (H, W, C), predicted tile by tile."""
        if image.ndim == 2:
            image = image[:, :, None]
        if image.shape[2] != self.channels:
            raise ConvscopeError(f"image has {image.shape[2]} channels; the model takes {self.channels}")
        low, high = normalization_bounds(image[None], self.normalize)
        x = ((image.astype(np.float32) - low[0]) / (high[0] - low[0])).transpose(2, 0, 1)
        return predict_tiled(lambda b: self.model(b.to(self.device)), x, tile=self.tile, overlap=self.tile // 8,
                             batch_size=self.batch_size, out_channels=self.task.num_outputs)

    def segment_paths(self, inputs: Sequence[str | Path], out_dir: str | Path, *, png: bool = False,
                      probabilities: bool = False) -> list[MaskResult]:
        """Segment files and folders; write ``OUT/<stem>_mask.tif`` (class indices, uint8), with ``png``
        also ``<stem>_mask.png`` (binary: 0/255), with ``probabilities`` ``<stem>_prob.tif`` (float32, the
        foreground probability, or (K, H, W) for K classes), and ``OUT/predictions.csv``."""
        from tqdm import tqdm

        from convscope.datasets.folders import load_image
        from convscope.inference.predictor import expand_inputs

        files = expand_inputs(inputs)
        out = Path(out_dir)
        check_out_dir(out, files)
        results = []
        for path in tqdm(files, desc="segment", unit="img", disable=len(files) < 4):
            image = load_image(path, color=self.config.get("color", "auto"))
            logits = self.logits(image)
            labels = self.decode(logits)
            mask_path = out / f"{path.stem}_mask.tif"
            write_image(mask_path, labels)
            if png:
                write_image(out / f"{path.stem}_mask.png", labels * 255 if self.task.binary else labels)
            if probabilities:
                probs = self.task.probabilities(torch.from_numpy(logits[None]))[0].numpy()
                write_image(out / f"{path.stem}_prob.tif", probs[1] if self.task.binary else probs)
            results.append(MaskResult(str(path), str(mask_path), float((labels > 0).mean())))
        _write_csv(out / "predictions.csv", results)
        return results


def check_out_dir(out: Path, files: Sequence[Path]) -> None:
    if out.exists() and not out.is_dir():
        raise ConvscopeError(f"--out {out}: is a file; give a folder for the masks")
    if any(f.resolve().parent == out.resolve() for f in files):
        raise ConvscopeError(f"--out {out}: holds input images; choose another folder (inputs are never overwritten)")
    out.mkdir(parents=True, exist_ok=True)


def _write_csv(path: Path, rows: Sequence[MaskResult]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "mask", "foreground_fraction"])
    for r in rows:
        writer.writerow([r.path, r.mask, f"{r.foreground_fraction:.6f}"])
    write_text(path, buf.getvalue())

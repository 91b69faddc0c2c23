"""Whole-image star-convex instance segmentation with a trained run: any image size, tiled, no cut objects.

The network output (probability and ray distances on the output grid) is predicted tile by tile and blended
(:func:`convscope.inference.tiling.predict_tiled`); non-maximum suppression then runs once on the whole image,
so an object crossing a tile border is one candidate set like any other and is found once, whole.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from convscope.errors import ConvscopeError
from convscope.inference.tiling import predict_tiled
from convscope.io.atomic import write_text
from convscope.io.image import write_image
from convscope.tasks.stardist import StarDistTask
from convscope.training.config import NormalizeConfig
from convscope.training.rundir import RunDir
from convscope.training.runtime import resolve_device
from convscope.transforms.normalize import normalization_bounds


@dataclass(frozen=True)
class LabelResult:
    """One image's outputs: its path, the written label image, the object count and mean area (pixels)."""

    path: str
    labels: str
    count: int
    mean_area: float


@dataclass
class Timings:
    """Seconds spent in the network (tiled prediction) and in post-processing (NMS + drawing), and megapixels."""

    network: float = 0.0
    postprocess: float = 0.0
    megapixels: float = 0.0


class InstanceSegmenter:
    """A trained star-convex run with its normalisation, tile size and tuned thresholds."""

    def __init__(self, run: RunDir, device: str = "auto", batch_size: int = 4) -> None:
        """``task`` (and so the thresholds ``decode`` uses) comes from ``model/config.json``; assign
        ``segmenter.task`` to decode with others."""
        from convscope.training.evaluate import load_trained_model

        self.config = run.read_model_config()
        if self.config["task"] != "stardist":
            raise ConvscopeError(f"{run.path}: a {self.config['task']} run, not a star-convex instance run")
        star, tuned = dict(self.config["stardist"]), self.config.get("thresholds", {})
        star.update(prob_thresh=tuned.get("prob", star["prob_thresh"]), nms_thresh=tuned.get("nms", star["nms_thresh"]))
        self.task = StarDistTask(**star)
        self.device = resolve_device(device)
        self.model = load_trained_model(run, self.device)
        self.normalize = NormalizeConfig(**self.config["normalize"])
        self.tile = int(self.config["input_shape"][0])
        self.channels = int(self.config["input_shape"][2])
        self.batch_size = batch_size
        self.timings = Timings()

    @classmethod
    def from_run(cls, path: str | Path, device: str = "auto", batch_size: int = 4) -> InstanceSegmenter:
        return cls(RunDir.open(path), device, batch_size)

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Object probability (h, w) float32 and ray distances (h, w, n_rays) float32 of ``image`` (H, W[, C]),
        on the output grid (h = ceil(H / grid)), predicted tile by tile."""
        if image.ndim == 2:
            image = image[:, :, None]
        if image.shape[2] != self.channels:
            raise ConvscopeError(f"image has {image.shape[2]} channels; the model takes {self.channels}")
        start = time.perf_counter()
        low, high = normalization_bounds(image[None], self.normalize)
        x = ((image.astype(np.float32) - low[0]) / (high[0] - low[0])).transpose(2, 0, 1)
        g = self.task.grid
        out = predict_tiled(lambda b: self.model(b.to(self.device)), x, tile=self.tile, overlap=self.tile // 4 // g * g,
                            batch_size=self.batch_size, out_channels=self.task.num_outputs, grid=g)
        self.timings.network += time.perf_counter() - start
        self.timings.megapixels += image.shape[0] * image.shape[1] / 1e6
        return self.task.split_output(out)

    def decode(self, prob: np.ndarray, dist: np.ndarray, shape: tuple[int, int], **thresholds: float) -> np.ndarray:
        """Label image (H, W) uint32 from :meth:`predict`'s output (``prob_thresh`` / ``nms_thresh`` override)."""
        start = time.perf_counter()
        labels = self.task.decode(prob, dist, shape, **thresholds)
        self.timings.postprocess += time.perf_counter() - start
        return labels

    def segment(self, image: np.ndarray) -> np.ndarray:
        """Label image (H, W) uint32 of ``image`` (H, W[, C]) at the tuned thresholds; 0 = background."""
        prob, dist = self.predict(image)
        return self.decode(prob, dist, image.shape[:2])

    def segment_paths(self, inputs: Sequence[str | Path], out_dir: str | Path) -> list[LabelResult]:
        """Segment files and folders; write ``OUT/<stem>_labels.tif`` (uint16, uint32 beyond 65,535 objects)
        and ``OUT/predictions.csv`` (path, labels, count, mean_area)."""
        from tqdm import tqdm

        from convscope.datasets.folders import load_image
        from convscope.inference.predictor import expand_inputs
        from convscope.inference.segmenter import check_out_dir

        files = expand_inputs(inputs)
        out = Path(out_dir)
        check_out_dir(out, files)
        results = []
        for path in tqdm(files, desc="segment", unit="img", disable=len(files) < 4):
            labels = compact_dtype(self.segment(load_image(path, color=self.config.get("color", "auto"))))
            label_path = out / f"{path.stem}_labels.tif"
            write_image(label_path, labels)
            areas = np.bincount(labels.ravel())[1:]
            areas = areas[areas > 0]
            results.append(LabelResult(str(path), str(label_path), len(areas),
                                       float(areas.mean()) if len(areas) else 0.0))
        _write_csv(out / "predictions.csv", results)
        return results


def compact_dtype(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint16 when its largest id fits, else uint32."""
    return labels.astype(np.uint16) if labels.max(initial=0) <= np.iinfo(np.uint16).max else labels.astype(np.uint32)


def _write_csv(path: Path, rows: Sequence[LabelResult]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path", "labels", "count", "mean_area"])
    for r in rows:
        writer.writerow([r.path, r.labels, r.count, f"{r.mean_area:.2f}"])
    write_text(path, buf.getvalue())

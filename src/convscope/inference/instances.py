"""Whole-image instance segmentation (star-convex or flows) with a trained run: any image size, tiled, no cut
objects.

The network output (probability and ray distances on the output grid, or flows and cell probability) is predicted
tile by tile and blended (:func:`convscope.inference.tiling.predict_tiled`); decoding (non-maximum suppression, or
following the flows) then runs once on the whole image, so an object crossing a tile border is found once, whole.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from convscope.config import NormalizeConfig
from convscope.errors import ConvscopeError
from convscope.inference.rescale import RescaledLabels, segment_at_diameter
from convscope.inference.tiling import predict_tiled
from convscope.io.atomic import write_text
from convscope.io.image import write_image
from convscope.runs.layout import RunDir
from convscope.runs.runtime import resolve_device
from convscope.tasks.instances import instance_task
from convscope.transforms.normalize import normalization_bounds


@dataclass(frozen=True)
class LabelResult:
    """One image's outputs: its path, the written label image, the object count and mean area (pixels), and when
    rescaled the object diameter used (pixels) and the scale factor applied."""

    path: str
    labels: str
    count: int
    mean_area: float
    diameter: float | None = None
    scale: float | None = None


@dataclass
class Timings:
    """Seconds spent in the network (tiled prediction) and in post-processing (NMS and drawing, or flow
    dynamics), and megapixels."""

    network: float = 0.0
    postprocess: float = 0.0
    megapixels: float = 0.0


class InstanceSegmenter:
    """A trained instance run (star-convex or flows) with its normalisation, tile size and tuned thresholds."""

    def __init__(self, run: RunDir, device: str = "auto", batch_size: int = 4) -> None:
        """``task`` (and so the thresholds ``decode`` uses) comes from ``model/config.json``; assign
        ``segmenter.task`` to decode with others."""
        from convscope.training.evaluate import load_trained_model

        device_ = resolve_device(device)
        self._setup(run.read_model_config(), lambda: load_trained_model(run, device_), device_, batch_size,
                    str(run.path))

    @classmethod
    def from_pretrained(cls, name: str, device: str = "auto", batch_size: int = 4) -> InstanceSegmenter:
        """The built-in model ``name`` (:func:`convscope.pretrained.get_pretrained`, sha256 checked)."""
        from convscope.pretrained import get_pretrained

        model = get_pretrained(name)
        device_ = resolve_device(device)
        segmenter = cls.__new__(cls)
        segmenter._setup(model.model_config, lambda: model.build().to(device_), device_, batch_size, name)
        segmenter.pretrained = model
        return segmenter

    def _setup(self, config: dict, build: Callable[[], torch.nn.Module], device: torch.device,
               batch_size: int, source: str) -> None:
        self.config = config
        self.pretrained = None
        try:
            self.task = instance_task(self.config)
        except ConvscopeError as err:
            raise ConvscopeError(f"{source}: {err}") from None
        self.device = device
        self.model = build()
        self.normalize = NormalizeConfig(**self.config["normalize"])
        self.tile = int(self.config["input_shape"][0])
        self.channels = int(self.config["input_shape"][2])
        self.batch_size = batch_size
        self.timings = Timings()

    @classmethod
    def from_run(cls, path: str | Path, device: str = "auto", batch_size: int = 4) -> InstanceSegmenter:
        return cls(RunDir.open(path), device, batch_size)

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> tuple[np.ndarray, ...]:
        """The task's prediction of ``image`` (H, W[, C]), predicted tile by tile: object probability (h, w) float32
        and ray distances (h, w, n_rays) float32 on the output grid (h = ceil(H / grid)) for star-convex runs;
        flows (2, H, W), cell probability (H, W) [and distance (H, W)] float32 for flow runs."""
        if image.ndim == 2:
            image = image[:, :, None]
        if image.shape[2] != self.channels:
            raise ConvscopeError(f"image has {image.shape[2]} channels; the model takes {self.channels}")
        start = time.perf_counter()
        low, high = normalization_bounds(image[None], self.normalize)
        x = ((image.astype(np.float32) - low[0]) / (high[0] - low[0])).transpose(2, 0, 1)
        out = self._with_flips(x) if self.task.tta else self._network(x)
        self.timings.network += time.perf_counter() - start
        self.timings.megapixels += image.shape[0] * image.shape[1] / 1e6
        return self.task.split_output(out)

    def _network(self, x: np.ndarray) -> np.ndarray:
        """Network output (num_outputs, ceil(H / grid), ceil(W / grid)) float32 of a normalised image (C, H, W)."""
        g = self.task.grid
        return predict_tiled(lambda b: self.model(b.to(self.device)), x, tile=self.tile,
                             overlap=self.tile // 4 // g * g, batch_size=self.batch_size,
                             out_channels=self.task.num_outputs, grid=g)

    def _with_flips(self, x: np.ndarray) -> np.ndarray:
        """Test-time augmentation: the mean network output of the image and its three flips, each mapped back
        (:meth:`unflip` of the task). The image is first padded with background to a size ``1 + k * grid``, so
        that its output grid is the same flipped or not."""
        g = self.task.grid
        h, w = x.shape[-2:]
        pad_h, pad_w = (-(h - 1)) % g, (-(w - 1)) % g
        x = np.pad(x, ((0, 0), (0, pad_h), (0, pad_w)))
        total = None
        for axes in ((), (-1,), (-2,), (-2, -1)):
            out = self._network(np.ascontiguousarray(np.flip(x, axes)) if axes else x)
            for axis in axes:
                out = self.task.unflip(out, axis)
            total = out if total is None else total + out
        return (total / 4)[:, : -(-h // g), : -(-w // g)]

    def decode(self, pred: tuple[np.ndarray, ...], shape: tuple[int, int]) -> np.ndarray:
        """Label image (H, W) uint32 from :meth:`predict`'s output, at the thresholds of ``self.task``."""
        start = time.perf_counter()
        labels = self.task.decode(pred, shape)
        self.timings.postprocess += time.perf_counter() - start
        return labels

    def segment(self, image: np.ndarray) -> np.ndarray:
        """Label image (H, W) uint32 of ``image`` (H, W[, C]) at the tuned thresholds; 0 = background."""
        return self.decode(self.predict(image), image.shape[:2])

    def segment_paths(self, inputs: Sequence[str | Path], out_dir: str | Path, *, diameter: float | None = None,
                      auto_diameter: bool = False, log: Callable[[str], None] | None = None) -> list[LabelResult]:
        """Segment files and folders; write ``OUT/<stem>_labels.tif`` (uint16, uint32 beyond 65,535 objects)
        and ``OUT/predictions.csv`` (path, labels, count, mean_area[, diameter, scale]).

        ``diameter`` (pixels) or ``auto_diameter`` (estimate it per image from a first pass) rescale each image
        so that its objects match the model's training diameter (:meth:`segment_at_diameter`; built-in models).
        """
        from tqdm import tqdm

        from convscope.datasets.folders import load_image
        from convscope.inference.predictor import expand_inputs
        from convscope.inference.segmenter import check_out_dir

        files = expand_inputs(inputs)
        out = Path(out_dir)
        check_out_dir(out, files)
        rescale = diameter is not None or auto_diameter
        results = []
        for path in tqdm(files, desc="segment", unit="img", disable=len(files) < 4):
            image = load_image(path, color=self.input_color)
            used = None
            if rescale:
                found = self.segment_at_diameter(image, diameter=diameter)
                labels, used = compact_dtype(found.labels), (found.diameter, found.scale)
                if log is not None:
                    how = "estimated" if found.estimated else "given"
                    log(f"{path.name}: diameter {found.diameter:.1f} px ({how}), image scaled by {found.scale:.3g}")
            else:
                labels = compact_dtype(self.segment(image))
            label_path = out / f"{path.stem}_labels.tif"
            write_image(label_path, labels)
            areas = np.bincount(labels.ravel())[1:]
            areas = areas[areas > 0]
            results.append(LabelResult(str(path), str(label_path), len(areas),
                                       float(areas.mean()) if len(areas) else 0.0,
                                       *(used if used else (None, None))))
        _write_csv(out / "predictions.csv", results)
        return results

    @property
    def input_color(self) -> str:
        """How files are read: the run's ``color``; for a built-in model trained with ``auto``, grey for one input
        channel and RGB for three (its card says which it takes)."""
        color = self.config.get("color", "auto")
        if color == "auto" and self.pretrained is not None:
            return {1: "gray", 3: "rgb"}.get(self.channels, "auto")
        return color

    @property
    def model_diameter(self) -> float | None:
        """Median object diameter (pixels) of the training data, for built-in models (their card)."""
        return self.pretrained.diameter if self.pretrained is not None else None

    def segment_at_diameter(self, image: np.ndarray, *, diameter: float | None = None) -> RescaledLabels:
        """Labels (H, W) uint32 of ``image`` with its objects rescaled from ``diameter`` (pixels; estimated from
        a first pass when ``None``) to the model's training diameter (:func:`~convscope.inference.rescale.
        segment_at_diameter`)."""
        if self.model_diameter is None:
            raise ConvscopeError("diameter: this model records no training diameter (only built-in models do); "
                                 "resize your images instead")
        return segment_at_diameter(self, image, model_diameter=self.model_diameter, diameter=diameter)


def compact_dtype(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint16 when its largest id fits, else uint32."""
    return labels.astype(np.uint16) if labels.max(initial=0) <= np.iinfo(np.uint16).max else labels.astype(np.uint32)


def _write_csv(path: Path, rows: Sequence[LabelResult]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    sized = any(r.diameter is not None for r in rows)
    writer.writerow(["path", "labels", "count", "mean_area"] + (["diameter", "scale"] if sized else []))
    for r in rows:
        extra = [f"{r.diameter:.2f}", f"{r.scale:.4f}"] if sized and r.diameter is not None else []
        writer.writerow([r.path, r.labels, r.count, f"{r.mean_area:.2f}", *extra])
    write_text(path, buf.getvalue())

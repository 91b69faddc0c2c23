"""One predictor for every task: a trained run applied to images of any size.

A classifier sees the whole image (batches of images of its input size). A dense task (semantic, star-convex,
flows) is predicted tile by tile with smooth blending (:func:`convscope.inference.tiling.predict_tiled`, tiles of
the training patch overlapping by :attr:`TrainedRun.overlap`), optionally with test-time flips; the task then turns
the network output into its prediction (:meth:`Task.split_output`) and the prediction into the result at its
thresholds (:meth:`Task.decode`), once on the whole image, so an object crossing a tile border is found once, whole.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convscope.errors import ConvscopeError
from convscope.inference.backends import Backend, OnnxRunner, onnx_runner, resolve_backend
from convscope.inference.tiling import fitted_tile, predict_tiled
from convscope.runs import TrainedRun, load_run
from convscope.tasks import Task
from convscope.transforms.normalize import normalize_image

#: The largest tile side ``convscope predict`` and :func:`convscope.predict` use unless told otherwise
#: (``Predictor(tile=...)``; BENCHMARKS.md, "Star-convex prediction paths").
PREDICT_TILE = 1024


def predict_tile(tile: int | None) -> int | None:
    """``Predictor``'s ``tile`` for a ``--tile`` option: None (not given) is :data:`PREDICT_TILE`, 0 the training
    patch."""
    if tile is None:
        return PREDICT_TILE
    if tile < 0:
        raise ConvscopeError(f"--tile {tile}: give the largest tile side in pixels, or 0 for the training patch")
    return tile or None


@dataclass
class Timings:
    """Seconds spent in the network (tiled prediction) and in decoding (thresholds, NMS and drawing, or flow
    dynamics), and the megapixels predicted."""

    network: float = 0.0
    postprocess: float = 0.0
    megapixels: float = 0.0


class Predictor:
    """A trained run with its normalisation, tiling and task.

    Parameters
    ----------
    run : TrainedRun
        From :func:`convscope.runs.load_run`.
    batch_size : int
        Images (classification) or tiles (dense tasks) per forward pass.
    backend : {"torch", "onnxruntime", "auto"}
        What runs the network (:mod:`convscope.inference.backends`): torch eagerly on the run's device, an ONNX
        Runtime session on the CPU (the ``onnx`` extra; the graph is traced on first use and cached), or ``auto``:
        ONNX Runtime on the CPU when installed, else torch (``convscope predict``'s default). The backend used is
        :attr:`backend`.
    tile : int, optional
        Largest tile side (pixels) a dense task's image is predicted in: each axis is cut into as few tiles of at
        most this side as possible, each as small as that allows (:func:`~convscope.inference.tiling.fitted_tile`;
        a multiple of the network's size multiple, at least the training patch), overlapping by
        :attr:`TrainedRun.overlap`. Fewer, larger tiles spend less time on overlaps; the batch then holds fewer
        tiles, so that a batch has at most ``batch_size`` training patches' worth of pixels (or one tile). None
        (default): tiles of the training patch (:attr:`TrainedRun.tile`); ``convscope predict`` uses
        :data:`PREDICT_TILE`.

    Attributes
    ----------
    task : Task
        The run's task with its tuned thresholds; assign ``predictor.task = predictor.task.with_thresholds({...})``
        to decode the same predictions with others (no network pass).
    timings : Timings
        Running totals of :meth:`predict` and :meth:`decode`.
    progress : callable or None
        Called as ``progress(done_tiles, total_tiles)`` while a dense task's image is predicted (the four flips of
        test-time augmentation count as four passes over the tiles); the CLI draws a bar from it.

    Examples
    --------
    >>> predictor = Predictor.from_run("runs/nuclei")            # doctest: +SKIP
    >>> labels = predictor.segment(image)  # (H, W) uint16 -> (H, W) uint32 label image
    """

    def __init__(self, run: TrainedRun, *, batch_size: int = 4, backend: Backend = "torch",
                 tile: int | None = None) -> None:
        if tile is not None and tile < 1:
            raise ConvscopeError(f"tile {tile}: give the largest tile side in pixels, a positive number")
        self.run = run
        self.task: Task = run.task
        self.batch_size = batch_size
        self.tile = tile
        self.backend = resolve_backend(backend, run.device)
        self.timings = Timings()
        self._onnx: OnnxRunner | None = None
        self.progress: Callable[[int, int], None] | None = None

    @classmethod
    def from_run(cls, source: str | Path, *, device: str = "auto", batch_size: int = 4,
                 backend: Backend = "torch", tile: int | None = None) -> Predictor:
        """A predictor of the run directory ``source``."""
        return cls(load_run(source, device=device), batch_size=batch_size, backend=backend, tile=tile)

    @property
    def model(self) -> torch.nn.Module:
        return self.run.model

    def normalized(self, image: np.ndarray) -> np.ndarray:
        """``image`` (H, W) or (H, W, C), not normalised, as the network's input (C, H, W) float32."""
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] != self.run.channels:
            found = image.shape[2] if image.ndim == 3 else f"shape {image.shape}"
            raise ConvscopeError(f"image has {found} channels; the model takes {self.run.channels} (convert it, "
                                 "or pass --color / --channels)")
        return normalize_image(image, self.run.normalize)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.backend == "onnxruntime":
            if self._onnx is None:
                # traced at the training input size whatever the first batch is (height and width stay dynamic),
                # so that one cached graph serves every tile size
                example = torch.zeros(1, batch.shape[1], *self.run.input_shape[:2])
                self._onnx = onnx_runner(self.model, example, grid=self.task.grid)
            return self._onnx(batch)
        return self.model(batch.to(self.run.device))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Normalised tiles (B, C, h, w) float32 through the network: (B, num_outputs, h / grid, w / grid)."""
        return self._forward(batch)

    @torch.no_grad()
    def network(self, image: np.ndarray) -> np.ndarray:
        """The raw network output of one image: (num_outputs,) float32 for a classifier, else (num_outputs,
        ceil(H / grid), ceil(W / grid)) float32, tiled, and with the four flips averaged when ``task.tta``."""
        x = self.normalized(image)
        if self.task.kind == "classification":
            return self._classify(x[None])[0]
        return self._with_flips(x) if self.task.tta else self._tiled(x)

    def _classify(self, x: np.ndarray) -> np.ndarray:
        """Logits (N, num_outputs) float32 of normalised images (N, C, H, W) of the model's input size."""
        if tuple(x.shape[2:]) != self.run.input_shape[:2]:
            h, w = self.run.input_shape[:2]
            raise ConvscopeError(f"image is {x.shape[2]}x{x.shape[3]} but the model takes {h}x{w}; resize it (the "
                                 "recipe's data.resize is applied to files)")
        return self._forward(torch.from_numpy(np.ascontiguousarray(x))).float().cpu().numpy()

    def _tiled(self, x: np.ndarray, *, passes: tuple[int, int] = (0, 1)) -> np.ndarray:
        """Tiled network output of ``x``; ``passes`` = (this pass, number of passes) for :attr:`progress`."""
        g = self.task.grid
        report = self.progress
        done_before, n_passes = passes

        def tiles_done(done: int, total: int) -> None:
            if report is not None:
                report(done_before * total + done, n_passes * total)

        th, tw = self.tile_sides(x.shape[-2:])
        batch = max(1, self.batch_size * self.run.tile**2 // (th * tw))
        return predict_tiled(self._forward, x, tile=(th, tw), overlap=self.run.overlap,
                             batch_size=batch, out_channels=self.task.num_outputs, grid=g,
                             progress=tiles_done if report is not None else None)

    def tile_sides(self, shape: tuple[int, int]) -> tuple[int, int]:
        """(height, width) of the tiles an image of ``shape`` (H, W) is predicted in (see ``tile``)."""
        if self.tile is None:
            return self.run.tile, self.run.tile
        m = math.lcm(int(getattr(self.model, "size_multiple", 1)), self.task.grid)
        h, w = (fitted_tile(int(s), self.run.tile, self.tile, self.run.overlap, m) for s in shape)
        return h, w

    def _with_flips(self, x: np.ndarray) -> np.ndarray:
        """Test-time augmentation: the mean network output of the image and its three flips, each mapped back
        (:meth:`Task.unflip`). The image is first padded with background to a size ``1 + k * grid``, so that its
        output grid is the same flipped or not."""
        g = self.task.grid
        h, w = x.shape[-2:]
        x = np.pad(x, ((0, 0), (0, (-(h - 1)) % g), (0, (-(w - 1)) % g)))
        total = None
        for i, axes in enumerate(((), (-1,), (-2,), (-2, -1))):
            out = self._tiled(np.ascontiguousarray(np.flip(x, axes)) if axes else x, passes=(i, 4))
            for axis in axes:
                out = self.task.unflip(out, axis)
            total = out if total is None else total + out
        return (total / 4)[:, : -(-h // g), : -(-w // g)]

    def predict(self, image: np.ndarray) -> Any:
        """The task's prediction of ``image`` (H, W[, C]): logits (classification), logits (num_outputs, H, W)
        (semantic), object probability (h, w) and ray distances (h, w, n_rays) on the output grid (star-convex),
        flows (2, H, W), cell probability (H, W) [and distance (H, W)] (flows); all float32."""
        start = time.perf_counter()
        out = self.network(image)
        self.timings.network += time.perf_counter() - start
        self.timings.megapixels += image.shape[0] * image.shape[1] / 1e6
        return self.task.split_output(out)

    def predict_many(self, images: Sequence[np.ndarray]) -> list[Any]:
        """:meth:`predict` of every image; a classifier's images go through the network ``batch_size`` at a
        time."""
        if self.task.kind != "classification":
            return [self.predict(image) for image in images]
        preds: list[Any] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            with torch.no_grad():
                logits = self._classify(np.stack([self.normalized(image) for image in chunk]))
            preds += [self.task.split_output(z) for z in logits]
        return preds

    def decode(self, pred: Any, shape: tuple[int, int]) -> np.ndarray:
        """The result of :meth:`predict`'s output for an image of ``shape`` (H, W) at the thresholds of
        ``self.task``: class probabilities (K,) float32, a class map (H, W) uint8 or a label image (H, W) uint32."""
        start = time.perf_counter()
        result = self.task.decode(pred, shape)
        self.timings.postprocess += time.perf_counter() - start
        return result

    def segment(self, image: np.ndarray) -> np.ndarray:
        """:meth:`decode` of :meth:`predict` of ``image`` (H, W[, C]), not normalised."""
        return self.decode(self.predict(image), image.shape[:2])

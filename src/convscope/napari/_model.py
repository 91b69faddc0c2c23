"""The one place the plugin touches the prediction API: a trained run loaded for the viewer.

Until the unified API (``convscope.runs.load_run`` + ``convscope.inference.Predictor``) lands, this module wraps
the three predictor classes behind the same method names (``predict`` -> cached raw prediction, ``decode`` ->
label image, ``task`` with ``thresholds`` / ``with_thresholds``); switching is the body of :func:`load_model`.
No napari or Qt import here: the widgets are thin over this.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import import_module
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convscope.errors import ConvscopeError
from convscope.inference.instances import InstanceSegmenter
from convscope.inference.predictor import Predictor
from convscope.inference.segmenter import Segmenter
from convscope.runs.layout import RunDir
from convscope.transforms.normalize import NormalizeConfig, normalization_bounds

Pred = tuple[np.ndarray, ...]


def builtin_models() -> list[str]:
    """Names of the built-in pretrained models (empty until ``convscope.pretrained`` exists)."""
    try:
        pretrained = import_module("convscope.pretrained")
    except ImportError:
        return []
    return list(pretrained.list_pretrained())


@dataclass
class LoadedModel:
    """A trained run ready to predict images from the viewer.

    Attributes
    ----------
    path : Path
        The run directory (or the built-in model's folder).
    task : str
        ``classification``, ``semantic``, ``stardist`` or ``flows``.
    backend : InstanceSegmenter, Segmenter or Predictor
        The predictor of the run (its ``task`` carries the decoding thresholds).
    """

    path: Path
    task: str
    backend: Any

    @property
    def thresholds(self) -> dict[str, float]:
        """Current decoding thresholds by name (``prob``/``nms``, ``prob``/``flow``, ``threshold``; none for
        classification)."""
        if self.task in ("stardist", "flows"):
            return dict(self.backend.task.thresholds)
        if self.task == "semantic" and self.backend.task.binary:
            return {"threshold": float(self.backend.task.threshold)}
        return {}

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """Decode with ``thresholds`` from now on (the network is not run again)."""
        if self.task in ("stardist", "flows"):
            self.backend.task = self.backend.task.with_thresholds(thresholds)
        elif self.task == "semantic" and "threshold" in thresholds:
            self.backend.task = replace(self.backend.task, threshold=float(thresholds["threshold"]))

    @property
    def normalize(self) -> NormalizeConfig:
        return self.backend.normalize

    @property
    def channels(self) -> int:
        return int(self.backend.config["input_shape"][2])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.backend.config["class_names"])

    @property
    def grid(self) -> int:
        """Output subsampling of the raw prediction (star-convex runs: ``stardist.grid``; else 1)."""
        return int(getattr(self.backend.task, "grid", 1)) if self.task == "stardist" else 1

    @property
    def network(self) -> torch.nn.Module:
        """The torch module, in eval mode."""
        return self.backend.model

    def describe_normalization(self) -> str:
        """The normalisation the model was trained with, in words."""
        n = self.normalize
        if n.mode == "percentile":
            return f"percentile {n.low:g}-{n.high:g} per image"
        if n.mode == "scale":
            return f"divide by {n.max_value:g}" if n.max_value else "divide by the dtype maximum"
        return "none (float32 as is)"

    def predict(self, image: np.ndarray) -> Pred:
        """Raw prediction of one 2-D image (H, W[, C]), to cache: star-convex (prob (h, w), dist (h, w, R));
        flows (flows (2, H, W), prob (H, W)[, dist]); semantic (logits (K, H, W),); classification
        (probabilities (n_classes,),)."""
        image = self._channels(image)
        if self.task in ("stardist", "flows"):
            return tuple(self.backend.predict(image))
        if self.task == "semantic":
            return (self.backend.logits(image),)
        return (self.backend.predict(image[None])[0],)

    def decode(self, pred: Pred, shape: tuple[int, int]) -> np.ndarray:
        """Label image (H, W): uint32 instance ids, or uint8 class map (semantic); classification: the class
        index as a 0-d array."""
        if self.task in ("stardist", "flows"):
            return self.backend.decode(pred, shape)
        if self.task == "semantic":
            return self.backend.decode(pred[0])
        return np.asarray(int(np.argmax(pred[0])))

    def probability(self, pred: Pred) -> np.ndarray | None:
        """Foreground / object probability (h, w) float32 of a prediction (on the output grid), if any."""
        if self.task == "stardist":
            return pred[0]
        if self.task == "flows":
            return pred[1]
        if self.task == "semantic":
            probs = self.backend.task.probabilities(torch.from_numpy(pred[0][None]))[0].numpy()
            return probs[1] if probs.shape[0] == 2 else probs[1:].max(0)
        return None

    def normalized(self, image: np.ndarray) -> torch.Tensor:
        """``image`` (H, W[, C]) normalised as in training: (1, C, H, W) float32."""
        image = self._channels(image)
        low, high = normalization_bounds(image[None], self.normalize)
        x = (image.astype(np.float32) - low[0]) / (high[0] - low[0])
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]

    def _channels(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3:
            raise ConvscopeError(f"an image of shape {image.shape}; give a 2-D image (or a stack, plane by plane)")
        if image.shape[2] != self.channels and self.channels == 1 and image.shape[2] in (3, 4):
            image = image[:, :, :3].mean(2, keepdims=True).astype(image.dtype)  # RGB(A) -> grey, as training did
        if image.shape[2] != self.channels:
            raise ConvscopeError(f"the image has {image.shape[2]} channels but the model takes {self.channels}; "
                                 "pick another image layer or model")
        return image


def load_model(name_or_path: str | Path, *, device: str = "auto") -> LoadedModel:
    """A run directory (or a built-in model's name) loaded for prediction.

    Raises
    ------
    ConvscopeError
        When ``name_or_path`` is neither a finished run directory nor a built-in model.
    """
    if str(name_or_path) in builtin_models():
        name_or_path = import_module("convscope.runs").load_run(str(name_or_path)).path  # the built-in's folder
    run = RunDir.open(name_or_path)
    task = run.read_model_config()["task"]
    backend: Any
    if task in ("stardist", "flows"):
        backend = InstanceSegmenter(run, device)
    elif task == "semantic":
        backend = Segmenter(run, device)
    else:
        backend = Predictor(run, device)
    return LoadedModel(Path(name_or_path), task, backend)

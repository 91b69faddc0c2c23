"""The one place the plugin touches the prediction API: a trained run (:func:`convscope.runs.load_run`) with its
:class:`convscope.inference.Predictor`, loaded for the viewer (``predict`` -> cached raw prediction, ``decode`` ->
label image at the task's thresholds, which ``set_thresholds`` changes without a network pass). No napari or Qt
import here: the widgets are thin over this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convscope.errors import ConvscopeError
from convscope.inference import Predictor
from convscope.inference.inputs import InputPreparation
from convscope.inference.outputs import input_preparation
from convscope.inference.rescale import diameter_scale, rescaled_shape, resize_image
from convscope.pretrained import list_pretrained
from convscope.runs import load_run
from convscope.transforms.normalize import NormalizeConfig, normalization_bounds

Pred = tuple[np.ndarray, ...]


def builtin_models() -> list[str]:
    """Names of the built-in pretrained models (``convscope models --pretrained``)."""
    return [model.name for model in list_pretrained()]


@dataclass(frozen=True)
class Size:
    """The size an image was predicted at, brought to the model's training object size.

    Attributes
    ----------
    shape : tuple of int
        (h, w) of the image the network saw.
    diameter : float or None
        The object diameter (pixels) used; None for a model that records no training diameter.
    estimated : bool
        Whether ``diameter`` was estimated (:func:`~convscope.inference.rescale.diameter_scale`).
    scale : float
        The factor the image was resized by.
    """

    shape: tuple[int, int]
    diameter: float | None
    estimated: bool
    scale: float


@dataclass
class LoadedModel:
    """A trained run ready to predict images from the viewer.

    Attributes
    ----------
    path : Path
        The run directory (or the built-in model's folder).
    task : str
        ``classification``, ``semantic``, ``stardist`` or ``flows``.
    backend : Predictor
        The predictor of the run (its ``task`` carries the decoding thresholds).
    inputs : InputPreparation
        How an image becomes the network's input, as `convscope predict` makes a file's: channels (RGB to grey
        by luminance, grey to RGB), a classifier's ``data.resize`` and input size.
    """

    path: Path
    task: str
    backend: Any
    inputs: InputPreparation

    @property
    def thresholds(self) -> dict[str, float]:
        """Current decoding thresholds by name (``prob``/``nms``, ``prob``/``flow``, ``prob`` of a binary semantic
        run; none for classification)."""
        return dict(self.backend.task.thresholds)

    def set_thresholds(self, thresholds: dict[str, float]) -> None:
        """Decode with ``thresholds`` from now on (the network is not run again)."""
        self.backend.task = self.backend.task.with_thresholds(thresholds)

    @property
    def normalize(self) -> NormalizeConfig:
        return self.backend.run.normalize

    @property
    def channels(self) -> int:
        return self.backend.run.channels

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.backend.run.class_names

    @property
    def grid(self) -> int:
        """Output subsampling of the raw prediction (star-convex runs: ``stardist.grid``; else 1)."""
        return int(self.backend.task.grid)

    @property
    def network(self) -> torch.nn.Module:
        """The torch module, in eval mode."""
        return self.backend.model

    @property
    def diameter(self) -> float | None:
        """Median object diameter (pixels) of the training data, for models that record it (built-in ones)."""
        return self.backend.run.diameter

    def sized(self, image: np.ndarray, diameter: float | None = None) -> tuple[np.ndarray, Size]:
        """``image`` (H, W[, C]) resized so that objects of ``diameter`` pixels (None: estimated)
        match the model's training size (unchanged for models that record no training diameter), and its size."""
        if self.diameter is None:
            return image, Size(image.shape[:2], None, False, 1.0)
        used, estimated, scale, _ = diameter_scale(self, image, model_diameter=self.diameter, diameter=diameter)
        resized = image if scale == 1.0 else resize_image(image, rescaled_shape(image.shape, scale))
        return resized, Size(resized.shape[:2], used, estimated, scale)

    def segment(self, image: np.ndarray) -> np.ndarray:
        """Labels (H, W) of ``image`` at the current thresholds (prediction + decoding)."""
        return self.decode(self.predict(image), image.shape[:2])

    def describe_normalization(self) -> str:
        """The normalisation the model was trained with, in words."""
        n = self.normalize
        if n.mode == "percentile":
            return f"percentile {n.low:g}-{n.high:g} per image"
        if n.mode == "scale":
            return f"divide by {n.max_value:g}" if n.max_value else "divide by the dtype maximum"
        return "none (float32 as is)"

    def predict(self, image: np.ndarray, source: str = "the image") -> Pred:
        """Raw prediction of one 2-D image (H, W[, C]), to cache: star-convex (prob (h, w), dist (h, w, R));
        flows (flows (2, H, W), prob (H, W)[, dist]); semantic (logits (K, H, W),); classification
        (logits (n_outputs,),). ``source`` names the image in errors."""
        pred = self.backend.predict(self._channels(image, source))
        return tuple(pred) if isinstance(pred, tuple) else (pred,)

    def decode(self, pred: Pred, shape: tuple[int, int]) -> np.ndarray:
        """Label image (H, W): uint32 instance ids, or uint8 class map (semantic); classification: the class
        index as a 0-d array."""
        if self.task == "classification":
            return np.asarray(int(np.argmax(self.class_probabilities(pred))))
        return self.backend.decode(pred if len(pred) > 1 else pred[0], shape)

    def class_probabilities(self, pred: Pred) -> np.ndarray:
        """Class probabilities (n_classes,) float32 of a classifier's prediction (they sum to 1)."""
        return self.backend.decode(pred[0], (0, 0))

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

    def _channels(self, image: np.ndarray, source: str = "the image") -> np.ndarray:
        """(H, W, C) as the network takes it (see :attr:`inputs`)."""
        image = np.asarray(image)
        if image.ndim not in (2, 3):
            raise ConvscopeError(f"{source}: an image of shape {image.shape}; give a 2-D image (or a stack, plane "
                                 "by plane)")
        return self.inputs.fit(image, source)


def class_result(names: Sequence[str], probabilities: Sequence[float]) -> dict[str, Any]:
    """``{"class": name, "probabilities": {name: p}}`` of class probabilities (n_classes,), as an image layer's
    ``metadata["convscope"]`` records a classifier's result."""
    k = int(np.argmax(probabilities))
    return {"class": names[k], "probabilities": dict(zip(names, map(float, probabilities), strict=True))}


def load_model(name_or_path: str | Path, *, device: str = "auto") -> LoadedModel:
    """A run directory (or a built-in model's name) loaded for prediction.

    Raises
    ------
    ConvscopeError
        When ``name_or_path`` is neither a finished run directory nor a built-in model.
    """
    trained = load_run(name_or_path, device=device)
    predictor = Predictor(trained)
    return LoadedModel(trained.path, trained.task.name, predictor, input_preparation(predictor))

"""The task contract: what differs between classification, semantic segmentation and instance segmentation.

A task knows how to turn ground truth into training targets, how many output channels the network's head needs,
its loss and epoch metrics, how to turn one image's network output into a result (class probabilities, a class
map, a label image), which thresholds it tunes on validation and how a split is judged. Training, evaluation,
prediction, the report and the CLI are written once, for any :class:`Task`; nothing outside ``tasks/`` dispatches
on the kind of task.

Adding a task
-------------
Write one module in ``tasks/`` with a class that satisfies :class:`Task` (a recipe section of its own, if it has
settings, as its ``section``: a :class:`convscope.sections.Section` whose fields are the task's options), and add
one line to :data:`convscope.tasks.TASKS`. Its ``kind`` says what its result is and so how the data are loaded,
the outputs written and the report drawn: ``"classification"`` (a class per image), ``"semantic"`` (a class per
pixel) or ``"instances"`` (a label image).

One image's network output is ``(num_outputs,)`` for a classification task and ``(num_outputs, ceil(H / grid),
ceil(W / grid))`` for a dense one; :meth:`Task.split_output` turns it into the task's *prediction*, which
:meth:`Task.decode` turns into the result at the task's thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch

from convscope.sections import Section

Kind = Literal["classification", "semantic", "instances"]
Activation = Literal["identity", "sigmoid", "softmax", "sigmoid_pair"]


@dataclass(frozen=True)
class ExportedOutput:
    """One output tensor of an exported network (ONNX, TorchScript, bioimage.io): a range of the raw output
    channels, turned into values a user can read without convscope.

    Attributes
    ----------
    name : str
        The tensor's name, e.g. ``"probability"``, ``"distances"``, ``"flows"``.
    channels : tuple of str
        A name per channel of the exported tensor.
    start, stop : int
        The raw output channels ``[start, stop)`` it is made of.
    activation : {"identity", "sigmoid", "softmax", "sigmoid_pair"}
        Applied to those channels: ``softmax`` along the channels, ``sigmoid_pair`` turns one logit into the
        two probabilities ``(1 - p, p)``.
    scale : float
        Multiplies the channels after the activation (flows: ``1 / flow_scale``, giving pixels per step).
    description : str
        What the values are and how convscope decodes them, for the package's README and rdf.
    """

    name: str
    channels: tuple[str, ...]
    start: int
    stop: int
    activation: Activation = "identity"
    scale: float = 1.0
    description: str = ""


@dataclass(frozen=True)
class SplitResult:
    """How a task judged one split.

    Attributes
    ----------
    kind : {"classification", "semantic", "instances"}
        The task's kind: which layout ``metrics`` has and which report section draws it.
    metrics : dict
        The split's entry in ``metrics.json`` (classification: accuracy, loss, per-class P/R/F1, confusion
        matrix; semantic: Dice, IoU, pixel accuracy, per image; instances: matching at IoU 0.1 ... 0.9, per image).
    examples : list of dict
        The images the report shows: the most confident mistakes (classification), or the worst and best images
        (segmentation: ``image``, ``true_mask``/``pred_mask`` or ``true_labels``/``pred_labels``, ``name``,
        scores, ``group``).
    summary : str
        One line for the log, e.g. ``"accuracy 0.9876  loss 0.0412  (2,000 images)"``.
    """

    kind: Kind
    metrics: dict[str, Any]
    examples: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""


class Task(Protocol):
    """What training, evaluation and prediction ask of a task (see the module docstring)."""

    name: str
    kind: Kind
    class_names: tuple[str, ...]
    #: The task's recipe section (its options), or None when it has none.
    section: type[Section] | None

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Epoch metrics besides the loss (history columns ``train_<m>``, ``val_<m>``)."""
        ...

    @property
    def grid(self) -> int:
        """Output subsampling of a dense task (1 = every pixel); 1 for classification."""
        ...

    @property
    def num_outputs(self) -> int:
        """Output channels of the network's head."""
        ...

    @property
    def model_options(self) -> dict[str, Any]:
        """Options the model takes from the task (for example the output ``grid``)."""
        ...

    @property
    def thresholds(self) -> dict[str, float]:
        """The decoding thresholds (tuned on validation), e.g. ``{"prob": 0.5, "nms": 0.4}``; ``{}`` for none."""
        ...

    @property
    def tta(self) -> bool:
        """Whether prediction averages the image's four flips (:meth:`unflip`)."""
        ...

    def with_thresholds(self, thresholds: dict[str, float]) -> Task:
        """A copy decoding with ``thresholds`` (missing keys unchanged)."""
        ...

    def saved(self) -> dict[str, Any]:
        """The task's entries of ``model/config.json`` (read back by ``from_model_config``)."""
        ...

    def reported(self) -> dict[str, Any]:
        """The task's run-level entries of ``metrics.json`` (the thresholds used)."""
        ...

    def describe(self) -> str:
        """A few words on the task's settings for the training log."""
        ...

    def targets(self, labels: np.ndarray) -> np.ndarray | None:
        """A cached training target (K, H, W) float32 of one label image, augmented with it; ``None``: the labels
        themselves are the target."""
        ...

    def encode(self, target: torch.Tensor) -> torch.Tensor:
        """Network targets of a batch of (augmented) labels or cached targets."""
        ...

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of a batch."""
        ...

    def batch_stats(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Sums of one batch that add up over an epoch (0-d tensors, no device sync)."""
        ...

    def summarize(self, stats: dict[str, float], n: int) -> dict[str, float]:
        """Epoch metrics from the summed :meth:`batch_stats` of ``n`` samples."""
        ...

    def unflip(self, output: np.ndarray, axis: int) -> np.ndarray:
        """The output of an image flipped along ``axis`` (-1, -2) mapped back onto the image."""
        ...

    def exported_outputs(self) -> tuple[ExportedOutput, ...]:
        """The output tensors an exported network gives (the raw output split into readable parts)."""
        ...

    def split_output(self, output: np.ndarray) -> Any:
        """The prediction (an array or a tuple of arrays) of one image's network output."""
        ...

    def decode(self, pred: Any, shape: tuple[int, int]) -> np.ndarray:
        """The result of one prediction at the task's thresholds: class probabilities (K,) float32, a class map
        (H, W) uint8 or a label image (H, W) uint32, for an image of ``shape`` (H, W)."""
        ...

    def tune(self, preds: Sequence[Any], truths: Sequence[Any]) -> tuple[dict[str, float], float]:
        """The thresholds that judge the validation predictions best, and the score they reach."""
        ...

    def evaluate_split(self, images: Sequence[np.ndarray], truths: Sequence[Any], preds: Sequence[Any],
                       names: Sequence[str], results: Sequence[np.ndarray] | None = None) -> SplitResult:
        """Metrics and report examples of a split from its images, ground truth and predictions (``results``: the
        predictions already decoded, when the caller timed the decoding)."""
        ...


def select_best_worst(dice: Sequence[float], k: int = 3) -> tuple[list[int], list[int]]:
    """Indices of the ``k`` lowest-Dice images (lowest first) and of the ``k`` highest among the rest
    (highest first); with ``2 k`` images or fewer every image is in one of the two lists, each once, the
    lower-scoring half (rounded up) in the first.

    Parameters
    ----------
    dice : sequence of float
        Per-image Dice (or any per-image score, higher is better, e.g. instance matching accuracy); NaN counts
        as the lowest.
    k : int
        At least 1.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scores = np.nan_to_num(np.asarray(dice, dtype=np.float64), nan=-np.inf)
    order = [int(i) for i in np.argsort(scores, kind="stable")]
    worst = order[: min(k, math.ceil(len(order) / 2))]
    best = order[len(worst) :][::-1][:k]
    return worst, best

"""What the instance tasks (star-convex polygons, flow fields) share: the interface training, evaluation, tiled
prediction and the CLI use, and the task of a saved run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch

from convscope.errors import ConvscopeError

#: Tasks whose result is an instance label image.
INSTANCE_TASKS = ("stardist", "flows")


class InstanceTask(Protocol):
    """An instance task: targets from label images, a loss, and decoding of the network output to labels.

    The network output of an image is ``(num_outputs, ceil(H / grid), ceil(W / grid))``; :meth:`split_output`
    turns it into the task's prediction tuple, which :meth:`decode` turns into a label image at the task's
    thresholds.
    """

    name: str
    class_names: tuple[str, ...]
    metric_names: tuple[str, ...]

    @property
    def grid(self) -> int: ...

    @property
    def num_outputs(self) -> int: ...

    @property
    def thresholds(self) -> dict[str, float]: ...

    @property
    def model_options(self) -> dict[str, Any]: ...

    def with_thresholds(self, thresholds: dict[str, float]) -> InstanceTask: ...

    def threshold_grid(self) -> list[dict[str, float]]: ...

    def encode(self, labels: torch.Tensor) -> torch.Tensor: ...

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...

    def split_output(self, output: np.ndarray) -> tuple[np.ndarray, ...]: ...

    def decode(self, pred: tuple[np.ndarray, ...], shape: tuple[int, int]) -> np.ndarray: ...

    def decode_candidates(self, preds: Sequence[tuple[np.ndarray, ...]], shapes: Sequence[tuple[int, int]],
                          candidates: Sequence[dict[str, float]]) -> list[list[np.ndarray]]: ...


def decode_each(task: InstanceTask, preds: Sequence[tuple[np.ndarray, ...]], shapes: Sequence[tuple[int, int]],
                candidates: Sequence[dict[str, float]]) -> list[list[np.ndarray]]:
    """Label images of every prediction (one list per candidate thresholds), decoded one by one."""
    return [[task.with_thresholds(c).decode(p, s) for p, s in zip(preds, shapes, strict=True)] for c in candidates]


def instance_task(model_config: dict[str, Any]) -> InstanceTask:
    """The task of a saved instance run (``model/config.json``), with its tuned thresholds."""
    from convscope.tasks.flows import FlowTask
    from convscope.tasks.stardist import StarDistTask

    kinds = {"stardist": StarDistTask, "flows": FlowTask}
    kind = model_config.get("task")
    if kind not in kinds:
        raise ConvscopeError(f"a {kind} run, not an instance run ({' or '.join(INSTANCE_TASKS)})")
    return kinds[kind].from_model_config(model_config)

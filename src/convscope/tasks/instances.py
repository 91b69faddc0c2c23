"""What the instance tasks (star-convex polygons, flow fields) share: their recipe section is the task, thresholds
are tuned on validation by matching accuracy, and a split is judged by StarDist-compatible matching."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import ConfigDict

from convscope.metrics.matching import DEFAULT_THRESHOLDS, evaluate_label_pairs, matching_dataset
from convscope.tasks.base import Kind, SplitResult, select_best_worst

#: The IoU thresholds whose mean matching accuracy the tuning maximises.
TUNING_IOUS = (0.3, 0.5, 0.7)
#: IoU thresholds of the pooled matching table in metrics.json.
REPORTED_IOUS = tuple(sorted({*DEFAULT_THRESHOLDS, 0.75}))
#: Scores closer than this to the best count as ties when tuning.
TIE = 1e-9
#: A tuned matching accuracy below this is reported as a model that finds (almost) no objects.
USELESS_SCORE = 0.01
#: Best and worst images of a split shown as outline overlays in the report (each).
N_OVERLAYS = 3


class InstanceTask:
    """The part of :class:`~convscope.tasks.stardist.StarDistTask` and :class:`~convscope.tasks.flows.FlowTask`
    that is the same for both. A subclass is also its own recipe section (a frozen pydantic model whose fields
    are the options), defines ``name``, ``metric_names``, ``threshold_fields``, ``threshold_grid``, ``split_output``,
    ``decode`` and ``decode_candidates``, and inherits the rest."""

    model_config = ConfigDict(frozen=True)
    kind: ClassVar[Kind] = "instances"
    class_names: ClassVar[tuple[str, ...]] = ("background", "object")
    name: ClassVar[str]
    #: Threshold name -> field, e.g. ``{"prob": "prob_thresh", "nms": "nms_thresh"}``.
    threshold_fields: ClassVar[dict[str, str]]

    @classmethod
    def from_recipe(cls, recipe: Any, class_names: Sequence[str] = ()) -> InstanceTask:
        """The task of a recipe (:class:`convscope.config.RunConfig`): its section ``recipe.<name>``."""
        return cls(**getattr(recipe, cls.name).model_dump())

    @classmethod
    def from_model_config(cls, config: dict[str, Any]) -> InstanceTask:
        """The task of a saved run (``model/config.json``), with its tuned thresholds when it has them."""
        return cls(**config[cls.name]).with_thresholds(config.get("thresholds", {}))

    @property
    def thresholds(self) -> dict[str, float]:
        """The decoding thresholds, e.g. ``{"prob": 0.5, "nms": 0.4}``."""
        return {k: getattr(self, f) for k, f in self.threshold_fields.items()}

    def with_thresholds(self, thresholds: dict[str, float]) -> InstanceTask:
        """A copy decoding with ``thresholds`` (keys of :attr:`thresholds`; missing ones unchanged)."""
        update = {self.threshold_fields[k]: float(v) for k, v in thresholds.items() if k in self.threshold_fields}
        return self.model_copy(update=update)

    def saved(self) -> dict[str, Any]:
        """``{<name>: the section, "thresholds": {...}}`` for ``model/config.json``."""
        return {self.name: self.model_dump(), "thresholds": self.thresholds}

    def reported(self) -> dict[str, Any]:
        """The run-level entries of ``metrics.json``: the thresholds used."""
        return {"thresholds": self.thresholds}

    def targets(self, labels: np.ndarray) -> np.ndarray | None:
        return None

    def tune(self, preds: Sequence[Any], truths: Sequence[np.ndarray]) -> tuple[dict[str, float], float]:
        """The thresholds of :meth:`threshold_grid` that maximise the mean matching accuracy at IoU 0.3, 0.5 and
        0.7 over the validation images.

        Parameters
        ----------
        preds : sequence
            :meth:`split_output` of the network outputs of the validation images.
        truths : sequence of ndarray, each (H, W) integer
            Their true label images.

        Returns
        -------
        thresholds : dict
            For example ``{"prob": 0.5, "nms": 0.3}`` (star-convex) or ``{"prob": 0.5, "flow": 0.4}`` (flows).
        score : float
            The mean accuracy reached.

        Notes
        -----
        Among thresholds that score the same (all score 0 for a model that finds nothing) the one that predicts the
        fewest objects wins, so a useless model is not tuned to let every candidate through.
        """
        candidates = self.threshold_grid()
        decoded = self.decode_candidates(preds, [y.shape for y in truths], candidates)
        scores = np.array([float(np.mean([m.accuracy for m in matching_dataset(truths, labels, thresh=TUNING_IOUS)]))
                           for labels in decoded])
        counts = np.array([sum(len(np.unique(lab)) - 1 for lab in labels) for labels in decoded])
        tied = np.flatnonzero(scores >= scores.max() - TIE)
        best = int(tied[np.argmin(counts[tied])])
        return candidates[best], float(scores[best])

    def evaluate_split(self, images: Sequence[np.ndarray], truths: Sequence[np.ndarray], preds: Sequence[Any],
                       names: Sequence[str], results: Sequence[np.ndarray] | None = None) -> SplitResult:
        """Pooled matching at IoU 0.1 ... 0.9 and 0.75 and per-image scores at IoU 0.5 (the layout of
        :func:`convscope.metrics.evaluate_label_pairs`), and the worst and best images by matching accuracy at
        IoU 0.5 as outline overlays."""
        labels = list(results) if results is not None else [self.decode(p, y.shape)
                                                            for p, y in zip(preds, truths, strict=True)]
        metrics = evaluate_label_pairs(truths, labels, names=list(names), thresholds=REPORTED_IOUS)
        per_image = metrics["per_image"]
        worst, best = select_best_worst([row["accuracy@0.5"] for row in per_image], N_OVERLAYS)
        examples = [
            {"image": images[i], "true_labels": truths[i], "pred_labels": labels[i], "name": per_image[i]["name"],
             "accuracy": per_image[i]["accuracy@0.5"], "f1": per_image[i]["f1@0.5"], "group": group}
            for group, indices in (("worst", worst), ("best", best)) for i in indices]
        at = metrics["matching"]["0.5"]
        summary = (f"at IoU 0.5 accuracy {at['accuracy']:.4f}  F1 {at['f1']:.4f}  precision {at['precision']:.4f}  "
                   f"recall {at['recall']:.4f}  PQ {at['panoptic_quality']:.4f} ({len(labels)} images, "
                   f"{metrics['n_true']:,} true / {metrics['n_pred']:,} predicted objects)")
        return SplitResult(self.kind, metrics, examples, summary)


def decode_each(task: Any, preds: Sequence[Any], shapes: Sequence[tuple[int, int]],
                candidates: Sequence[dict[str, float]]) -> list[list[np.ndarray]]:
    """Label images of every prediction (one list per candidate thresholds), decoded one by one."""
    return [[task.with_thresholds(c).decode(p, s) for p, s in zip(preds, shapes, strict=True)] for c in candidates]

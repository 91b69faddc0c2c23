"""Flow-field instances (Cellpose, Omnipose): per pixel a flow toward the object's sink and a cell probability.

The network output (N, 3 or 4, H, W) holds the flows (dy, dx) scaled by ``flow_scale`` (Cellpose's 5), the cell
probability logit and, for the Omnipose variant, the distance field. Targets are cheap to make from a scalar
*potential* whose gradient is the flow: Cellpose's heat diffusion from the object's centre
(:func:`convscope.instances.flows.heat_potential`) or Omnipose's distance field
(:func:`convscope.instances.flows.distance_field`). The potential of every training image is computed once
(:meth:`FlowTask.targets`, cached per data set by the training data), cropped and augmented together with the
labels (a scalar field stays right under flips, rotations and deformations, unlike vectors), and turned into flows
per batch by :meth:`FlowTask.encode`. Decoding follows the flows (:func:`convscope.instances.dynamics.compute_masks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from convscope.instances.dynamics import compute_masks, compute_masks_sweep
from convscope.instances.flows import distance_field, flows_from_potential, heat_potential
from convscope.sections import Section
from convscope.tasks.base import ExportedOutput
from convscope.tasks.instances import InstanceTask

Variant = Literal["cellpose", "omnipose"]


class FlowsConfig(Section):
    """Flow-field instances (``task: flows``, Cellpose/Omnipose-style): targets, loss and starting thresholds.

    The model predicts per pixel a flow toward the object's sink (scaled by ``flow_scale``), a cell probability
    and, for ``variant: omnipose``, the distance field. Loss: MSE of the scaled flows / 2 + BCE of the cell
    probability (Cellpose's), + ``dist_weight`` * MSE of the distance (Omnipose). ``prob_thresh`` /
    ``flow_thresh`` are tuned on the validation images at the end of training and saved with the model.
    """

    variant: Literal["cellpose", "omnipose"] = "cellpose"
    flow_scale: float = Field(5.0, gt=0.0)
    dist_weight: float = Field(0.1, ge=0.0)
    prob_thresh: float = Field(0.5, gt=0.0, lt=1.0)
    flow_thresh: float = Field(0.4, ge=0.0, description="mean squared flow error above which a mask is dropped; "
                               "0 = no check")
    min_size: int = Field(15, ge=0, description="smallest object kept (pixels)")
    tta: bool = Field(False, description="predict with flips: 4 network passes averaged (also when tuning)")


class FlowTask(InstanceTask, FlowsConfig):
    """Targets, loss, epoch metrics and decoding of flow-field instance segmentation; its options are its recipe
    section (:class:`FlowsConfig`), every default written once.

    ``variant``: ``cellpose``: unit flows up the heat-diffusion potential to one centre per object, grouped by a
    histogram of end points. ``omnipose``: the distance field's gradient (unit inside, vanishing on the medial
    axis) and a distance channel; end points are clustered along the medial axis, so long, curved cells stay whole.
    Decoding: pixels above ``prob_thresh`` cell probability follow the flows; objects whose flows, recomputed from
    their mask, differ from the predicted ones by a mean squared error above ``flow_thresh`` are dropped (0 = no
    check); objects smaller than ``min_size`` pixels are dropped.
    """

    name: ClassVar[str] = "flows"
    section: ClassVar[type[Section]] = FlowsConfig
    grid: ClassVar[int] = 1
    threshold_fields: ClassVar[dict[str, str]] = {"prob": "prob_thresh", "flow": "flow_thresh"}

    def describe(self) -> str:
        return f"{self.variant} flows"

    @property
    def omnipose(self) -> bool:
        return self.variant == "omnipose"

    @property
    def num_outputs(self) -> int:
        return 4 if self.omnipose else 3

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("flow_mse", "prob_bce", "dist_mse") if self.omnipose else ("flow_mse", "prob_bce")

    @property
    def model_options(self) -> dict[str, Any]:
        """Options the model takes from the task (none)."""
        return {}


    def threshold_grid(self) -> list[dict[str, float]]:
        """The thresholds searched on validation: cell probability 0.3 ... 0.7 x flow error 0.2 ... 0.8 or off."""
        return [{"prob": prob, "flow": flow} for prob in (0.3, 0.4, 0.5, 0.6, 0.7)
                for flow in (0.2, 0.4, 0.6, 0.8, 0.0)]

    def targets(self, labels: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """The cached training target (2, H, W) float32 of one (H, W) integer label image: the labels (exact as
        float32 below 2**24) and the potential the flows climb."""
        potential = distance_field(labels) if self.omnipose else heat_potential(labels)
        return np.stack([labels.astype(np.float32), potential])

    def encode(self, targets: torch.Tensor) -> torch.Tensor:
        """Network targets (B, 3 or 4, H, W) float32 of (augmented) :meth:`targets` (B, 2, H, W): the flows times
        ``flow_scale``, the cell mask, and for Omnipose the distance field. The flows are
        :func:`~convscope.instances.flows.flows_from_potential` of each patch, one-sided at its border."""
        labels, potential = targets[:, 0].round(), targets[:, 1]
        fields = zip(labels.cpu().numpy().astype(np.int64), potential.cpu().numpy(), strict=True)
        flows = np.stack([flows_from_potential(p, y, normalize=not self.omnipose) for y, p in fields])
        parts = [torch.from_numpy(flows).to(targets.device) * self.flow_scale, (labels > 0).float()[:, None]]
        if self.omnipose:
            parts.append(potential[:, None] * (labels > 0)[:, None])
        return torch.cat(parts, dim=1)

    def unflip(self, output: np.ndarray, axis: int) -> np.ndarray:
        """The output (3 or 4, H, W) of an image flipped along ``axis`` (-1: columns, -2: rows) mapped back to the
        image: flipped back, and the flow component along ``axis`` negated."""
        out = np.flip(output, axis).copy()
        out[1 if axis == -1 else 0] *= -1
        return out

    def _parts(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        output = output.float()
        parts = {"flow_mse": F.mse_loss(output[:, :2], target[:, :2]) / 2,  # Cellpose's loss: MSE / 2 + BCE
                 "prob_bce": F.binary_cross_entropy_with_logits(output[:, 2], target[:, 2])}
        if self.omnipose:
            parts["dist_mse"] = F.mse_loss(output[:, 3], target[:, 3])
        return parts

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``output`` against ``target``, both (B, 3 or 4, H, W)."""
        parts = self._parts(output, target)
        loss = parts["flow_mse"] + parts["prob_bce"]
        return loss + self.dist_weight * parts["dist_mse"] if self.omnipose else loss

    def batch_stats(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch sums of the loss parts (0-d tensors) times the batch size."""
        n = len(target)
        return {name: value.detach() * n for name, value in self._parts(output, target).items()}

    def summarize(self, stats: dict[str, float], n: int) -> dict[str, float]:
        """Epoch means of the loss parts."""
        return {name: stats[name] / max(n, 1) for name in self.metric_names}

    def exported_outputs(self) -> tuple[ExportedOutput, ...]:
        """The flows (pixels per step), the cell probability and, for Omnipose, the distance field."""
        how = (f"convscope follows the flows from every pixel with probability > {self.prob_thresh:.3g}, groups the "
               f"end points into objects ({self.variant} style), drops objects whose recomputed flows differ by a mean "
               f"squared error > {self.flow_thresh:.3g} and objects under {self.min_size} pixels")
        outputs = (ExportedOutput("flows", ("dy", "dx"), 0, 2, scale=1 / self.flow_scale,
                                  description=f"flow toward the object's sink (pixels per step, y then x); {how}"),
                   ExportedOutput("probability", ("cell",), 2, 3, "sigmoid", description="cell probability"))
        if self.omnipose:
            return (*outputs, ExportedOutput("distance", ("distance",), 3, 4,
                                             description="distance to the object boundary (pixels)"))
        return outputs

    def split_output(self, output: np.ndarray) -> tuple[np.ndarray, ...]:
        """Flows (2, H, W) float32 in pixels per step, cell probability (H, W) float32 and, for Omnipose, the
        distance field (H, W) float32, from one network output (3 or 4, H, W)."""
        flows = output[:2].astype(np.float32) / self.flow_scale
        prob = 1 / (1 + np.exp(-output[2].astype(np.float32)))
        if self.omnipose:
            return flows, prob, np.ascontiguousarray(output[3], dtype=np.float32)
        return flows, prob

    def decode(self, pred: tuple[np.ndarray, ...], shape: tuple[int, int]) -> np.ndarray:
        """Label image (H, W) uint32 from :meth:`split_output`'s prediction, at the task's thresholds."""
        flows, prob = pred[0], pred[1]
        dist = pred[2] if len(pred) > 2 else None
        return compute_masks(flows, prob, prob_thresh=self.prob_thresh, flow_thresh=self.flow_thresh,
                             min_size=self.min_size, variant=self.variant, dist=dist)

    def decode_candidates(self, preds: Sequence[tuple[np.ndarray, ...]], shapes: Sequence[tuple[int, int]],
                          candidates: Sequence[dict[str, float]]) -> list[list[np.ndarray]]:
        """Label images of every prediction at each of the ``candidates`` thresholds (one list per candidate); the
        flows are followed once per image and probability threshold (:func:`compute_masks_sweep`)."""
        probs = sorted({c["prob"] for c in candidates})
        flows = sorted({c["flow"] for c in candidates})
        sweeps = [compute_masks_sweep(p[0], p[1], prob_thresholds=probs, flow_thresholds=flows,
                                      min_size=self.min_size, variant=self.variant, dist=p[2] if len(p) > 2 else None)
                  for p in preds]
        return [[sweep[(c["prob"], c["flow"])] for sweep in sweeps] for c in candidates]


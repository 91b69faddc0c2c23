"""Star-convex instances (StarDist): an object probability and ray distances per pixel of an output grid.

Targets (:meth:`StarDistTask.encode`) come from instance label images, after augmentation, with
:func:`convscope.instances.edt_prob` and :func:`convscope.instances.star_dist`. The network output (N, 1 + R, h, w)
holds the probability logit in channel 0 and R ray distances (pixels) after it; so does the target, with the
probability in [0, 1]. Decoding to label images is :func:`convscope.instances.instances_from_prediction`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from convscope.instances import edt_prob, instances_from_prediction, star_dist
from convscope.sections import Section
from convscope.tasks.base import ExportedOutput
from convscope.tasks.instances import InstanceTask, decode_each

#: Guards of decoding against a model that is sure of nothing (untrained, or barely trained), whose every grid pixel
#: would otherwise become a one-pixel object: candidates whose longest ray is under ``MIN_RAY`` pixels cover at most
#: their own pixel and are dropped, and at most one in ``MAX_CANDIDATE_SHARE`` output pixels (those of highest
#: probability) enters non-maximum suppression.
MIN_RAY = 1.0
MAX_CANDIDATE_SHARE = 2


class StarDistConfig(Section):
    """Star-convex instances (``task: stardist``): targets, loss weights and the starting thresholds.

    The model predicts at every ``grid``-th pixel an object probability and ``n_rays`` distances to the object
    boundary. Loss: BCE on the probability + ``dist_weight`` * (probability-weighted MAE of the distances +
    ``background_reg`` * mean |distance| on background), StarDist's defaults. ``prob_thresh`` / ``nms_thresh``
    are tuned on the validation images at the end of training and saved with the model. ``border``: candidates
    closer than this many output pixels to the image edge are ignored (StarDist's ``b`` = 2; 0 keeps the nuclei
    the edge cuts).
    """

    n_rays: int = Field(32, ge=3, le=256)
    grid: int = Field(2, description="output subsampling: 1, 2, 4 or 8")
    dist_weight: float = Field(0.2, ge=0.0)
    background_reg: float = Field(1e-4, ge=0.0)
    prob_thresh: float = Field(0.5, gt=0.0, lt=1.0)
    nms_thresh: float = Field(0.4, gt=0.0, lt=1.0)
    tta: bool = Field(False, description="predict with flips: 4 network passes averaged (also when tuning)")
    border: int = Field(0, ge=0, description="prediction pixels ignored at each image edge when picking "
                        "candidates (StarDist's b = 2); 0 finds the objects the image edge cuts")

    @model_validator(mode="after")
    def _flips_need_even_rays(self) -> StarDistConfig:
        if self.tta and self.n_rays % 2:
            raise ValueError(f"tta: flips need an even number of rays (n_rays is {self.n_rays})")
        return self


class StarDistTask(InstanceTask, StarDistConfig):
    """Targets, loss, epoch metrics and decoding of star-convex instance segmentation; its options are its recipe
    section (:class:`StarDistConfig`), so ``StarDistTask(n_rays=16)`` and ``StarDistTask(**recipe.stardist
    .model_dump())`` both work and every default is written once.

    Loss = BCE(prob) + ``dist_weight`` * (MAE(dist) weighted by the true probability and normalised by its mean,
    + ``background_reg`` * mean |dist| on background), as StarDist's ``train_loss_weights=(1, 0.2)``,
    ``train_dist_loss='mae'``, ``train_background_reg=1e-4``. ``border``: convscope decodes whole images once,
    after stitching the tiles, so only the image's own edges count; 0 keeps the nuclei that the edge cuts, which
    the ground truth of DSB 2018 labels.
    """

    name: ClassVar[str] = "stardist"
    section: ClassVar[type[Section]] = StarDistConfig
    metric_names: ClassVar[tuple[str, ...]] = ("prob_bce", "dist_mae")
    threshold_fields: ClassVar[dict[str, str]] = {"prob": "prob_thresh", "nms": "nms_thresh"}

    def describe(self) -> str:
        return f"{self.n_rays} rays, grid {self.grid}"

    @property
    def model_options(self) -> dict[str, int]:
        """Options the model takes from the task."""
        return {"grid": self.grid}

    @property
    def num_outputs(self) -> int:
        return 1 + self.n_rays


    def threshold_grid(self) -> list[dict[str, float]]:
        """The thresholds searched on validation: probability 0.30 ... 0.80 x NMS 0.3 / 0.4 / 0.5 (StarDist's
        ``optimize_thresholds`` searches the same ranges)."""
        return [{"prob": round(0.3 + 0.05 * i, 2), "nms": nms} for nms in (0.3, 0.4, 0.5) for i in range(11)]

    def encode_labels(self, labels: np.ndarray) -> np.ndarray:
        """Target (1 + n_rays, h, w) float32 of one (H, W) integer label image: probability, then distances."""
        g = self.grid
        prob = edt_prob(labels)[::g, ::g]
        dist = star_dist(labels, self.n_rays, grid=g)
        return np.concatenate([prob[None], dist.transpose(2, 0, 1)])

    def encode(self, labels: torch.Tensor) -> torch.Tensor:
        """Targets (B, 1 + n_rays, ceil(H / grid), ceil(W / grid)) float32 of labels (B, H, W) integer.

        The distances of a batch are computed in one call on the images side by side, their ids made distinct: a
        ray stops where the label changes just as at the image border, so the result is the same as image by
        image, without the per-call overhead.
        """
        arrays = labels.detach().cpu().numpy()
        b, w = arrays.shape[0], arrays.shape[2]
        g = self.grid
        if b == 1 or w % g:
            out = np.stack([self.encode_labels(a) for a in arrays])
            return torch.from_numpy(out).to(labels.device)
        offsets = np.cumsum([0, *(int(a.max(initial=0)) for a in arrays[:-1])])
        side_by_side = np.concatenate([np.where(a > 0, a + o, 0) for a, o in zip(arrays, offsets, strict=True)],
                                      axis=1)
        dist = star_dist(side_by_side, self.n_rays, grid=g)  # (h', b * w / g, n_rays)
        dist = dist.reshape(dist.shape[0], b, w // g, self.n_rays).transpose(1, 3, 0, 2)
        prob = np.stack([edt_prob(a)[::g, ::g] for a in arrays])[:, None]
        return torch.from_numpy(np.ascontiguousarray(np.concatenate([prob, dist], axis=1))).to(labels.device)

    def unflip(self, output: np.ndarray, axis: int) -> np.ndarray:
        """The output (1 + n_rays, h, w) of an image flipped along ``axis`` (-1: columns, -2: rows) mapped back to
        the image: flipped back, and ray ``k`` taken from its mirror ray (``n_rays / 2 - k`` for columns, ``-k``
        for rows). The image's size must be ``1 + m * grid`` along ``axis`` (so its grid flips onto itself)."""
        k = np.arange(self.n_rays)
        mirror = (self.n_rays // 2 - k) % self.n_rays if axis == -1 else (-k) % self.n_rays
        flipped = np.flip(output, axis)
        return np.concatenate([flipped[:1], flipped[1:][mirror]])

    def _parts(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logit, dist = output[:, :1].float(), output[:, 1:].float()
        prob, true_dist = target[:, :1], target[:, 1:]
        bce = F.binary_cross_entropy_with_logits(logit, prob)
        mae = (prob * (dist - true_dist).abs()).mean() / (prob.mean() + 1e-6)
        background = ((prob == 0) * dist.abs()).mean()
        return bce, mae, background

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar loss of ``output`` against ``target``, both (B, 1 + n_rays, h, w)."""
        bce, mae, background = self._parts(output, target)
        return bce + self.dist_weight * (mae + self.background_reg * background)

    def batch_stats(self, output: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Batch sums of the loss parts (0-d tensors): ``prob_bce`` and ``dist_mae`` times the batch size."""
        bce, mae, _ = self._parts(output, target)
        n = len(target)
        return {"prob_bce": bce.detach() * n, "dist_mae": mae.detach() * n}

    def summarize(self, stats: dict[str, float], n: int) -> dict[str, float]:
        """Epoch means of the loss parts."""
        return {name: stats[name] / max(n, 1) for name in self.metric_names}

    def exported_outputs(self) -> tuple[ExportedOutput, ...]:
        """The object probability and the ray distances, at every ``grid``-th pixel (StarDist's outputs)."""
        how = (f"convscope (as StarDist) keeps the pixels with probability > {self.prob_thresh:.3g}, draws each one's "
               f"star-convex polygon from its {self.n_rays} distances and suppresses polygons overlapping a more "
               f"probable one by IoU > {self.nms_thresh:.3g} (thresholds tuned on validation)")
        return (ExportedOutput("probability", ("object",), 0, 1, "sigmoid",
                               description=f"object probability on the output grid (one value per {self.grid} x "
                                           f"{self.grid} pixels); {how}"),
                ExportedOutput("distances", tuple(f"ray{k}" for k in range(self.n_rays)), 1, 1 + self.n_rays,
                               description=f"distances (pixels) from the pixel to the object boundary along "
                               f"{self.n_rays} rays; ray k points along (row, column) = (sin a, cos a), "
                               "a = 2 pi k / n_rays"),)

    def split_output(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probability (h, w) float32 and distances (h, w, n_rays) float32 from one output (1 + n_rays, h, w)."""
        prob = 1 / (1 + np.exp(-output[0].astype(np.float32)))
        rays = output[1:]
        dist = np.empty((*rays.shape[1:], rays.shape[0]), np.float32)  # one pass: clamped and transposed at once
        np.maximum(rays.transpose(1, 2, 0), np.float32(1e-3), out=dist)
        return prob, dist

    def decode(self, pred: tuple[np.ndarray, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
        """Label image (H, W) uint32 from :meth:`split_output`'s (probability (h, w), distances (h, w, n_rays)) on
        the grid, at the task's thresholds."""
        prob, dist = pred
        labels, _ = instances_from_prediction(prob, dist, prob_thresh=self.prob_thresh, nms_thresh=self.nms_thresh,
                                              grid=self.grid, border=self.border, shape=shape,
                                              max_candidates=max(1, prob.size // MAX_CANDIDATE_SHARE),
                                              min_ray=MIN_RAY)
        return labels

    def decode_candidates(self, preds: Sequence[tuple[np.ndarray, np.ndarray]], shapes: Sequence[tuple[int, int]],
                          candidates: Sequence[dict[str, float]]) -> list[list[np.ndarray]]:
        """Label images of every prediction at each of the ``candidates`` thresholds (one list per candidate)."""
        return decode_each(self, preds, shapes, candidates)

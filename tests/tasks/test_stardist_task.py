"""The star-convex task: targets from labels, the StarDist loss, epoch metrics, decoding back to labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.instances import edt_prob, star_dist
from convscope.metrics import matching_dataset
from convscope.tasks.stardist import StarDistTask


def _labels(n: int = 2, size: int = 96) -> np.ndarray:
    return np.stack(make_synthetic_nuclei(n, size=(size, size), seed=4)[1]).astype(np.int64)


def _perfect_output(task: StarDistTask, target: torch.Tensor) -> torch.Tensor:
    """A network output that reproduces ``target``: logit of the probability, the distances themselves."""
    prob = target[:, :1].clamp(1e-4, 1 - 1e-4)
    return torch.cat([torch.log(prob / (1 - prob)), target[:, 1:]], dim=1)


@pytest.mark.parametrize("grid", [1, 2])
def test_encode_is_edt_prob_and_star_dist_on_the_grid(grid: int) -> None:
    task = StarDistTask(n_rays=8, grid=grid)
    labels = _labels()
    target = task.encode(torch.from_numpy(labels))
    assert target.shape == (2, 9, 96 // grid, 96 // grid) and target.dtype == torch.float32
    np.testing.assert_array_equal(target[0, 0].numpy(), edt_prob(labels[0])[::grid, ::grid])
    np.testing.assert_array_equal(target[1, 1:].numpy(), star_dist(labels[1], 8, grid=grid).transpose(2, 0, 1))


def test_loss_is_lowest_for_the_target_and_weighs_distances_by_probability() -> None:
    task = StarDistTask(n_rays=8, grid=2)
    target = task.encode(torch.from_numpy(_labels()))
    perfect = _perfect_output(task, target)
    shifted = perfect.clone()
    shifted[:, 1:] += 3.0
    assert task.loss(perfect, target) < task.loss(shifted, target)
    # distance errors where the true probability is 0 cost only the tiny background regularisation
    background = perfect.clone()
    background[:, 1:] += 3.0 * (target[:, :1] == 0)
    assert task.loss(background, target) - task.loss(perfect, target) == pytest.approx(
        0.2 * 1e-4 * 3.0 * (target[:, :1] == 0).float().mean().item() * 8 / 8, rel=1e-3)
    stats = task.batch_stats(shifted, target)
    summary = task.summarize({k: float(v) for k, v in stats.items()}, len(target))
    assert summary["dist_mae"] == pytest.approx(3.0, rel=1e-4)
    assert summary["prob_bce"] > 0


def test_decoding_a_perfect_prediction_recovers_the_labels() -> None:
    task = StarDistTask(n_rays=32, grid=2, prob_thresh=0.5, nms_thresh=0.4)
    labels = _labels(3, 128)
    target = task.encode(torch.from_numpy(labels)).numpy()
    preds = [task.split_output(_perfect_output(task, torch.from_numpy(t[None]))[0].numpy()) for t in target]
    decoded = [task.decode(p, y.shape) for p, y in zip(preds, labels, strict=True)]
    assert all(d.dtype == np.uint32 and d.shape == y.shape for d, y in zip(decoded, labels, strict=True))
    m = matching_dataset(list(labels), decoded, thresh=0.5)
    assert m.accuracy > 0.85 and m.f1 > 0.9
    # a stricter probability threshold keeps fewer objects
    strict = [task.with_thresholds({"prob": 0.95}).decode(p, y.shape) for p, y in zip(preds, labels, strict=True)]
    assert sum(len(np.unique(s)) for s in strict) < sum(len(np.unique(d)) for d in decoded)


def test_objects_cut_by_the_image_edge_are_found_unless_the_border_is_excluded() -> None:
    labels = np.zeros((1, 64, 64), np.int64)
    rows, cols = np.mgrid[:64, :64]
    labels[0][(rows / 4) ** 2 + ((cols - 30) / 10) ** 2 <= 1] = 1  # a flat nucleus cut by the top edge
    labels[0][((rows - 40) / 8) ** 2 + ((cols - 30) / 8) ** 2 <= 1] = 2  # one inside
    task = StarDistTask(n_rays=32, grid=2, prob_thresh=0.5, nms_thresh=0.4)
    target = task.encode(torch.from_numpy(labels))
    pred = task.split_output(_perfect_output(task, target)[0].numpy())
    assert task.border == 0
    found = task.decode(pred, labels[0].shape)
    assert matching_dataset([labels[0]], [found], thresh=0.5).tp == 2
    # StarDist's b=2 loses the edge one
    stardist_default = task.model_copy(update={"border": 2}).decode(pred, labels[0].shape)
    m = matching_dataset([labels[0]], [stardist_default], thresh=0.5)
    assert (m.tp, m.fn) == (1, 1)
    assert np.all(stardist_default[:3] == 0)


@pytest.mark.parametrize("grid", [1, 2])
def test_batch_encoding_equals_image_by_image(grid: int) -> None:
    task = StarDistTask(n_rays=16, grid=grid)
    labels = _labels(4, 64)
    labels[1] = np.where(labels[1] > 0, labels[1] + 1000, 0)  # ids need not be sequential or distinct
    labels[2] = 0  # an empty patch
    batch = task.encode(torch.from_numpy(labels)).numpy()
    single = np.stack([task.encode_labels(a) for a in labels])
    np.testing.assert_array_equal(batch, single)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_split_output_is_sigmoid_and_clamped_distances_channels_last(dtype: type) -> None:
    task = StarDistTask(n_rays=8, grid=2)
    output = np.random.default_rng(0).normal(0, 3, (9, 20, 24)).astype(dtype)
    prob, dist = task.split_output(output)
    assert prob.dtype == dist.dtype == np.float32 and dist.shape == (20, 24, 8) and dist.flags.c_contiguous
    np.testing.assert_array_equal(prob, 1 / (1 + np.exp(-output[0].astype(np.float32))))
    reference = np.ascontiguousarray(np.maximum(output[1:].transpose(1, 2, 0), 1e-3), dtype=np.float32)
    np.testing.assert_array_equal(dist, reference)  # the former two-pass formula, bit for bit

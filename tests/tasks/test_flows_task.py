"""The flows task: cached potentials, flows made per batch after augmentation, the Cellpose loss, decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convscope.datasets.bacteria import make_synthetic_bacteria
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.instances.flows import cellpose_flows, omnipose_flows
from convscope.metrics import matching_dataset
from convscope.tasks.flows import FlowTask

VARIANTS = ["cellpose", "omnipose"]


def _labels(n: int = 2, size: int = 96, make=make_synthetic_nuclei) -> np.ndarray:
    return np.stack(make(n, size=(size, size), seed=4)[1]).astype(np.int64)


def _targets(task: FlowTask, labels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([task.targets(y) for y in labels]))


def _perfect_output(task: FlowTask, target: torch.Tensor) -> torch.Tensor:
    """A network output that reproduces ``target``: the flows, the logit of the mask, the distance."""
    prob = target[:, 2:3].clamp(1e-4, 1 - 1e-4)
    return torch.cat([target[:, :2], torch.log(prob / (1 - prob)), target[:, 3:]], dim=1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_encoded_flows_are_the_flows_of_the_labels(variant: str) -> None:
    """Away from the image border (where a patch goes on) the flows made per batch from the cached potential equal
    those made from the labels in one go."""
    task = FlowTask(variant=variant)
    labels = _labels()
    target = task.encode(_targets(task, labels)).numpy()
    assert target.shape == (2, task.num_outputs, 96, 96) and target.dtype == np.float32
    for y, t in zip(labels, target, strict=True):
        expected = cellpose_flows(y) if variant == "cellpose" else omnipose_flows(y)[0]
        np.testing.assert_allclose(t[:2, 1:-1, 1:-1] / task.flow_scale, expected[:, 1:-1, 1:-1], atol=1e-5)
        np.testing.assert_array_equal(t[2], y > 0)
        if variant == "omnipose":
            np.testing.assert_allclose(t[3], omnipose_flows(y)[1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_flows_follow_flips_and_rotations_of_the_potential(variant: str) -> None:
    """Augmenting the scalar potential and then encoding equals encoding and then moving the vectors: a flip
    negates one component, a quarter turn swaps them."""
    task = FlowTask(variant=variant)
    cached = _targets(task, _labels(1, 64, make_synthetic_bacteria))
    flows = task.encode(cached)[:, :2]
    flipped = task.encode(cached.flip(-1))[:, :2]
    torch.testing.assert_close(flipped, torch.stack([flows[:, 0], -flows[:, 1]], 1).flip(-1))
    turned = task.encode(cached.rot90(1, dims=(-2, -1)))[:, :2]  # counter-clockwise: (y, x) -> (W-1-x, y)
    expected = torch.stack([-flows[:, 1], flows[:, 0]], 1).rot90(1, dims=(-2, -1))
    torch.testing.assert_close(turned, expected)


@pytest.mark.parametrize("variant", VARIANTS)
def test_loss_is_lowest_for_the_target(variant: str) -> None:
    task = FlowTask(variant=variant)
    target = task.encode(_targets(task, _labels()))
    perfect = _perfect_output(task, target)
    wrong = perfect.clone()
    wrong[:, :2] = -wrong[:, :2]
    assert task.loss(perfect, target) < task.loss(wrong, target)
    stats = task.batch_stats(wrong, target)
    summary = task.summarize({k: float(v) for k, v in stats.items()}, len(target))
    assert set(summary) == set(task.metric_names)
    # reversed flows: the error is twice the target, so MSE / 2 = 2 mean(target ** 2)
    assert summary["flow_mse"] == pytest.approx(2 * target[:, :2].pow(2).mean().item(), rel=1e-5)
    if variant == "cellpose":  # unit flows times flow_scale on every cell pixel (but the few centres)
        cells = (target[:, 2] > 0).float().mean().item()
        assert summary["flow_mse"] == pytest.approx(task.flow_scale**2 * cells, rel=0.02)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("make", [make_synthetic_nuclei, make_synthetic_bacteria], ids=["nuclei", "bacteria"])
def test_decoding_a_perfect_prediction_recovers_the_labels(variant: str, make) -> None:
    task = FlowTask(variant=variant)
    labels = _labels(2, 128, make)
    target = task.encode(_targets(task, labels)).numpy()
    preds = [task.split_output(_perfect_output(task, torch.from_numpy(t[None]))[0].numpy()) for t in target]
    decoded = [task.decode(p, y.shape) for p, y in zip(preds, labels, strict=True)]
    assert all(d.dtype == np.uint32 and d.shape == y.shape for d, y in zip(decoded, labels, strict=True))
    m = matching_dataset(list(labels), decoded, thresh=0.5)
    assert m.accuracy > 0.9
    # a stricter probability threshold than every pixel's keeps nothing
    strict = task.with_thresholds({"prob": 0.9999}).decode(preds[0], labels[0].shape)
    assert strict.max() == 0


def test_thresholds_round_trip_through_the_model_config() -> None:
    task = FlowTask(variant="omnipose", min_size=5).with_thresholds({"prob": 0.3, "flow": 0.0})
    config = {"task": "flows", "flows": {"variant": "omnipose", "flow_scale": 5.0, "dist_weight": 0.1,
                                         "prob_thresh": 0.5, "flow_thresh": 0.4, "min_size": 5},
              "thresholds": task.thresholds}
    assert FlowTask.from_model_config(config) == task
    assert task.num_outputs == 4 and FlowTask().num_outputs == 3
    assert {"prob": 0.5, "flow": 0.4} in FlowTask().threshold_grid()


@pytest.mark.parametrize("variant", VARIANTS)
def test_decoding_many_thresholds_at_once_equals_one_by_one(variant: str) -> None:
    """The threshold sweep of the tuning shares the flow dynamics but gives the labels of each pair."""
    task = FlowTask(variant=variant)
    labels = _labels(2, 96, make_synthetic_bacteria)
    target = task.encode(_targets(task, labels))
    noisy = _perfect_output(task, target) + 2.0 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    preds = [task.split_output(o.numpy()) for o in noisy]
    candidates = [{"prob": 0.4, "flow": 0.2}, {"prob": 0.4, "flow": 0.0}, {"prob": 0.6, "flow": 0.8}]
    shapes = [y.shape for y in labels]
    swept = task.decode_candidates(preds, shapes, candidates)
    for c, decoded in zip(candidates, swept, strict=True):
        one_by_one = [task.with_thresholds(c).decode(p, s) for p, s in zip(preds, shapes, strict=True)]
        for a, b in zip(decoded, one_by_one, strict=True):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(swept[0][0], swept[1][0])  # the flow-error check dropped something

"""Whole-image instance prediction: tiles blended on the output grid, decoding once, objects at tile borders found
once."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from convscope.config import NormalizeConfig
from convscope.datasets.bacteria import make_synthetic_bacteria
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.inference.instances import InstanceSegmenter, Timings, compact_dtype
from convscope.inference.tiling import predict_tiled
from convscope.metrics import matching
from convscope.tasks.flows import FlowTask
from convscope.tasks.stardist import StarDistTask


def test_objects_crossing_tile_borders_are_found_once_and_whole() -> None:
    """An oracle 'network' that only sees its tile (targets computed from the labels inside the tile, so objects
    cut by the tile border get truncated rays there) still gives every object once, whole, after blending."""
    task = StarDistTask(n_rays=32, grid=2)
    labels = make_synthetic_nuclei(1, size=(300, 260), seed=7)[1][0].astype(np.int64)

    def oracle(batch: torch.Tensor) -> torch.Tensor:
        target = task.encode(batch[:, 0].round().long())
        prob = target[:, :1].clamp(1e-4, 1 - 1e-4)
        return torch.cat([torch.log(prob / (1 - prob)), target[:, 1:]], dim=1)

    out = predict_tiled(oracle, labels[None].astype(np.float32), tile=96, overlap=32, grid=2)
    pred = task.decode(task.split_output(out), labels.shape)
    whole = task.split_output(oracle(torch.from_numpy(labels[None, None].astype(np.float32)))[0].numpy())
    reference = matching(labels, task.decode(whole, labels.shape), thresh=0.5)
    m = matching(labels, pred, thresh=0.5)
    assert m.n_true > 30  # many objects, so many cross the 3 x 3 tile borders
    assert m.fp <= reference.fp and m.fn <= reference.fn + 1  # no duplicates, no cut objects
    assert m.accuracy >= reference.accuracy - 0.03


def test_compact_dtype() -> None:
    assert compact_dtype(np.array([[0, 65_535]], np.uint32)).dtype == np.uint16
    big = compact_dtype(np.array([[0, 65_536]], np.uint32))
    assert big.dtype == np.uint32 and big.max() == 65_536


@pytest.mark.parametrize("variant", ["cellpose", "omnipose"])
def test_flow_objects_crossing_tile_borders_are_found_once_and_whole(variant: str) -> None:
    """The same with flows: an oracle that computes the flows of its tile only (a cut object flows to the centre
    of its visible part); after blending and following the flows on the whole image no object is cut or doubled."""
    task = FlowTask(variant=variant)
    labels = make_synthetic_bacteria(1, size=(300, 260), seed=7)[1][0].astype(np.int64)

    def oracle(batch: torch.Tensor) -> torch.Tensor:
        tiles = batch[:, 0].round().long().numpy()
        target = task.encode(torch.from_numpy(np.stack([task.targets(t) for t in tiles])))
        prob = target[:, 2:3].clamp(1e-4, 1 - 1e-4)
        return torch.cat([target[:, :2], torch.log(prob / (1 - prob)), target[:, 3:]], dim=1)

    out = predict_tiled(oracle, labels[None].astype(np.float32), tile=96, overlap=32, out_channels=task.num_outputs)
    pred = task.decode(task.split_output(out), labels.shape)
    whole = oracle(torch.from_numpy(labels[None, None].astype(np.float32)))[0].numpy()
    reference = matching(labels, task.decode(task.split_output(whole), labels.shape), thresh=0.5)
    m = matching(labels, pred, thresh=0.5)
    assert m.n_true > 30
    assert m.fp <= reference.fp + 1 and m.fn <= reference.fn + 1
    assert m.accuracy >= reference.accuracy - 0.03


class _Oracle(torch.nn.Module):
    """A 'network' whose input is a label image and whose output is the task's perfect prediction of it."""

    def __init__(self, task: StarDistTask | FlowTask) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        labels = batch[:, 0].round().long()
        if isinstance(self.task, FlowTask):
            target = self.task.encode(torch.from_numpy(np.stack([self.task.targets(y) for y in labels.numpy()])))
            prob = target[:, 2:3].clamp(1e-4, 1 - 1e-4)
            return torch.cat([target[:, :2], torch.log(prob / (1 - prob)), target[:, 3:]], dim=1)
        target = self.task.encode(labels)
        prob = target[:, :1].clamp(1e-4, 1 - 1e-4)
        return torch.cat([torch.log(prob / (1 - prob)), target[:, 1:]], dim=1)


def _oracle_segmenter(task: StarDistTask | FlowTask, tile: int) -> InstanceSegmenter:
    segmenter = InstanceSegmenter.__new__(InstanceSegmenter)
    segmenter.task, segmenter.model, segmenter.device = task, _Oracle(task), torch.device("cpu")
    segmenter.normalize = NormalizeConfig(mode="none")
    segmenter.tile, segmenter.channels, segmenter.batch_size, segmenter.timings = tile, 1, 4, Timings()
    return segmenter


@pytest.mark.parametrize("task", [StarDistTask(n_rays=16, grid=2, tta=True), StarDistTask(n_rays=16, grid=1, tta=True),
                                  FlowTask(variant="cellpose", tta=True), FlowTask(variant="omnipose", tta=True)],
                         ids=["stardist-grid2", "stardist-grid1", "cellpose", "omnipose"])
def test_flipped_predictions_map_back_onto_the_image(task: StarDistTask | FlowTask) -> None:
    """With an oracle that predicts exactly (and so commutes with flips), the mean of the four flipped predictions
    mapped back equals the plain prediction: rays, flow components and the output grid are mirrored right, also
    for an image size that is not a multiple of the grid."""
    labels = np.zeros((65, 63), np.float32)  # objects off the border: the tile's padding adds nothing
    labels[2:-2, 2:-2] = make_synthetic_nuclei(1, size=(61, 59), seed=3)[1][0]
    plain = _oracle_segmenter(replace(task, tta=False), tile=66).predict(labels)
    flipped = _oracle_segmenter(task, tile=66).predict(labels)
    for a, b in zip(plain, flipped, strict=True):
        assert a.shape == b.shape
        # Cellpose's centre, the pixel nearest the mean, moves by a pixel under a flip when two pixels tie
        share = 0.9 if isinstance(task, FlowTask) and task.variant == "cellpose" else 0.99
        assert np.isclose(a, b, atol=1e-3).mean() > share
    decoded = task.decode(flipped, labels.shape)
    assert matching(labels.astype(np.int64), decoded, thresh=0.5).accuracy > 0.95

"""Semantic segmentation through the same trainer: patches, joint augmentation, tiled whole-image evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from convscope import evaluate, load_recipe, train
from convscope.config import NormalizeConfig
from convscope.datasets.segmentation import SegmentationSet
from convscope.runs.layout import RunDir
from convscope.training.patches import PatchGrid, PatchSampler

RECIPE = """
task: semantic
data:
  dataset: synthetic_bacteria
  synthetic_count: 8
  synthetic_size: 80
  patch_size: 64
  patches_per_epoch: 16
  normalize: {mode: percentile}
model:
  name: unet
  options: {depth: 2, base_filters: 4}
augment: {flip_horizontal: true, rotate90: true, rotation: 30, elastic: 1.0, noise: 0.02}
train: {epochs: 2, batch_size: 8, progress: false, num_threads: 1}
"""


def test_semantic_run_directory(tmp_path: Path) -> None:
    recipe = tmp_path / "seg.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "run"
    metrics = train(load_recipe(recipe), out, log=lambda _m: None)
    run = RunDir.open(out)
    history = run.read_history()
    assert {"train_dice", "val_dice", "train_iou", "val_pixel_accuracy"} <= set(history[0])
    on_disk = json.loads(run.metrics.read_text())
    assert on_disk == metrics
    for split in ("val", "test"):
        m = on_disk[split]
        assert {"dice", "iou", "pixel_accuracy", "all_background_accuracy", "per_image", "per_class"} <= set(m)
        assert 0.0 <= m["dice"] <= 1.0 and len(m["per_image"]) == m["n_images"]
    model_cfg = run.read_model_config()
    assert model_cfg["task"] == "semantic" and 0.0 < model_cfg["threshold"] < 1.0
    assert model_cfg["threshold"] == on_disk["threshold"]
    assert "Dice" in run.report.read_text() or "dice" in run.report.read_text()
    messages: list[str] = []
    again = evaluate(out, split="test", retune=True, log=messages.append).metrics  # a binary run tunes its threshold
    assert any("thresholds tuned on validation" in m for m in messages)
    assert again["threshold"] == run.read_model_config()["threshold"]


def _set() -> SegmentationSet:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (50, 70, 1), dtype=np.uint8), rng.integers(0, 255, (20, 30, 1), dtype=np.uint8)]
    masks = [np.zeros((50, 70), np.uint8), np.zeros((20, 30), np.uint8)]
    masks[0][10:14, 60:64] = 1
    return SegmentationSet(images, masks, ("a", "b"))


def test_patch_sampler_is_seeded_and_finds_foreground() -> None:
    data = _set()
    kwargs = dict(patch=32, samples=40, foreground_bias=1.0, seed=3, device=torch.device("cpu"))
    a, b = PatchSampler(data, NormalizeConfig(), **kwargs), PatchSampler(data, NormalizeConfig(), **kwargs)
    a.set_epoch(2)
    b.set_epoch(2)
    xa, ya = a.batch(torch.arange(40))
    xb, yb = b.batch(torch.arange(40))
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert xa.shape == (40, 1, 32, 32) and ya.shape == (40, 32, 32) and ya.dtype == torch.int64
    from_a = (torch.from_numpy(a.which) == 0).nonzero()[:, 0]
    assert bool((ya[from_a].flatten(1).amax(1) == 1).all())  # every crop of image a holds its foreground
    b.set_epoch(3)
    assert not torch.equal(b.batch(torch.arange(40))[0], xa)


def test_patch_grid_covers_every_pixel() -> None:
    grid = PatchGrid(_set(), NormalizeConfig(), patch=32, device=torch.device("cpu"))
    assert len(grid) == 2 * 3 + 1  # 50x70 -> 2 rows x 3 columns; 20x30 padded to 32x32 -> 1
    # columns start at 0, 32 and 38 (last aligned to the border): the 4x4 square at x 60..63 is in two crops
    assert int(grid.y.sum()) == 2 * 16
    with pytest.raises(IndexError):
        grid.batch(torch.tensor([len(grid)]))


def test_train_step_returns_the_augmented_targets() -> None:
    from convscope.config import AugmentConfig, TrainConfig
    from convscope.tasks.semantic import SemanticTask
    from convscope.training.step import make_train_step
    from convscope.transforms import build_augmentation

    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        model.weight.fill_(10.0)
        model.bias.fill_(-5.0)  # logit > 0 exactly where the input is 1
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    augment = build_augmentation(AugmentConfig(flip_horizontal=True, rotate90=True), with_mask=True)
    step = make_train_step(model, model, SemanticTask(), optimizer, augment, TrainConfig())
    y = (torch.rand(16, 12, 12) > 0.7).long()
    _, logits, y_aug = step(y[:, None].float(), y)
    assert not torch.equal(y_aug, y)  # some were flipped or rotated
    assert torch.equal((logits[:, 0] > 0).long(), y_aug)

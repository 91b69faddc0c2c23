from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from convscope import load_recipe, train
from convscope.datasets.bacteria import make_synthetic_bacteria
from convscope.errors import ConvscopeError
from convscope.inference.segmenter import Segmenter
from convscope.io import read_image, write_image

RECIPE = """
task: semantic
data: {dataset: synthetic_bacteria, synthetic_count: 8, synthetic_size: 96, patch_size: 64,
       patches_per_epoch: 32, normalize: {mode: percentile}}
model: {name: unet, options: {depth: 2, base_filters: 8}}
train: {epochs: 3, batch_size: 8, learning_rate: 0.01, progress: false, num_threads: 1}
"""


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seg")
    (root / "seg.yaml").write_text(RECIPE)
    train(load_recipe(root / "seg.yaml"), root / "run", log=lambda _m: None)
    return root / "run"


def test_tiled_prediction_matches_whole_image(seg_run: Path) -> None:
    seg = Segmenter.from_run(seg_run)
    image = make_synthetic_bacteria(1, size=(200, 264), seed=9)[0][0][:, :, None]
    tiled = seg.probabilities(image)[1]
    low, high = np.percentile(image, [1.0, 99.8]).astype(np.float32)
    x = torch.from_numpy(((image.astype(np.float32) - low) / (high - low)).transpose(2, 0, 1)[None])
    with torch.no_grad():
        whole = torch.sigmoid(seg.model(x))[0, 0].numpy()
    assert tiled.shape == whole.shape == (200, 264)
    assert np.abs(tiled - whole).mean() < 0.01
    agree = ((tiled > seg.task.threshold) == (whole > seg.task.threshold)).mean()
    assert agree > 0.995


def test_segment_paths_writes_masks_and_csv(seg_run: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    images, _ = make_synthetic_bacteria(2, size=(70, 130), seed=4)
    for i, im in enumerate(images):
        write_image(inputs / f"img{i}.tif", im)
    out = tmp_path / "masks"
    results = Segmenter.from_run(seg_run).segment_paths([inputs], out, png=True, probabilities=True)
    assert [Path(r.path).name for r in results] == ["img0.tif", "img1.tif"]
    mask = read_image(out / "img0_mask.tif")
    assert mask.shape == (70, 130) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert read_image(out / "img0_prob.tif").dtype == np.float32
    assert (out / "img1_mask.png").is_file()
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert float(rows[0]["foreground_fraction"]) == pytest.approx(float((mask > 0).mean()))
    with pytest.raises(ConvscopeError, match="holds input images"):
        Segmenter.from_run(seg_run).segment_paths([inputs], inputs)


def test_segment_thresholds_logits_like_probabilities(seg_run: Path) -> None:
    seg = Segmenter.from_run(seg_run)
    image = make_synthetic_bacteria(1, size=(90, 120), seed=2)[0][0]
    probs = seg.probabilities(image)
    assert np.array_equal(seg.segment(image), (probs[1] > seg.task.threshold).astype(np.uint8))

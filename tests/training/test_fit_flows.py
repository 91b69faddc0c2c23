"""Flow-field instances through the same trainer: cached potentials, augmented targets, tuned thresholds,
matching metrics, label-image prediction and re-evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convscope import load_recipe, train
from convscope.inference.instances import InstanceSegmenter
from convscope.io.image import read_image, write_image
from convscope.runs.layout import RunDir
from convscope.tasks.flows import FlowTask
from convscope.training.evaluate import evaluate_run
from convscope.training.evaluate_instances import REPORTED_IOUS

RECIPE = """
task: flows
data:
  dataset: synthetic_bacteria
  synthetic_count: 6
  synthetic_size: 72
  patch_size: 32
  patches_per_epoch: 16
  normalize: {mode: percentile}
model:
  name: unet
  options: {depth: 1, base_filters: 4}
augment: {flip_horizontal: true, rotate90: true, rotation: 20}
flows: {variant: omnipose, min_size: 5}
train: {epochs: 2, batch_size: 8, progress: false, num_threads: 1}
"""


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("flows")
    recipe = tmp / "flows.yaml"
    recipe.write_text(RECIPE)
    out = tmp / "run"
    return out, train(load_recipe(recipe), out, log=lambda _m: None)


def test_run_directory_has_matching_metrics_and_tuned_thresholds(flow_run: tuple[Path, dict]) -> None:
    out, metrics = flow_run
    run = RunDir.open(out)
    history = run.read_history()
    assert {"train_loss", "val_loss", "train_flow_mse", "val_prob_bce", "val_dist_mse"} <= set(history[0])
    on_disk = json.loads(run.metrics.read_text())
    assert on_disk == metrics
    for split in ("val", "test"):
        m = on_disk[split]
        assert list(m["matching"]) == [f"{t:g}" for t in REPORTED_IOUS]
        assert len(m["per_image"]) == m["n_images"] == 1
    assert on_disk["test"]["seconds_per_megapixel"]["postprocess"] > 0
    model_cfg = run.read_model_config()
    assert model_cfg["task"] == "flows" and model_cfg["flows"]["variant"] == "omnipose"
    assert model_cfg["model"]["options"]["num_classes"] == 4
    assert model_cfg["thresholds"] == on_disk["thresholds"]
    assert model_cfg["thresholds"] in FlowTask().threshold_grid()
    assert "IoU 0.5" in run.report.read_text()


def test_predict_and_evaluate_use_the_saved_thresholds(flow_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, metrics = flow_run
    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    write_image(images / "big.tif", rng.integers(0, 255, (150, 97), dtype=np.uint8))  # several tiles
    segmenter = InstanceSegmenter.from_run(out)
    assert segmenter.task.thresholds == metrics["thresholds"]
    [result] = segmenter.segment_paths([images], tmp_path / "labels")
    labels = read_image(result.labels)
    assert labels.shape == (150, 97) and labels.dtype == np.uint16
    assert result.count == len(np.unique(labels[labels > 0]))
    again = evaluate_run(out, split="test", log=lambda _m: None)
    assert again["test"]["matching"] == metrics["test"]["matching"]


def test_switching_on_test_time_augmentation_retunes_and_saves_it(flow_run: tuple[Path, dict]) -> None:
    out, _ = flow_run
    messages: list[str] = []
    metrics = evaluate_run(out, split="test", tta=True, log=messages.append)
    model_cfg = RunDir.open(out).read_model_config()
    assert model_cfg["flows"]["tta"] is True and InstanceSegmenter.from_run(out).task.tta
    assert any("tuning the thresholds again" in m for m in messages)
    assert model_cfg["thresholds"] == metrics["thresholds"] and metrics["thresholds"] in FlowTask().threshold_grid()
    messages.clear()
    evaluate_run(out, split="test", tta=True, log=messages.append)  # unchanged: the saved thresholds are used
    assert not any("tuning" in m for m in messages)

"""Star-convex instances through the same trainer: targets after augmentation, tuned thresholds, matching
metrics, label-image prediction, re-evaluation and resume."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from convscope import load_recipe, train
from convscope.errors import ConvscopeError
from convscope.inference.instances import InstanceSegmenter
from convscope.io.image import read_image, write_image
from convscope.runs.layout import RunDir
from convscope.training.evaluate import evaluate_run
from convscope.training.evaluate_instances import REPORTED_IOUS

RECIPE = """
task: stardist
data:
  dataset: synthetic_nuclei
  synthetic_count: 6
  synthetic_size: 72
  patch_size: 32
  patches_per_epoch: 16
  normalize: {mode: percentile}
model:
  name: stardist
  options: {depth: 1, base_filters: 4, features: 8}
augment: {flip_horizontal: true, rotate90: true, rotation: 20}
stardist: {n_rays: 8}
train: {epochs: 2, batch_size: 8, progress: false, num_threads: 1}
"""


@pytest.fixture(scope="module")
def star_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("stardist")
    recipe = tmp / "star.yaml"
    recipe.write_text(RECIPE)
    out = tmp / "run"
    return out, train(load_recipe(recipe), out, log=lambda _m: None)


def test_run_directory_has_matching_metrics_and_tuned_thresholds(star_run: tuple[Path, dict]) -> None:
    out, metrics = star_run
    run = RunDir.open(out)
    history = run.read_history()
    assert {"train_loss", "val_loss", "train_prob_bce", "val_dist_mae"} <= set(history[0])
    on_disk = json.loads(run.metrics.read_text())
    assert on_disk == metrics
    for split in ("val", "test"):
        m = on_disk[split]
        assert list(m["matching"]) == [f"{t:g}" for t in REPORTED_IOUS]
        for row in m["matching"].values():
            assert {"precision", "recall", "f1", "accuracy", "panoptic_quality"} <= set(row)
            assert all(0.0 <= row[k] <= 1.0 for k in ("precision", "recall", "f1", "accuracy"))
        assert len(m["per_image"]) == m["n_images"] == 1
    assert on_disk["test"]["seconds_per_megapixel"]["network"] > 0
    model_cfg = run.read_model_config()
    assert model_cfg["task"] == "stardist" and model_cfg["stardist"]["n_rays"] == 8
    assert model_cfg["thresholds"] == on_disk["thresholds"]
    assert 0.3 <= model_cfg["thresholds"]["prob"] <= 0.8 and model_cfg["thresholds"]["nms"] in (0.3, 0.4, 0.5)
    assert "IoU 0.5" in run.report.read_text()


def test_predict_writes_label_tiffs_and_counts(star_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = star_run
    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    write_image(images / "big.tif", rng.integers(0, 255, (150, 97), dtype=np.uint8))  # not a tile multiple
    write_image(images / "small.png", rng.integers(0, 255, (20, 30), dtype=np.uint8))  # smaller than a tile
    segmenter = InstanceSegmenter.from_run(out)
    results = segmenter.segment_paths([images], tmp_path / "labels")
    assert [Path(r.labels).name for r in results] == ["big_labels.tif", "small_labels.tif"]
    for r, shape in zip(results, [(150, 97), (20, 30)], strict=True):
        labels = read_image(r.labels)
        assert labels.shape == shape and labels.dtype == np.uint16
        assert r.count == len(np.unique(labels[labels > 0]))
    with (tmp_path / "labels" / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(row["count"]) for row in rows] == [r.count for r in results]
    with pytest.raises(ConvscopeError, match="holds input images"):
        segmenter.segment_paths([images], images)


def test_evaluate_reuses_the_saved_thresholds(star_run: tuple[Path, dict]) -> None:
    out, metrics = star_run
    again = evaluate_run(out, split="test", log=lambda _m: None)
    assert again["test"]["matching"] == metrics["test"]["matching"]
    assert again["thresholds"] == metrics["thresholds"]


def test_evaluate_retune_tunes_the_thresholds_again(star_run: tuple[Path, dict], tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(star_run[0], out)  # the shared run keeps its thresholds
    messages: list[str] = []
    again = evaluate_run(out, split="test", retune=True, log=messages.append)
    assert any("thresholds tuned on validation" in m for m in messages)
    assert again["thresholds"] == RunDir.open(out).read_model_config()["thresholds"]
    assert set(again["thresholds"]) == {"prob", "nms"}


def test_stardist_recipe_errors(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(RECIPE.replace("patch_size: 32", "patch_size: 33"))
    with pytest.raises(ConvscopeError, match=r"multiple of stardist\.grid"):
        train(load_recipe(recipe), tmp_path / "r1", log=lambda _m: None)
    recipe.write_text(RECIPE.replace("options: {depth: 1", "options: {grid: 2, depth: 1"))
    with pytest.raises(ConvscopeError, match=r"model\.options\.grid: set from stardist\.grid"):
        train(load_recipe(recipe), tmp_path / "r2", log=lambda _m: None)
    recipe.write_text(RECIPE.replace("synthetic_nuclei", "isbi2012"))
    with pytest.raises(ConvscopeError, match="isbi2012 has membrane masks"):
        train(load_recipe(recipe), tmp_path / "r3", data_dir=tmp_path, log=lambda _m: None)


def test_time_limit_stops_between_epochs_and_finishes_the_run(tmp_path: Path) -> None:
    recipe = tmp_path / "timed.yaml"
    recipe.write_text(RECIPE.replace("epochs: 2,", "epochs: 50, time_limit: 0.0001,"))
    messages: list[str] = []
    metrics = train(load_recipe(recipe), tmp_path / "run", log=messages.append)
    assert len(RunDir.open(tmp_path / "run").read_history()) == 1
    assert any(m.startswith("time limit:") for m in messages)
    assert "matching" in metrics["test"]

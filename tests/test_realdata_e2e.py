"""End to end on the real data sets in ../shared/data (on demand: ``make test-realdata``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convscope import load_recipe, train
from convscope.inference import Predictor, predict_paths

pytestmark = pytest.mark.realdata
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_mnist_cnn_learns_digits(shared_data: Path, tmp_path: Path) -> None:
    config = load_recipe(EXAMPLES / "ex4_mnist_cnn.yaml",
                         ["data.max_train_images=6000", "train.epochs=3", "train.progress=false"])
    metrics = train(config, tmp_path / "run", data_dir=shared_data, log=lambda _m: None)
    assert metrics["test"]["n_images"] == 10_000
    assert metrics["test"]["accuracy"] > 0.90
    assert len(metrics["test"]["per_class"]) == 10


def test_rbc_pipeline_evaluates_and_predicts(shared_data: Path, tmp_path: Path) -> None:
    config = load_recipe(EXAMPLES / "ex5_rbc_vgg2.yaml",
                         ["data.max_train_images=400", "train.epochs=1", "train.progress=false"])
    out = tmp_path / "run"
    metrics = train(config, out, data_dir=shared_data, log=lambda _m: None)
    assert sum(map(sum, metrics["test"]["confusion_matrix"])) == 2190
    assert json.loads((out / "model" / "config.json").read_text())["input_shape"] == [85, 85, 3]
    predictor = Predictor.from_run(out)
    files = sorted((shared_data / "rbc" / "test" / "abnormal").glob("*.jpg"))[:5]
    rows = predict_paths(predictor, files, tmp_path / "predictions.csv")
    assert [r.path for r in rows] == [str(f) for f in files]
    assert all(r.label in ("abnormal", "normal") and 0.5 <= r.probability <= 1 for r in rows)


def test_stardist_on_dsb2018_learns_nuclei(shared_data: Path, tmp_path: Path) -> None:
    """A few minutes of the ex7 recipe already finds most nuclei of the DSB 2018 fluorescence test images."""
    config = load_recipe(EXAMPLES / "ex7_stardist_dsb2018.yaml", ["train.epochs=8", "train.progress=false"])
    metrics = train(config, tmp_path / "run", data_dir=shared_data, log=lambda _m: None)
    test = metrics["test"]
    assert test["n_images"] == 81 and len(test["per_image"]) == 81
    assert test["matching"]["0.5"]["f1"] > 0.7

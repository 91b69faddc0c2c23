"""Every semantic and instance run is judged beside a classical baseline, and its report says what the data were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convscope import evaluate, load_recipe, train
from convscope.runs.layout import RunDir

from ..training.test_fit_semantic import RECIPE as SEMANTIC_RECIPE


def _train(tmp_path: Path, text: str) -> tuple[dict, RunDir]:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    out = tmp_path / "run"
    metrics = train(load_recipe(recipe), out, log=lambda _m: None)
    return metrics, RunDir.open(out)


@pytest.mark.parametrize("kind", ["semantic", "instances"])
def test_the_baseline_is_scored_on_the_same_test_images(tmp_path: Path, tiny_star_recipe: str, kind: str) -> None:
    metrics, run = _train(tmp_path, SEMANTIC_RECIPE if kind == "semantic" else tiny_star_recipe)
    baseline = metrics["baseline"]["test"]
    test = metrics["test"]
    assert baseline["n_images"] == test["n_images"]
    assert [r["name"] for r in baseline["per_image"]] == [r["name"] for r in test["per_image"]]
    if kind == "semantic":
        assert baseline["baseline"] == "Otsu threshold" and 0.0 <= baseline["dice"] <= 1.0
        assert set(baseline) >= {"dice", "iou", "pixel_accuracy"}
    else:
        assert baseline["baseline"] == "Otsu + distance-transform watershed"
        assert set(baseline["matching"]) == set(test["matching"])
    assert json.loads(run.metrics.read_text())["baseline"] == metrics["baseline"]
    html = run.report.read_text()
    assert "Do I need deep learning?" in html and baseline["baseline"] in html
    assert 'id="split-baseline"' not in html  # the baseline is not drawn as one more split
    check = json.loads(run.data_check.read_text())
    assert check["verdict"].startswith("usable for")
    assert "What were the data?" in html and "Data check: usable for" in html
    again = evaluate(run.path, log=lambda _m: None)  # evaluate recomputes it on the same images
    assert again.metrics["baseline"]["test"]["per_image"] == baseline["per_image"]


def test_classification_runs_have_no_baseline_but_a_data_check(tmp_path: Path, tiny_recipe: Path) -> None:
    metrics, run = _train(tmp_path, tiny_recipe.read_text())
    assert "baseline" not in metrics
    html = run.report.read_text()
    assert "Do I need deep learning?" not in html and "class balance" in html

"""Instance runs side by side: the table from metrics.json and history.csv, the split check, the overlay choice and
the files of ``convscope compare``."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

from convscope import load_recipe, train
from convscope.errors import ConvscopeError
from convscope.evaluation.compare import compare_runs, differing_images
from convscope.report.compare import (
    COLUMNS,
    markdown_table,
    plot_comparison_curves,
    text_table,
    write_comparison,
)
from convscope.runs.layout import RunDir

DATA = """
data:
  dataset: synthetic_bacteria
  synthetic_count: 10
  synthetic_size: 72
  patch_size: 32
  patches_per_epoch: 16
  normalize: {mode: percentile}
train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}
"""
STARDIST = DATA + """
task: stardist
model:
  name: stardist
  options: {depth: 1, base_filters: 4, features: 8}
stardist: {n_rays: 8}
"""
FLOWS = DATA + """
task: flows
model:
  name: unet
  options: {depth: 1, base_filters: 4}
flows: {variant: omnipose, min_size: 5}
"""
CLASSIFIER = """
data: {dataset: synthetic_cells, synthetic_count: 40, synthetic_size: 32}
model: {name: mnist_cnn}
train: {epochs: 1, batch_size: 16, progress: false, num_threads: 1}
"""
SCORES = ("accuracy", "f1", "panoptic_quality")


def _train(tmp: Path, name: str, recipe: str) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(recipe)
    train(load_recipe(path), tmp / name, log=lambda _m: None)
    return tmp / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A star-convex and a flow run on the same 10 + 2 + 2 generated bacteria images, and a classifier."""
    tmp = tmp_path_factory.mktemp("compare")
    return {"star": _train(tmp, "star", STARDIST), "flows": _train(tmp, "flows", FLOWS),
            "classifier": _train(tmp, "classifier", CLASSIFIER)}


@pytest.fixture(scope="module")
def written(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("written") / "cmp"
    write_comparison([runs["star"], runs["flows"]], out, log=lambda _m: None)
    return out


def _copy(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _edit_config(run: Path, section: str, key: str, value: object) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    config[section][key] = value
    (run / "config.yaml").write_text(yaml.safe_dump(config))


def test_table_has_one_row_per_run_with_the_numbers_of_metrics_json(runs: dict[str, Path]) -> None:
    comparison = compare_runs([runs["star"], runs["flows"]])
    assert [r.name for r in comparison.runs] == ["star", "flows"]
    assert [r.method for r in comparison.runs] == ["stardist (8 rays, grid 2)", "flows (omnipose flows)"]
    assert comparison.data["dataset"] == "synthetic_bacteria" and comparison.data["seed"] == 0
    assert comparison.n_test_images == 2
    for summary in comparison.runs:
        run = RunDir.open(summary.path)
        test = run.read_metrics()["test"]
        row = summary.row()
        assert list(row) == [key for key, _, _ in COLUMNS]
        for t in ("0.5", "0.75"):
            for s in SCORES:
                assert row[f"{s}@{t}"] == test["matching"][t][s]
        history = run.read_history()
        assert row["epochs"] == len(history) == 1
        seconds = sum(h["seconds"] + h["validation_seconds"] for h in history)
        assert math.isclose(row["training_minutes"], seconds / 60)
        assert row["network_s_per_mp"] == test["seconds_per_megapixel"]["network"] > 0
        assert row["postprocess_s_per_mp"] == test["seconds_per_megapixel"]["postprocess"] > 0
    text = text_table(comparison).splitlines()
    assert len(text) == 4 and text[0].startswith("Run") and text[1].startswith("star ")
    assert "flows (omnipose flows)" in text[2]
    assert text[3].startswith("classical baseline  Otsu + distance-transform watershed")  # the baseline row last
    md = markdown_table(comparison).splitlines()
    assert len(md) == 5 and md[0].count("|") == len(COLUMNS) + 1
    assert md[2].startswith("| star | stardist (8 rays, grid 2) |")
    baseline = RunDir.open(runs["star"]).read_metrics()["baseline"]["test"]["matching"]["0.5"]
    first = f"| classical baseline | Otsu + distance-transform watershed | {baseline['accuracy']:.3f} |"
    assert md[4].startswith(first)
    assert "**" not in md[4]  # never marked best


def test_writes_markdown_html_json_and_overlays(runs: dict[str, Path], written: Path) -> None:
    assert sorted(p.name for p in written.iterdir()) == [
        "compare.html", "compare.json", "compare.md", "matching_curves.png", "overlays.png"]
    numbers = json.loads((written / "compare.json").read_text())
    metrics = {name: RunDir.open(runs[name]).read_metrics()["test"] for name in ("star", "flows")}
    assert [r["name"] for r in numbers["runs"]] == ["star", "flows"]
    for r in numbers["runs"]:
        assert r["accuracy@0.5"] == metrics[r["name"]]["matching"]["0.5"]["accuracy"]
        assert r["matching"] == metrics[r["name"]]["matching"]
    # 2 test images, both shown, with each run's accuracy from metrics.json
    shown = numbers["overlays"]
    assert sorted(o["name"] for o in shown) == ["synthetic_bacteria:test/0", "synthetic_bacteria:test/1"]
    for o in shown:
        for name in ("star", "flows"):
            per_image = {p["name"]: p["accuracy@0.5"] for p in metrics[name]["per_image"]}
            assert o["accuracy@0.5"][name] == per_image[o["name"]]
    # one row per image, one column per run: taller than wide for 2 x 2 panels plus titles and legend
    grid = imread(written / "overlays.png")
    assert grid.shape[0] > grid.shape[1] * 0.9
    md = (written / "compare.md").read_text()
    assert "| star | stardist (8 rays, grid 2) |" in md and "](matching_curves.png)" in md and "](overlays.png)" in md
    html = (written / "compare.html").read_text()
    assert html.count('src="data:image/png;base64,') == 2 and "src=\"http" not in html
    assert "flows (omnipose flows)" in html and "synthetic_bacteria" in html


def test_nothing_is_overwritten_without_overwrite(runs: dict[str, Path], written: Path, tmp_path: Path) -> None:
    before = (written / "compare.md").read_text()
    with pytest.raises(ConvscopeError, match=r"already exists.*--overwrite"):
        write_comparison([runs["star"], runs["flows"]], written, log=lambda _m: None)
    assert (written / "compare.md").read_text() == before
    out = tmp_path / "again"
    write_comparison([runs["flows"], runs["star"]], out, n_images=0, log=lambda _m: None)
    assert not (out / "overlays.png").exists() and "overlays.png" not in (out / "compare.md").read_text()
    write_comparison([runs["flows"], runs["star"]], out, n_images=1, overwrite=True, log=lambda _m: None)
    assert len(json.loads((out / "compare.json").read_text())["overlays"]) == 1


def test_runs_on_different_data_or_split_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    other = _copy(runs["flows"], tmp_path / "other")
    _edit_config(other, "data", "synthetic_count", 12)
    with pytest.raises(ConvscopeError, match=r"runs star and other differ in data\.synthetic_count \(10 vs 12\)"):
        compare_runs([runs["star"], other])
    seeded = _copy(runs["flows"], tmp_path / "seeded")
    _edit_config(seeded, "train", "seed", 1)
    with pytest.raises(ConvscopeError, match=r"differ in train\.seed \(0 vs 1\)"):
        compare_runs([runs["star"], seeded])
    nuclei = _copy(runs["flows"], tmp_path / "nuclei")
    _edit_config(nuclei, "data", "dataset", "synthetic_nuclei")
    with pytest.raises(ConvscopeError, match=r"differ in data\.dataset"):
        compare_runs([runs["star"], runs["flows"], nuclei])


def test_non_instance_runs_and_bad_arguments_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConvscopeError, match="classification run, not an instance run"):
        compare_runs([runs["star"], runs["classifier"]])
    with pytest.raises(ConvscopeError, match="two or more"):
        compare_runs([runs["star"]])
    with pytest.raises(ConvscopeError, match="given twice"):
        compare_runs([runs["star"], runs["star"]])
    with pytest.raises(ConvscopeError, match="not a convscope run directory"):
        compare_runs([runs["star"], tmp_path])
    with pytest.raises(ConvscopeError, match="--images -1"):
        write_comparison([runs["star"], runs["flows"]], tmp_path / "x", n_images=-1)
    assert not (tmp_path / "x").exists()


def test_runs_without_per_image_scores_are_scored_again(runs: dict[str, Path], written: Path, tmp_path: Path) -> None:
    bare = _copy(runs["star"], tmp_path / "bare")
    metrics = json.loads((bare / "metrics.json").read_text())
    del metrics["test"]["per_image"]
    (bare / "metrics.json").write_text(json.dumps(metrics))
    messages: list[str] = []
    write_comparison([bare, runs["flows"]], tmp_path / "out", log=messages.append)
    assert any("scoring again" in m for m in messages)
    again = {o["name"]: o["accuracy@0.5"]["bare"] for o in json.loads((tmp_path / "out/compare.json").read_text())
             ["overlays"]}
    before = {o["name"]: o["accuracy@0.5"]["star"] for o in json.loads((written / "compare.json").read_text())
              ["overlays"]}
    assert again == pytest.approx(before)


def test_differing_images_puts_the_largest_spread_first() -> None:
    acc = np.array([[1.0, 0.75, 0.0, 0.5, np.nan],
                    [1.0, 0.25, 0.5, 0.5, 0.25]])
    # spreads 0, 0.5, 0.5, 0, 0 (image 4 has one known value); ties go to the lower mean accuracy
    assert differing_images(acc, 3) == [2, 1, 4]
    assert differing_images(acc, 10) == [2, 1, 4, 3, 0]
    assert differing_images(acc, 0) == []
    with pytest.raises(ValueError, match="n_runs, n_images"):
        differing_images([0.1, 0.2], 1)


def test_curves_have_one_line_per_run_in_each_panel(runs: dict[str, Path]) -> None:
    comparison = compare_runs([runs["star"], runs["flows"]])
    fig = plot_comparison_curves(comparison.runs)
    accuracy, f1 = fig.axes
    assert len(accuracy.lines) == len(f1.lines) == 3  # two runs and the IoU 0.5 marker
    xs = accuracy.lines[0].get_xdata()
    assert list(xs) == sorted(float(t) for t in comparison.runs[0].matching)


def test_runs_with_the_same_folder_name_are_told_apart(runs: dict[str, Path], tmp_path: Path) -> None:
    twin = _copy(runs["star"], tmp_path / "elsewhere" / "star")
    comparison = compare_runs([runs["star"], twin])
    assert [r.name for r in comparison.runs] == [f"{runs['star'].parent.name}/star", "elsewhere/star"]

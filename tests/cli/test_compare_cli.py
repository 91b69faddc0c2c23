"""``convscope compare``: the table on the terminal, the files, and bad input as one line with exit code 2."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from convscope import load_recipe, train
from convscope.cli.main import run

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
stardist: {n_rays: 8}
train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}
"""


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["convscope", *map(str, args)])
    try:
        run()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(result: tuple[int, str, str], *needles: str) -> None:
    code, _out, err = result
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny star-convex run and a copy of it (two run folders on the same data and split)."""
    tmp = tmp_path_factory.mktemp("compare_cli")
    recipe = tmp / "star.yaml"
    recipe.write_text(RECIPE)
    train(load_recipe(recipe), tmp / "eight_rays", log=lambda _m: None)
    shutil.copytree(tmp / "eight_rays", tmp / "copy")
    return tmp / "eight_rays", tmp / "copy"


def test_compare_prints_the_table_and_writes_the_files(monkeypatch, capsys, two_runs, tmp_path: Path) -> None:
    a, b = two_runs
    out = tmp_path / "cmp"
    code, text, err = cli(monkeypatch, capsys, "compare", a, b, "--out", out, "--images", 1)
    assert code == 0, err
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["Run", "Method", "Accuracy"]
    assert lines[1].split()[0] == "eight_rays" and "  stardist (8 rays, grid 2)  " in lines[1]
    assert lines[2].startswith("copy ") and lines[3].startswith("classical baseline  Otsu + distance-transform")
    assert {p.name for p in out.iterdir()} == {"compare.html", "compare.md", "compare.json", "matching_curves.png",
                                               "overlays.png"}
    assert [r["name"] for r in json.loads((out / "compare.json").read_text())["runs"]] == ["eight_rays", "copy"]
    # a second comparison into the same folder is refused, then allowed with --overwrite
    assert_user_error(cli(monkeypatch, capsys, "compare", a, b, "--out", out), "compare.", "--overwrite")
    code, _, err = cli(monkeypatch, capsys, "compare", a, b, "--out", out, "--images", 0, "--overwrite")
    assert code == 0, err


def test_bad_input_is_one_line_with_exit_code_2(monkeypatch, capsys, two_runs, tmp_path: Path) -> None:
    a, b = two_runs
    out = tmp_path / "cmp"
    assert_user_error(cli(monkeypatch, capsys, "compare", a, "--out", out), "two or more")
    assert_user_error(cli(monkeypatch, capsys, "compare", a, tmp_path / "missing", "--out", out),
                      "missing", "not a convscope run directory")
    other = tmp_path / "other"
    shutil.copytree(a, other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["data"]["synthetic_size"] = 96
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    assert_user_error(cli(monkeypatch, capsys, "compare", a, other, "--out", out),
                      "eight_rays", "other", "data.synthetic_size")
    model = json.loads((other / "model" / "config.json").read_text())
    model["task"] = "semantic"
    (other / "model" / "config.json").write_text(json.dumps(model))
    assert_user_error(cli(monkeypatch, capsys, "compare", a, other, "--out", out), "semantic run, not an instance")
    assert_user_error(cli(monkeypatch, capsys, "compare", a, b, "--out", out, "--images", -2), "--images -2")
    assert not out.exists()

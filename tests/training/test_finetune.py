"""Fine-tuning a run on new image / label pairs: the recipe, the complete new run directory, mixing in the
original data, the CLI, and the errors a user can make."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from convscope import finetune, train
from convscope.cli.main import app, run
from convscope.config import load_recipe
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.errors import ConvscopeError
from convscope.io.image import write_image
from convscope.runs.layout import RunDir
from convscope.training.finetune import finetune_recipe, prepare_finetune


def write_pairs(folder: Path, n: int, seed: int = 7) -> Path:
    images, labels = make_synthetic_nuclei(n, size=(64, 64), seed=seed)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        write_image(folder / "images" / f"cell{i}.tif", image)
        write_image(folder / "masks" / f"cell{i}.tif", label)
    return folder


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory, tiny_star_recipe: str) -> Path:
    tmp = tmp_path_factory.mktemp("finetune")
    (tmp / "r.yaml").write_text(tiny_star_recipe)
    train(load_recipe(tmp / "r.yaml"), tmp / "base", log=lambda _m: None)
    return tmp / "base"


def test_recipe_starts_from_the_old_weights_on_the_paired_folder(base_run: Path, tmp_path: Path) -> None:
    config = finetune_recipe(base_run, tmp_path, epochs=3)
    assert config.task == "stardist"
    assert Path(config.model.weights) == (base_run / "model" / "weights.safetensors").resolve()
    assert config.data.dataset == "paired" and config.data.path == tmp_path.resolve()
    assert config.data.color == "gray"  # the model takes one channel: RGB(A) pairs are converted
    assert config.train.epochs == 3
    assert config.train.learning_rate == pytest.approx(0.003)
    assert config.stardist.n_rays == 8 and config.model.options == {"depth": 1, "base_filters": 4, "features": 8}


def test_finetune_writes_a_complete_new_run(base_run: Path, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs", 3)
    out = tmp_path / "tuned"
    metrics = finetune(base_run, data, out, epochs=1, holdout=True, log=lambda _m: None)
    run = RunDir.open(out)
    for path in (run.history, run.curves, run.report, run.metrics):
        assert path.is_file(), path
    assert "matching" in metrics["test"]
    assert set(run.read_model_config()["thresholds"]) == {"prob", "nms"}
    recipe = yaml.safe_load(run.config.read_text())
    assert recipe["data"]["dataset"] == "paired" and recipe["model"]["weights"].endswith("weights.safetensors")
    old, new = load_file(RunDir(base_run).weights), load_file(run.weights)
    assert set(old) == set(new)
    assert any(not np.array_equal(old[k].numpy(), new[k].numpy()) for k in old)  # it trained


def test_mixing_the_original_data_lets_one_pair_do(base_run: Path, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs", 1)
    out = tmp_path / "mixed"
    finetune(base_run, data, out, epochs=1, mix_original=3, log=lambda _m: None)
    folder = tmp_path / "mixed_data"
    names = sorted(p.name for p in (folder / "images").iterdir())
    assert names[0] == "new_cell0.tif" and len(names) == 4 and all(n.startswith("orig_") for n in names[1:])
    assert names == sorted(p.name for p in (folder / "masks").iterdir())
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["path"] == str(folder.resolve())


def test_a_few_corrected_images_all_train(base_run: Path, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs", 2)
    out = tmp_path / "two"
    lines: list[str] = []
    metrics = finetune(base_run, data, out, epochs=1, log=lines.append)
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["holdout"] is False
    assert any("data: 2 train / 2 val / 0 test images" in line for line in lines), lines
    assert not any("earlier split" in line for line in lines), lines  # validation reuses them by design
    assert "matching" in metrics["val"] and "test" not in metrics
    assert set(RunDir.open(out).read_model_config()["thresholds"]) == {"prob", "nms"}
    assert (out / "report.html").is_file()


def test_too_few_pairs_and_missing_folders_are_user_errors(base_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConvscopeError, match="needs images/ and masks/"):
        finetune(base_run, tmp_path / "nothing", tmp_path / "o1", log=lambda _m: None)
    data = write_pairs(tmp_path / "pairs", 2)
    with pytest.raises(ConvscopeError, match="at least 3"):
        finetune(base_run, data, tmp_path / "o2", holdout=True, log=lambda _m: None)
    assert not (tmp_path / "o2").exists()
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    with pytest.raises(ConvscopeError, match="no images"):
        finetune(base_run, empty, tmp_path / "o3", log=lambda _m: None)


def test_cli_finetune(base_run: Path, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs", 3)
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["finetune", str(base_run), "--data", str(data), "--out", str(out),
                                      "--epochs", "1", "--holdout"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "metrics.json").read_text())["test"]["matching"]


def test_finetune_is_public_api() -> None:
    import convscope

    assert convscope.finetune is finetune


def test_cli_scores_a_run_without_test_images_on_a_labelled_folder(base_run: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "all"
    finetune(base_run, write_pairs(tmp_path / "pairs", 2), out, epochs=1, log=lambda _m: None)
    monkeypatch.setattr(sys, "argv", ["convscope", "evaluate", str(out)])
    with pytest.raises(SystemExit) as exited:
        run()
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and "\n" not in err and "no test images" in err and "--data DIR" in err
    other = write_pairs(tmp_path / "other", 2, seed=11)
    result = CliRunner().invoke(app, ["evaluate", str(out), "--data", str(other)])
    assert result.exit_code == 0, result.output
    assert "F1" in result.output or "f1" in result.output


def test_rgba_pairs_are_read_as_the_model_takes_them(base_run: Path, tmp_path: Path) -> None:
    images, labels = make_synthetic_nuclei(1, size=(64, 64), seed=3)
    grey = (images[0] * (255.0 / images[0].max())).astype(np.uint8)
    rgba = np.dstack([grey] * 3 + [np.full_like(grey, 255)])  # a grey image saved as RGBA PNG
    write_image(tmp_path / "pairs" / "images" / "cell.png", rgba)
    write_image(tmp_path / "pairs" / "masks" / "cell.png", labels[0].astype(np.uint16))
    config = prepare_finetune(base_run, tmp_path / "pairs", tmp_path / "out", epochs=1, log=lambda _m: None)
    assert config.data.color == "gray" and config.data.holdout is False

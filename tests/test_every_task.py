"""One path for every task: a tiny run of each registered task is trained, loaded with ``load_run`` and predicted
through the one :class:`~convscope.inference.Predictor`, from Python and from the CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import convscope
from convscope.cli.main import run as cli_run
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.io import read_image, write_image
from convscope.tasks import TASKS

RECIPES = {
    "classification": "data: {dataset: synthetic_cells, synthetic_count: 40, synthetic_size: 32}\n"
                      "model: {name: mnist_cnn}\n",
    "semantic": "task: semantic\ndata: {dataset: synthetic_nuclei, synthetic_count: 6, synthetic_size: 64, "
                "patch_size: 32, patches_per_epoch: 8}\nmodel: {name: unet, options: {depth: 2, base_filters: 4}}\n",
    "stardist": "task: stardist\ndata: {dataset: synthetic_nuclei, synthetic_count: 6, synthetic_size: 64, "
                "patch_size: 32, patches_per_epoch: 8}\nmodel: {name: stardist, options: {depth: 2, "
                "base_filters: 4, features: 8}}\nstardist: {n_rays: 8, grid: 2}\n",
    "flows": "task: flows\ndata: {dataset: synthetic_nuclei, synthetic_count: 6, synthetic_size: 64, patch_size: 32, "
             "patches_per_epoch: 8}\nmodel: {name: unet, options: {depth: 2, base_filters: 4}}\n",
}
TRAIN = "train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}\n"


def test_every_registered_task_has_a_recipe_here() -> None:
    assert set(RECIPES) == set(TASKS)


@pytest.fixture(scope="module", params=sorted(RECIPES))
def tiny_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp(request.param)
    (root / "recipe.yaml").write_text(RECIPES[request.param] + TRAIN)
    convscope.train(convscope.load_recipe(root / "recipe.yaml"), root / "run", log=lambda _m: None)
    return request.param, root / "run"


def _image(name: str) -> np.ndarray:
    size = 32 if name == "classification" else 70  # a classifier takes its input size; segmenters any size
    return make_synthetic_nuclei(1, size=(size, size), seed=5)[0][0]


def test_load_run_and_predict_from_python(tiny_run: tuple[str, Path]) -> None:
    name, path = tiny_run
    trained = convscope.load_run(path)
    assert trained.task.name == name and trained.finished
    assert trained.overlap % trained.task.grid == 0 and 0 <= trained.overlap < trained.tile
    predictor = convscope.Predictor(trained)
    image = _image(name)
    result = predictor.segment(image)
    if trained.task.kind == "classification":
        assert result.shape == (len(trained.class_names),) and np.isclose(result.sum(), 1.0)
    else:
        assert result.shape == image.shape and result.dtype.kind == "u"
    pred = predictor.predict(image)
    assert np.array_equal(predictor.decode(pred, image.shape), result)  # decoding needs no second network pass


def test_predict_from_the_cli(tiny_run: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    name, path = tiny_run
    write_image(tmp_path / "in" / "a.tif", _image(name))
    out = tmp_path / ("out.csv" if name == "classification" else "out")
    monkeypatch.setattr(sys, "argv", ["convscope", "predict", str(path), str(tmp_path / "in"), "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        cli_run()
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    if name == "classification":
        assert out.read_text().splitlines()[1].startswith(str(tmp_path / "in" / "a.tif"))
    else:
        written = read_image(next(out.glob("a_*.tif")))
        assert written.shape == (70, 70) and (out / "predictions.csv").is_file()

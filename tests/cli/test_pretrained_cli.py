"""The built-in models at the command line: list, card, predict with and without --diameter, demo."""

from __future__ import annotations

import csv
import json
from importlib.resources import files
from pathlib import Path

import numpy as np

from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.io.image import read_image, write_image
from convscope.metrics.matching import matching

from .test_cli import assert_user_error, cli


def test_models_pretrained_lists_and_prints_the_card(monkeypatch, capsys) -> None:
    code, out, _ = cli(monkeypatch, capsys, "models", "--pretrained")
    assert code == 0 and "nuclei" in out and "stardist" in out
    code, out, _ = cli(monkeypatch, capsys, "models", "--pretrained", "nuclei")
    card = json.loads(out)
    assert code == 0 and card["name"] == "nuclei" and len(card["weights_sha256"]) == 64
    assert_user_error(cli(monkeypatch, capsys, "models", "--pretrained", "nucleus"), "Did you mean 'nuclei'")


def test_predict_nuclei_writes_labels_with_the_diameter_used(monkeypatch, capsys, tmp_path: Path) -> None:
    images, _ = make_synthetic_nuclei(1, size=(128, 128), seed=1, dtype="uint8")
    write_image(tmp_path / "a.tif", images[0])
    code, _, err = cli(monkeypatch, capsys, "predict", "nuclei", tmp_path / "a.tif", "--out", tmp_path / "auto")
    assert code == 0, err
    row = next(csv.DictReader((tmp_path / "auto" / "predictions.csv").open()))
    assert float(row["diameter"]) > 0
    code, _, err = cli(monkeypatch, capsys, "predict", "nuclei", tmp_path / "a.tif", "--out", tmp_path / "given",
                       "--diameter", "40")
    assert code == 0, err
    row = next(csv.DictReader((tmp_path / "given" / "predictions.csv").open()))
    assert float(row["diameter"]) == 40.0 and float(row["scale"]) < 1
    labels = read_image(tmp_path / "given" / "a_labels.tif")
    assert labels.shape == (128, 128) and np.issubdtype(labels.dtype, np.unsignedinteger)


def test_demo_pretrained_writes_labels_and_overlay(monkeypatch, capsys, tmp_path: Path) -> None:
    code, _, err = cli(monkeypatch, capsys, "demo", "pretrained", "--out", tmp_path / "demo")
    assert code == 0, err
    assert {p.name for p in (tmp_path / "demo").iterdir()} >= {"labels.tif", "overlay.png"}


def test_evaluate_builtin_on_a_labelled_folder(monkeypatch, capsys, tmp_path: Path) -> None:
    from convscope.napari import samples

    assert_user_error(cli(monkeypatch, capsys, "evaluate", "nuclei"), "--data DIR")
    (image, _, _), (truth, _, _) = samples.dsb2018_nuclei()
    for stem, flip in (("a", slice(None)), ("b", slice(None, None, -1))):
        write_image(tmp_path / "mine" / "images" / f"{stem}.png", np.ascontiguousarray(image[:, flip]))
        write_image(tmp_path / "mine" / "masks" / f"{stem}.tif", np.ascontiguousarray(truth[:, flip]).astype(np.uint16))
    code, out, err = cli(monkeypatch, capsys, "evaluate", "nuclei", "--data", tmp_path / "mine", "--diameter", "20")
    assert code == 0, err
    assert "mine" in out and "0.5" in out
    assert_user_error(cli(monkeypatch, capsys, "evaluate", tmp_path / "mine", "--diameter", "20"))


def test_predict_tile_option(monkeypatch, capsys, tmp_path: Path) -> None:
    """--tile 0 (the training patch) and --tile 256 (one tile for this 256 x 256 image) find the same nuclei."""
    image = read_image(Path(str(files("convscope.napari") / "data" / "dsb2018_nuclei.png")))  # a real DSB crop
    write_image(tmp_path / "a.png", np.tile(image if image.ndim == 2 else image[..., 0], (2, 2)))
    found = {}
    for tile in ("0", "256"):
        code, _, err = cli(monkeypatch, capsys, "predict", "nuclei", tmp_path / "a.png", "--out", tmp_path / tile,
                           "--diameter", "20", "--tile", tile)
        assert code == 0, err
        found[tile] = read_image(tmp_path / tile / "a_labels.tif")
    assert found["0"].max() > 10 and matching(found["0"], found["256"], thresh=0.5).f1 > 0.95
    assert_user_error(cli(monkeypatch, capsys, "predict", "nuclei", tmp_path / "a.png", "--out", tmp_path / "bad",
                          "--tile", "-1"), "--tile -1")

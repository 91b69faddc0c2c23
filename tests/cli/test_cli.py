"""The command line: the run contract, and user errors as one line with exit code 2."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from convscope.cli.main import run


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
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
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0]


def test_train_evaluate_predict(monkeypatch, capsys, tiny_recipe: Path, class_folder: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "folder.yaml"
    recipe.write_text(tiny_recipe.read_text().replace(
        "dataset: synthetic_cells", f"dataset: folder\n  path: {class_folder}"))
    out = tmp_path / "run"
    code, _, err = cli(monkeypatch, capsys, "train", recipe, "--out", out, "--set", "train.epochs=1")
    assert code == 0, err
    code, text, _ = cli(monkeypatch, capsys, "evaluate", out)
    assert code == 0 and "test: accuracy" in text and "bright" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"accuracy", "loss", "per_class", "confusion_matrix"} <= set(metrics["test"])
    pred_csv = tmp_path / "pred.csv"
    code, _, err = cli(monkeypatch, capsys, "predict", out, class_folder / "test", "--out", pred_csv)
    assert code == 0, err
    rows = list(csv.DictReader(pred_csv.open()))
    assert len(rows) == 8 and {r["class"] for r in rows} <= {"bright", "dark"}
    assert all(0.5 <= float(r["probability"]) <= 1.0 for r in rows)
    # a second predict to the same file is refused, not overwritten
    assert_user_error(cli(monkeypatch, capsys, "predict", out, class_folder / "test", "--out", pred_csv),
                      "already exists", "--overwrite")


def test_user_errors_exit_2_with_one_line(monkeypatch, capsys, tiny_recipe: Path, tmp_path: Path) -> None:
    assert_user_error(cli(monkeypatch, capsys, "train", tmp_path / "nope.yaml", "--out", tmp_path / "r"),
                      "nope.yaml", "recipe not found")
    assert_user_error(cli(monkeypatch, capsys, "train", tiny_recipe, "--out", tmp_path / "r",
                          "--set", "train.epoch=1"), "train.epoch", "train.epochs")
    assert_user_error(cli(monkeypatch, capsys, "train", tiny_recipe, "--out", tmp_path / "r",
                          "--set", "model.name=vgg9"), "unknown model 'vgg9'")
    assert_user_error(cli(monkeypatch, capsys, "evaluate", tmp_path), "not a convscope run directory")
    assert_user_error(cli(monkeypatch, capsys, "train", tiny_recipe, "--out", tmp_path / "r",
                          "--set", "data.dataset=folder", "--set", f"data.path={tmp_path / 'missing'}"), "missing")
    assert_user_error(cli(monkeypatch, capsys, "summary", "vgg1", "--input-shape", "85,85"), "--input-shape")


def test_corrupt_image_is_named(monkeypatch, capsys, tiny_recipe: Path, class_folder: Path, tmp_path: Path) -> None:
    bad = class_folder / "train" / "dark" / "dark_3.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = cli(monkeypatch, capsys, "train", tiny_recipe, "--out", tmp_path / "r",
                 "--set", "data.dataset=folder", "--set", f"data.path={class_folder}")
    assert_user_error(result, "dark_3.png")


def test_models_summary_and_data_list(monkeypatch, capsys) -> None:
    code, text, _ = cli(monkeypatch, capsys, "models")
    assert code == 0 and "vgg16_finetune" in text and "1,925,921" in text
    code, text, _ = cli(monkeypatch, capsys, "summary", "vgg16_transfer", "--input-shape", "85,85,3")
    assert code == 0 and "557,569" in text and "14,714,688" in text
    code, text, _ = cli(monkeypatch, capsys, "data", "list")
    assert code == 0 and all(name in text for name in ("mnist", "rbc", "folder", "synthetic_cells"))


def test_resume_continues_an_interrupted_run(monkeypatch, capsys, tiny_recipe: Path, tmp_path: Path) -> None:
    from convscope.training import fit as fit_mod

    out = tmp_path / "run"
    real_save = fit_mod._save_checkpoint
    calls = {"n": 0}

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(fit_mod, "_save_checkpoint", save_then_crash)
    code, _, err = cli(monkeypatch, capsys, "train", tiny_recipe, "--out", out)
    assert code == 130 and "convscope resume" in err
    assert_user_error(cli(monkeypatch, capsys, "train", tiny_recipe, "--out", out), "convscope resume")
    code, _, err = cli(monkeypatch, capsys, "resume", out)
    assert code == 0, err
    assert len((out / "history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert (out / "report.html").is_file()


def test_evaluate_labels(monkeypatch, capsys, tmp_path: Path) -> None:
    import numpy as np

    from convscope.io import write_image

    gt, pred = tmp_path / "gt", tmp_path / "pred"
    labels = np.zeros((32, 32), np.uint16)
    labels[2:10, 2:10], labels[20:30, 20:30] = 1, 7
    write_image(gt / "a.tif", labels)
    write_image(pred / "a.tif", np.where(labels == 7, 0, labels).astype(np.uint16))
    code, text, err = cli(monkeypatch, capsys, "evaluate-labels", gt, pred, "--out", tmp_path / "m.json")
    assert code == 0, err
    row = next(line for line in text.splitlines() if line.strip().startswith("0.5"))
    assert row.split()[1:4] == ["1.0000", "0.5000", "0.6667"]  # precision, recall, f1
    assert json.loads((tmp_path / "m.json").read_text())["matching"]["0.5"]["tp"] == 1
    assert_user_error(cli(monkeypatch, capsys, "evaluate-labels", gt, tmp_path / "none"), "none")


def test_stardist_fidelity_on_a_label_folder(monkeypatch, capsys, tmp_path: Path) -> None:
    import numpy as np

    from convscope.io import write_image

    yy, xx = np.mgrid[:64, :64]
    labels = np.zeros((64, 64), np.uint16)
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 < 100] = 1
    labels[(yy - 45) ** 2 + (xx - 40) ** 2 < 144] = 2
    write_image(tmp_path / "labels" / "a.tif", labels)
    code, text, err = cli(monkeypatch, capsys, "stardist-fidelity", tmp_path / "labels", "--rays", "4,32")
    assert code == 0, err
    iou = {int(line.split()[0]): float(line.split()[1]) for line in text.splitlines()[2:]}
    assert iou[32] > 0.9 and iou[4] < iou[32]
    assert_user_error(cli(monkeypatch, capsys, "stardist-fidelity", tmp_path / "nothing"), "nothing")


def test_segmentation_train_evaluate_predict(monkeypatch, capsys, tmp_path: Path) -> None:
    from convscope.datasets.bacteria import make_synthetic_bacteria
    from convscope.io import read_image, write_image

    recipe = tmp_path / "seg.yaml"
    recipe.write_text(
        "task: semantic\n"
        "data: {dataset: synthetic_bacteria, synthetic_count: 6, synthetic_size: 64, patch_size: 32,\n"
        "       patches_per_epoch: 16, normalize: {mode: percentile}}\n"
        "model: {name: unet, options: {depth: 2, base_filters: 4}}\n"
        "train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}\n")
    out = tmp_path / "run"
    code, _, err = cli(monkeypatch, capsys, "train", recipe, "--out", out)
    assert code == 0, err
    code, text, _ = cli(monkeypatch, capsys, "evaluate", out)
    assert code == 0 and "test: dice" in text and "all-background" in text
    assert "test, classical baseline (Otsu threshold): dice" in text and "Do I need deep learning? " in text
    images, _ = make_synthetic_bacteria(2, size=(50, 70), seed=1)
    for i, im in enumerate(images):
        write_image(tmp_path / "new" / f"b{i}.tif", im)
    code, _, err = cli(monkeypatch, capsys, "predict", out, tmp_path / "new", "--out", tmp_path / "masks", "--png")
    assert code == 0, err
    assert read_image(tmp_path / "masks" / "b1_mask.tif").shape == (50, 70)
    assert (tmp_path / "masks" / "b0_mask.png").is_file() and (tmp_path / "masks" / "predictions.csv").is_file()


def test_instance_train_evaluate_predict(monkeypatch, capsys, tmp_path: Path) -> None:
    from convscope.datasets.nuclei import make_synthetic_nuclei
    from convscope.io import read_image, write_image

    recipe = tmp_path / "star.yaml"
    recipe.write_text(
        "task: stardist\n"
        "data: {dataset: synthetic_nuclei, synthetic_count: 6, synthetic_size: 64, patch_size: 32,\n"
        "       patches_per_epoch: 16, normalize: {mode: percentile}}\n"
        "model: {name: stardist, options: {depth: 1, base_filters: 4, features: 8}}\n"
        "stardist: {n_rays: 8}\n"
        "train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}\n")
    out = tmp_path / "run"
    code, _, err = cli(monkeypatch, capsys, "train", recipe, "--out", out)
    assert code == 0, err
    code, text, _ = cli(monkeypatch, capsys, "evaluate", out)
    assert code == 0 and "test: 1 images" in text and "  0.75" in text
    assert "test, classical baseline (Otsu + distance-transform watershed): 1 images" in text
    assert "Do I need deep learning? " in text
    images, _ = make_synthetic_nuclei(2, size=(50, 70), seed=1)
    for i, im in enumerate(images):
        write_image(tmp_path / "new" / f"n{i}.tif", im)
    code, text, err = cli(monkeypatch, capsys, "predict", out, tmp_path / "new", "--out", tmp_path / "labels")
    assert code == 0, err
    labels = read_image(tmp_path / "labels" / "n1_labels.tif")
    assert labels.shape == (50, 70) and labels.dtype.kind == "u"
    with (tmp_path / "labels" / "predictions.csv").open() as fh:
        assert next(csv.reader(fh)) == ["path", "labels", "count", "mean_area"]
    assert_user_error(cli(monkeypatch, capsys, "demo", "nuclei"), "unknown demo", "instances")


@pytest.mark.parametrize(("args", "extra"), [((), "napari"), (("predict",), "dask"), (("predict",), "onnx")])
def test_help_keeps_the_install_hints(monkeypatch, capsys, args: tuple[str, ...], extra: str) -> None:
    """Rich markup would eat ``[napari]`` as a style tag and show `pip install 'convscope'`."""
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _err = cli(monkeypatch, capsys, *args, "--help")
    assert code == 0 and f"'convscope[{extra}]'" in out

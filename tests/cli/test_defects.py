"""Regression tests of the defects a hostile user found (issue 15, part 3): one test (or more) per defect.

The bad-input matrix (exit code 2, one line, nothing modified) is ``tests/test_bad_inputs.py``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import pickle
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

from convscope import load_recipe
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.errors import ConvscopeError
from convscope.inference import Predictor, predict_paths
from convscope.inference.destinations import output_names
from convscope.inference.progress import TerminalProgress
from convscope.io import read_image, write_image
from convscope.runs import load_run
from convscope.training.fit import fit

from .test_cli import assert_user_error, cli

CLS_RECIPE = ("data: {dataset: synthetic_cells, synthetic_count: 64, synthetic_size: 32}\n"
              "model: {name: mnist_cnn}\n"
              "train: {epochs: 1, batch_size: 16, seed: 3, progress: false, num_threads: 1}\n")


def quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def star_run(tmp_path_factory: pytest.TempPathFactory, tiny_star_recipe: str) -> Path:
    root = tmp_path_factory.mktemp("star")
    (root / "star.yaml").write_text(tiny_star_recipe)
    fit(load_recipe(root / "star.yaml"), root / "run", log=quiet)
    return root / "run"


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cls")
    (root / "cls.yaml").write_text(CLS_RECIPE)
    fit(load_recipe(root / "cls.yaml"), root / "run", log=quiet)
    return root / "run"


def nuclei(n: int = 1, size: tuple[int, int] = (64, 64), seed: int = 1) -> list[np.ndarray]:
    return list(make_synthetic_nuclei(n, size=size, seed=seed)[0])


def digest(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


# 1. Silent overwrite ------------------------------------------------------------------------------------------------

def test_output_names_keep_relative_paths_and_suffixes(tmp_path: Path) -> None:
    files = [tmp_path / "a" / "x.png", tmp_path / "a" / "x.tif", tmp_path / "b" / "x.png", tmp_path / "b" / "y.png"]
    names = [str(n) for n in output_names(files)]
    assert names == ["a/x_png", "a/x_tif", "b/x", "b/y"]
    assert [str(n) for n in output_names([tmp_path / "one.png"])] == ["one"]


def test_predict_never_overwrites_outputs(monkeypatch, capsys, star_run: Path, tmp_path: Path) -> None:
    images = nuclei(3)
    write_image(tmp_path / "in" / "a" / "x.png", images[0])
    write_image(tmp_path / "in" / "a" / "x.tif", images[1])
    write_image(tmp_path / "in" / "b" / "x.png", images[2])
    out = tmp_path / "labels"
    code, _, err = cli(monkeypatch, capsys, "predict", star_run, tmp_path / "in", "--out", out)
    assert code == 0, err
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.tif"))
    assert written == ["a/x_png_labels.tif", "a/x_tif_labels.tif", "b/x_labels.tif"]
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len({r["labels"] for r in rows}) == 3 and len(rows) == 3
    before = digest(out)
    # an existing --out is refused, whatever it holds: its predictions.csv is not replaced
    assert_user_error(cli(monkeypatch, capsys, "predict", star_run, tmp_path / "in" / "b", "--out", out),
                      "not empty", "--overwrite")
    assert digest(out) == before
    code, _, err = cli(monkeypatch, capsys, "predict", star_run, tmp_path / "in" / "b", "--out", out, "--overwrite")
    assert code == 0, err
    assert len(list(csv.DictReader((out / "predictions.csv").open()))) == 1


# 4. Corrupt weights and run files: one line, naming the file, no code executed ---------------------------------------

class Payload:
    """Unpickling this would create a file (it must never happen)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_payloads_are_never_executed(monkeypatch, capsys, star_run: Path, tmp_path: Path) -> None:
    import shutil

    marker = tmp_path / "executed"
    run = tmp_path / "run"
    shutil.copytree(star_run, run)
    (run / "model" / "weights.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    assert_user_error(cli(monkeypatch, capsys, "evaluate", run), "weights.safetensors")
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / "last.pt").write_bytes(pickle.dumps({"model": Payload(marker)}))
    assert_user_error(cli(monkeypatch, capsys, "resume", run), "last.pt")
    assert not marker.exists()


def test_model_config_without_keys_is_named(star_run: Path, tmp_path: Path) -> None:
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(star_run, run)
    cfg = json.loads((run / "model" / "config.json").read_text())
    del cfg["stardist"]
    (run / "model" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConvscopeError, match=r"model/config\.json: not a convscope model config \(no 'stardist'\)"):
        load_run(run)


# 5. OS errors and partial results -------------------------------------------------------------------------------------

def test_classification_keeps_the_rows_before_a_failure(monkeypatch, capsys, cls_run: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(tmp_path / "in" / f"c{i}.png", rng.integers(0, 255, (32, 32), dtype=np.uint8))
    (tmp_path / "in" / "c3.png").write_bytes(b"not an image")
    out = tmp_path / "p.csv"
    result = cli(monkeypatch, capsys, "predict", cls_run, tmp_path / "in", "--out", out, "--batch-size", "1")
    assert_user_error(result, "c3.png", "3 result row(s)", "p.csv.partial")
    assert not out.exists()
    rows = list(csv.DictReader((tmp_path / "p.csv.partial").open()))
    assert [Path(r["path"]).name for r in rows] == ["c0.png", "c1.png", "c2.png"]


def test_evaluate_labels_checks_its_out_before_the_work(monkeypatch, capsys, tmp_path: Path) -> None:
    labels = np.zeros((16, 16), np.uint16)
    labels[2:6, 2:6] = 1
    write_image(tmp_path / "gt" / "a.tif", labels)
    from convscope.evaluation import labels as labels_mod

    def must_not_run(*_a, **_k):
        raise AssertionError("evaluated before --out was checked")

    monkeypatch.setattr(labels_mod, "evaluate_label_items", must_not_run)
    (tmp_path / "file").write_text("x")
    assert_user_error(cli(monkeypatch, capsys, "evaluate-labels", tmp_path / "gt", tmp_path / "gt", "--out",
                          tmp_path / "file" / "m.json"), "is a file")


# 6. Progress over tiles and files ------------------------------------------------------------------------------------

def test_progress_reports_tiles_and_files(star_run: Path, tmp_path: Path) -> None:
    for i, image in enumerate(nuclei(2, size=(120, 100))):
        write_image(tmp_path / "in" / f"n{i}.tif", image)
    events: list[tuple[str, int, int]] = []
    predict_paths(Predictor.from_run(star_run), [tmp_path / "in"], tmp_path / "out",
                  progress=lambda what, done, total: events.append((what, done, total)))
    tiles = [e for e in events if e[0] == "tiles"]
    assert tiles and all(total == tiles[0][2] > 1 for _, _, total in tiles)
    assert [d for _, d, _ in tiles].count(tiles[0][2]) == 2  # each image's tiles all done
    assert [e for e in events if e[0] == "files"] == [("files", 1, 2), ("files", 2, 2)]


def test_terminal_progress_shows_rate_and_time_left() -> None:
    stream = io.StringIO()
    bars = TerminalProgress(file=stream, disable=False)
    bars("files", 0, 2)
    for done in range(1, 5):
        bars("tiles", done, 4)
    bars("files", 1, 2)
    bars.close()
    text = stream.getvalue()
    assert "tiles:" in text and "tile/s" in text and "00:00<" in text  # tqdm's [elapsed<remaining, rate]


# 7. Interrupted runs ----------------------------------------------------------------------------------------------

def test_interrupted_run_is_used_with_a_warning_and_left_alone(monkeypatch, capsys, tiny_star_recipe: str,
                                                               tmp_path: Path) -> None:
    (tmp_path / "star.yaml").write_text(tiny_star_recipe)
    cancel = threading.Event()
    run = tmp_path / "run"
    fit(load_recipe(tmp_path / "star.yaml", ["train.epochs=3"]), run, log=quiet,
        on_epoch=lambda row: cancel.set() if row["epoch"] >= 2 else None, cancel=cancel)
    assert not load_run(run).finished
    before = digest(run)
    for args in (("evaluate", run), ("evaluate", run, "--retune"), ("evaluate", run, "--tta")):
        code, text, err = cli(monkeypatch, capsys, *args)
        assert code == 0, err
        assert "warning:" in text and "interrupted run (stopped after epoch 2 of 3)" in text
        assert "convscope resume" in text and "test: 1 images" in text
    write_image(tmp_path / "in" / "a.tif", nuclei()[0])
    code, text, err = cli(monkeypatch, capsys, "predict", run, tmp_path / "in", "--out", tmp_path / "out")
    assert code == 0 and "epoch 2 of 3" in text, err
    assert digest(run) == before
    assert not (run / "metrics.json").exists() and not (run / "report.html").exists()


# 8. RGBA and channel choices ------------------------------------------------------------------------------------------

def test_rgba_with_constant_alpha_is_predicted_by_a_grey_run(monkeypatch, capsys, star_run: Path,
                                                             tmp_path: Path) -> None:
    grey = nuclei()[0].astype(np.uint8)
    write_image(tmp_path / "in" / "dsb.png", np.dstack([grey, grey, grey, np.full_like(grey, 255)]))
    code, text, err = cli(monkeypatch, capsys, "predict", star_run, tmp_path / "in", "--out", tmp_path / "a")
    assert code == 0, err
    note = [line for line in text.splitlines() if "constant alpha" in line]
    assert len(note) == 1 and "converted to grey" in note[0] and "--color" in note[0]
    expected = read_image(tmp_path / "a" / "dsb_labels.tif")
    # the same image as grey gives the same labels; --channels and --color choose otherwise
    write_image(tmp_path / "grey" / "dsb.png", grey)
    code, _, err = cli(monkeypatch, capsys, "predict", star_run, tmp_path / "grey", "--out", tmp_path / "b")
    assert code == 0, err
    np.testing.assert_array_equal(read_image(tmp_path / "b" / "dsb_labels.tif"), expected)
    for option in (("--channels", "1"), ("--color", "gray")):
        code, _, err = cli(monkeypatch, capsys, "predict", star_run, tmp_path / "in", "--out",
                           tmp_path / option[0].strip("-"), *option)
        assert code == 0, err


# 9. evaluate reuses the data the run was trained on -------------------------------------------------------------------

def _fake_isbi(root: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(6):
        image = rng.integers(0, 255, (48, 48), dtype=np.uint8)
        write_image(root / "isbi2012" / "image" / f"{i}.png", image)
        write_image(root / "isbi2012" / "label" / f"{i}.png", np.where(image > 128, 255, 0).astype(np.uint8))


def test_evaluate_finds_the_data_of_training(monkeypatch, capsys, tmp_path: Path) -> None:
    data = tmp_path / "elsewhere"
    _fake_isbi(data)
    recipe = tmp_path / "isbi.yaml"
    recipe.write_text("task: semantic\n"
                      "data: {dataset: isbi2012, patch_size: 32, patches_per_epoch: 8}\n"
                      "model: {name: unet, options: {depth: 1, base_filters: 4}}\n"
                      "train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}\n")
    monkeypatch.delenv("CONVSCOPE_DATA", raising=False)
    run = tmp_path / "run"
    code, _, err = cli(monkeypatch, capsys, "train", recipe, "--out", run, "--data", data)
    assert code == 0, err
    code, text, err = cli(monkeypatch, capsys, "evaluate", run)  # no --data: the recorded folder
    assert code == 0 and "test: dice" in text, err
    assert "differ" not in text
    write_image(data / "isbi2012" / "image" / "0.png", np.zeros((48, 48), np.uint8))
    code, text, err = cli(monkeypatch, capsys, "evaluate", run)
    assert code == 0 and "warning: the data in" in text and "differ" in text, err
    other = tmp_path / "copy"
    _fake_isbi(other)
    code, text, err = cli(monkeypatch, capsys, "evaluate", run, "--data", other)  # --data overrides
    assert code == 0 and "differ" not in text, err


def test_evaluate_paired_run_from_another_folder(monkeypatch, capsys, tiny_star_recipe: str, tmp_path: Path) -> None:
    images, labels = make_synthetic_nuclei(4, size=(48, 48), seed=2)
    for i, (im, lab) in enumerate(zip(images, labels, strict=True)):
        write_image(tmp_path / "work" / "pairs" / "images" / f"p{i}.png", im)
        write_image(tmp_path / "work" / "pairs" / "masks" / f"p{i}.tif", lab.astype(np.uint16))
    (tmp_path / "work" / "star.yaml").write_text(
        tiny_star_recipe.replace("dataset: synthetic_nuclei", "dataset: paired\n  path: pairs"))  # relative
    monkeypatch.chdir(tmp_path / "work")
    code, _, err = cli(monkeypatch, capsys, "train", "star.yaml", "--out", tmp_path / "run")
    assert code == 0, err
    monkeypatch.chdir(tmp_path)
    code, text, err = cli(monkeypatch, capsys, "evaluate", tmp_path / "run")
    assert code == 0 and "test: 1 images" in text, err


# 10. stardist-fidelity takes folders ----------------------------------------------------------------------------------

def test_stardist_fidelity_takes_data_folders(monkeypatch, capsys, tmp_path: Path) -> None:
    _, labels = make_synthetic_nuclei(2, size=(48, 48), seed=3)
    for root in (tmp_path / "pairs", tmp_path / "data" / "dsb2018"):
        for i, lab in enumerate(labels):
            write_image(root / "images" / f"{i}.png", np.zeros((48, 48), np.uint8))
            write_image(root / "masks" / f"{i}.tif", lab.astype(np.uint16))
    for target in (tmp_path / "pairs", tmp_path / "data" / "dsb2018", tmp_path / "data"):
        code, text, err = cli(monkeypatch, capsys, "stardist-fidelity", target, "--rays", "8")
        assert code == 0, err
        assert text.startswith("2 label images") and text.splitlines()[2].split()[0] == "8"


# 11. Degenerate thresholds --------------------------------------------------------------------------------------------

def test_a_model_sure_of_nothing_finds_no_objects() -> None:
    from convscope.instances import instances_from_prediction
    from convscope.tasks.stardist import StarDistTask

    prob = np.full((48, 48), 0.5, np.float32)
    dist = np.full((48, 48, 8), 1e-3, np.float32)  # an untrained net: every ray at its floor
    unguarded, _ = instances_from_prediction(prob, dist, prob_thresh=0.3, grid=2, border=0, shape=(96, 96))
    assert len(np.unique(unguarded)) - 1 > 2000  # every grid pixel an object, as the issue saw
    task = StarDistTask(n_rays=8, grid=2).with_thresholds({"prob": 0.3, "nms": 0.3})
    assert task.decode((prob, dist), (96, 96)).max() == 0


def test_candidates_are_capped_by_probability() -> None:
    from convscope.instances.nms import candidates

    prob = np.linspace(0.51, 0.99, 100, dtype=np.float32).reshape(10, 10)
    dist = np.full((10, 10, 8), 3.0, np.float32)
    kept = candidates(prob, dist, prob_thresh=0.5, border=0, max_candidates=7)
    assert len(kept.scores) == 7 and kept.scores.min() >= np.sort(prob.ravel())[-7]


def test_tuning_ties_keep_the_fewest_objects() -> None:
    from convscope.tasks.stardist import StarDistTask

    truth = np.zeros((64, 64), np.uint16)
    truth[10:12, 20:50] = 1  # a thin object no disc of radius 5 matches at IoU 0.3
    prob = np.full((32, 32), 0.55, np.float32)
    dist = np.full((32, 32, 8), 5.0, np.float32)
    thresholds, score = StarDistTask(n_rays=8, grid=2).tune([(prob, dist)], [truth])
    assert score == 0.0
    assert thresholds["prob"] >= 0.55  # no candidates rather than a field of discs


def test_useless_tuning_is_warned(monkeypatch, star_run: Path, tmp_path: Path) -> None:
    import shutil

    from convscope.evaluation import evaluate_run
    from convscope.tasks.stardist import StarDistTask

    run = tmp_path / "run"
    shutil.copytree(star_run, run)
    monkeypatch.setattr(StarDistTask, "tune", lambda self, preds, truths: ({"prob": 0.8, "nms": 0.3}, 0.0))
    messages: list[str] = []
    evaluate_run(run, retune=True, log=messages.append)
    assert any(m.startswith("warning: the best validation score") and "finds (almost) nothing" in m
               for m in messages)


# 12. Smaller ones -----------------------------------------------------------------------------------------------------

def test_channel_error_names_the_file(star_run: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "five.tif", np.zeros((40, 40, 5), np.uint8), photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(ConvscopeError, match=r"five\.tif: image has 5 channel\(s\) but the model takes 1"):
        predict_paths(Predictor.from_run(star_run), [tmp_path / "in"], tmp_path / "out", progress=lambda *a: None)
    assert not (tmp_path / "out").exists()  # a failed predict leaves no empty --out behind


def test_planes_read_as_channels_are_warned(monkeypatch, capsys, star_run: Path, tmp_path: Path) -> None:
    stack = np.stack(nuclei(3)).astype(np.uint8)  # (3, H, W): three z-slices
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "stack.tif", stack, photometric="rgb", planarconfig="separate")
    code, _, err = cli(monkeypatch, capsys, "predict", star_run, tmp_path / "in", "--out", tmp_path / "out")
    assert code == 0, err
    assert any(line.startswith("warning:") and "stack.tif: its 3 planes" in line for line in err.splitlines())


def test_ignore_label_is_named_not_shown_as_255() -> None:
    from convscope.datasets.paired import decode_mask

    mask = np.zeros((8, 8), np.uint8)
    mask[1:3, 1:3], mask[5:7, 5:7] = 1, 255  # -1 saved as uint8
    with pytest.raises(ConvscopeError, match="255 looks like an ignore label of -1"):
        decode_mask(mask, "binary", source="m.png")
    with pytest.raises(ConvscopeError, match=r"negative values \(-1: an ignore label\?\)"):
        decode_mask(mask.astype(np.int8), "binary", source="m.tif")


def test_run_files_have_the_usual_permissions(tmp_path: Path) -> None:
    (tmp_path / "cls.yaml").write_text(CLS_RECIPE)
    old = os.umask(0o022)
    try:
        cancel = threading.Event()
        fit(load_recipe(tmp_path / "cls.yaml", ["train.epochs=3"]), tmp_path / "run", log=quiet,
            on_epoch=lambda row: cancel.set() if row["epoch"] >= 2 else None, cancel=cancel)
    finally:
        os.umask(old)
    for name in ("model/weights.safetensors", "model/config.json", "checkpoint/last.pt", "history.csv"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_sigterm_says_the_run_can_be_resumed(monkeypatch, capsys, tmp_path: Path) -> None:
    from convscope.training import fit as fit_mod

    (tmp_path / "cls.yaml").write_text(CLS_RECIPE.replace("epochs: 1", "epochs: 2"))
    real_save = fit_mod._save_checkpoint

    def save_then_term(*args, **kwargs):
        real_save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(fit_mod, "_save_checkpoint", save_then_term)
    run = tmp_path / "run"
    code, _, err = cli(monkeypatch, capsys, "train", tmp_path / "cls.yaml", "--out", run)
    assert code == 143
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == (f"terminated (SIGTERM): {run} keeps its checkpoint after epoch 1; `convscope resume {run}` "
                         "continues the run")
    assert "Traceback" not in err
    monkeypatch.setattr(fit_mod, "_save_checkpoint", real_save)
    code, _, err = cli(monkeypatch, capsys, "resume", run)
    assert code == 0, err
    assert signal.getsignal(signal.SIGTERM) is not None  # the previous handler is back


def test_data_list_fits_the_terminal(monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, text, _ = cli(monkeypatch, capsys, "data", "list")
    assert code == 0 and "dsb2018" in text
    assert max(len(line) for line in text.splitlines()) <= 80

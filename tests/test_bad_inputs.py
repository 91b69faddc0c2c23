"""The bad-input matrix (issue 15): every case builds one bad input (files, folders, recipes, weights, run
directories, OS errors) and runs the CLI on it; each must exit with code 2 and one line without a traceback, and leave
every file that existed before exactly as it was (bytes and mtime), with no empty ``--out`` folder left behind.

Two tiny runs (a classifier and a star-convex model, ``fit`` only: config, history, weights) are trained once for the
module; cases that damage a run damage a copy.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from safetensors.torch import load_file, save_file

from convscope import load_recipe
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.io import write_image
from convscope.training.fit import fit

from .cli.test_cli import cli

CLS_RECIPE = ("data: {dataset: synthetic_cells, synthetic_count: 64, synthetic_size: 32}\n"
              "model: {name: mnist_cnn}\n"
              "train: {epochs: 1, batch_size: 16, seed: 3, progress: false, num_threads: 1}\n")


@dataclass(frozen=True)
class Runs:
    root: Path
    cls: Path
    star: Path
    interrupted: Path  # stopped after epoch 2 of 3 (its checkpoint is that of epoch 1... 2)
    recipe: Path  # the star recipe, as a file


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_star_recipe: str) -> Runs:
    root = tmp_path_factory.mktemp("runs")
    (root / "star.yaml").write_text(tiny_star_recipe)
    (root / "cls.yaml").write_text(CLS_RECIPE)
    quiet = lambda _m: None  # noqa: E731
    fit(load_recipe(root / "cls.yaml"), root / "cls", log=quiet)
    fit(load_recipe(root / "star.yaml"), root / "star", log=quiet)
    cancel = threading.Event()
    fit(load_recipe(root / "star.yaml", ["train.epochs=3"]), root / "interrupted", log=quiet,
        on_epoch=lambda row: cancel.set() if row["epoch"] >= 2 else None, cancel=cancel)
    assert (root / "interrupted" / "checkpoint" / "last.pt").is_file()
    return Runs(root, root / "cls", root / "star", root / "interrupted", root / "star.yaml")


@dataclass
class Ctx:
    """What a case builds with: the module's runs, its own tmp folder, monkeypatch."""

    runs: Runs
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def image(self, name: str = "a.png", *, shape: tuple[int, ...] = (48, 48), folder: str = "in") -> Path:
        path = self.tmp / folder / name
        rng = np.random.default_rng(len(name))
        write_image(path, rng.integers(0, 255, shape, dtype=np.uint8))
        return path

    def copy(self, which: Path) -> Path:
        dest = self.tmp / f"copy_{which.name}"
        shutil.copytree(which, dest)
        return dest

    def pairs(self, n: int = 3, folder: str = "pairs") -> Path:
        images, labels = make_synthetic_nuclei(n, size=(48, 48), seed=5)
        for i, (im, lab) in enumerate(zip(images, labels, strict=True)):
            write_image(self.tmp / folder / "images" / f"p{i}.png", im)
            write_image(self.tmp / folder / "masks" / f"p{i}.tif", lab.astype(np.uint16))
        return self.tmp / folder

    def paired_recipe(self, folder: Path, task: str = "stardist") -> Path:
        text = self.runs.recipe.read_text().replace("dataset: synthetic_nuclei", f"dataset: paired\n  path: {folder}")
        return self.recipe(text.replace("task: stardist", f"task: {task}"), f"{task}.yaml")

    def recipe(self, text: str, name: str = "r.yaml") -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def read_only(self, folder: Path) -> Path:
        """``folder`` made read-only; root may write anywhere, so for root the refusal is simulated as the kernel
        gives it to other users (EACCES on creating anything inside)."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        if os.geteuid() == 0:
            self.monkeypatch.setattr(Path, "mkdir", _refusing(Path.mkdir, folder))
            self.monkeypatch.setattr(Path, "open", _refusing(Path.open, folder))
            import tempfile

            real = tempfile.mkstemp

            def mkstemp(*args: object, dir: str | os.PathLike[str] | None = None, **kw: object):
                if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
                    raise PermissionError(errno.EACCES, "Permission denied", str(dir))
                return real(*args, dir=dir, **kw)

            self.monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        return folder

    def disk_full_after(self, target: object, name: str, calls: int) -> None:
        """``target.name`` raises ENOSPC from its ``calls + 1``-th call on (a full disk)."""
        real = getattr(target, name)
        count = {"n": 0}

        def full(*args: object, **kwargs: object) -> object:
            count["n"] += 1
            if count["n"] > calls:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(*args, **kwargs)

        self.monkeypatch.setattr(target, name, full)


def _refusing(real: Callable, folder: Path) -> Callable:
    def guarded(self: Path, *args: object, **kwargs: object) -> object:
        mode = args[0] if args and isinstance(args[0], str) else kwargs.get("mode", "r")
        writing = real is not Path.open or any(c in str(mode) for c in "wax+")
        if writing and Path(os.path.abspath(self)).is_relative_to(folder.resolve()) and self != folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    return guarded


Case = Callable[[Ctx], list[object]]


# ------------------------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------------------------

def _predict(ctx: Ctx, *inputs: object, run: Path | None = None, extra: tuple[str, ...] = ()) -> list[object]:
    return ["predict", run or ctx.runs.star, *inputs, "--out", ctx.tmp / "out", *extra]


def _file(build: Callable[[Path], None], name: str) -> Case:
    def case(ctx: Ctx) -> list[object]:
        path = ctx.tmp / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        build(path)
        return _predict(ctx, path)

    return case


def _nan(path: Path) -> None:
    image = np.ones((48, 48), np.float32)
    image[3, 3] = np.nan
    tifffile.imwrite(path, image)


def _varying_alpha(path: Path) -> None:
    rgba = np.random.default_rng(0).integers(0, 255, (48, 48, 4), dtype=np.uint8)
    write_image(path, rgba)


FILES: dict[str, Case] = {
    "file-missing": lambda ctx: _predict(ctx, ctx.tmp / "nope.png"),
    "file-empty": _file(lambda p: p.write_bytes(b""), "empty.png"),
    "file-corrupt-png": _file(lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n not a png"), "bad.png"),
    "file-truncated-tiff": _file(lambda p: p.write_bytes(b"II*\x00" + b"\x00" * 20), "bad.tif"),
    "file-float32": _file(lambda p: tifffile.imwrite(p, np.ones((48, 48), np.float32)), "f.tif"),
    "file-nan": _file(_nan, "nan.tif"),
    "file-int32": _file(lambda p: tifffile.imwrite(p, np.ones((48, 48), np.int32)), "i.tif"),
    "file-4d": _file(lambda p: tifffile.imwrite(p, np.zeros((2, 3, 48, 48), np.uint8), photometric="minisblack"),
                     "4d.tif"),
    "file-z-stack": _file(lambda p: tifffile.imwrite(p, np.zeros((5, 48, 48), np.uint8)), "z.tif"),
    "file-5-channels": _file(lambda p: tifffile.imwrite(p, np.zeros((48, 48, 5), np.uint8), photometric="minisblack",
                                                        planarconfig="contig"), "c5.tif"),
    "file-rgba-varying-alpha-into-grey-run": _file(_varying_alpha, "rgba.png"),
    "file-unsupported-suffix": _file(lambda p: p.write_bytes(b"BM"), "a.bmp"),
    "file-wrong-size-for-classifier": lambda ctx: ["predict", ctx.runs.cls, ctx.image(shape=(40, 40)),
                                                   "--out", ctx.tmp / "p.csv"],
    "file-channels-out-of-range": lambda ctx: _predict(ctx, ctx.image(), extra=("--channels", "2")),
    "file-channels-not-numbers": lambda ctx: _predict(ctx, ctx.image(), extra=("--channels", "a,b")),
    "file-color-unknown": lambda ctx: _predict(ctx, ctx.image(), extra=("--color", "purple")),
    "file-diameter-without-builtin": lambda ctx: _predict(ctx, ctx.image(), extra=("--diameter", "20")),
}


# ------------------------------------------------------------------------------------------------------------------
# Folders and outputs
# ------------------------------------------------------------------------------------------------------------------

def _out_not_empty(ctx: Ctx) -> list[object]:
    image = ctx.image()
    (ctx.tmp / "out").mkdir()
    (ctx.tmp / "out" / "predictions.csv").write_text("earlier results\n")
    return _predict(ctx, image)


def _out_holds_inputs(ctx: Ctx) -> list[object]:
    image = ctx.image(folder="out")
    return _predict(ctx, image)


def _out_is_file(ctx: Ctx) -> list[object]:
    image = ctx.image()
    (ctx.tmp / "out").write_text("a file")
    return _predict(ctx, image)


def _csv_exists(ctx: Ctx) -> list[object]:
    image = ctx.image(shape=(32, 32))
    (ctx.tmp / "p.csv").write_text("earlier\n")
    return ["predict", ctx.runs.cls, image, "--out", ctx.tmp / "p.csv"]


def _csv_is_input(ctx: Ctx) -> list[object]:
    image = ctx.image(shape=(32, 32))
    return ["predict", ctx.runs.cls, image, "--out", image]


def _empty_folder(ctx: Ctx) -> list[object]:
    (ctx.tmp / "empty").mkdir()
    return _predict(ctx, ctx.tmp / "empty")


def _no_images(ctx: Ctx) -> list[object]:
    (ctx.tmp / "docs").mkdir()
    (ctx.tmp / "docs" / "notes.txt").write_text("x")
    return _predict(ctx, ctx.tmp / "docs")


def _bad_image_second(ctx: Ctx) -> list[object]:
    ctx.image("a.png")
    (ctx.tmp / "in" / "b.png").write_bytes(b"broken")
    return _predict(ctx, ctx.tmp / "in")


FOLDERS: dict[str, Case] = {
    "folder-empty": _empty_folder,
    "folder-no-images": _no_images,
    "folder-second-image-corrupt": _bad_image_second,
    "out-not-empty": _out_not_empty,
    "out-holds-inputs": _out_holds_inputs,
    "out-is-a-file": _out_is_file,
    "out-csv-exists": _csv_exists,
    "out-csv-is-an-input": _csv_is_input,
}


# ------------------------------------------------------------------------------------------------------------------
# Recipes and data folders (train)
# ------------------------------------------------------------------------------------------------------------------

def _train(ctx: Ctx, recipe: Path, *extra: str) -> list[object]:
    return ["train", recipe, "--out", ctx.tmp / "run", *extra]


def _negative_masks(ctx: Ctx) -> list[object]:
    folder = ctx.pairs()
    mask = np.zeros((48, 48), np.int8)
    mask[4:9, 4:9], mask[20:30, 20:30] = 1, -1
    tifffile.imwrite(folder / "masks" / "p0.tif", mask)
    return _train(ctx, ctx.paired_recipe(folder))


def _orphan_image(ctx: Ctx) -> list[object]:
    folder = ctx.pairs()
    (folder / "masks" / "p1.tif").unlink()
    return _train(ctx, ctx.paired_recipe(folder))


def _no_masks(ctx: Ctx) -> list[object]:
    folder = ctx.pairs()
    shutil.rmtree(folder / "masks")
    return _train(ctx, ctx.paired_recipe(folder))


def _instance_masks_for_semantic(ctx: Ctx) -> list[object]:
    recipe = ctx.paired_recipe(ctx.pairs(), "semantic").read_text().replace("stardist: {n_rays: 8}\n", "")
    recipe = recipe.replace("name: stardist\n  options: {depth: 1, base_filters: 4, features: 8}",
                            "name: unet\n  options: {depth: 1, base_filters: 4}")
    return _train(ctx, ctx.recipe(recipe, "semantic.yaml"))


def _one_class(ctx: Ctx) -> list[object]:
    ctx.image("a.png", folder="cells/only")
    return _train(ctx, ctx.recipe(CLS_RECIPE.replace("dataset: synthetic_cells",
                                                     f"dataset: folder, path: {ctx.tmp / 'cells'}")))


def _out_is_interrupted_run(ctx: Ctx) -> list[object]:
    return ["train", ctx.runs.recipe, "--out", ctx.runs.interrupted]


RECIPES: dict[str, Case] = {
    "recipe-missing": lambda ctx: _train(ctx, ctx.tmp / "nope.yaml"),
    "recipe-bad-yaml": lambda ctx: _train(ctx, ctx.recipe("data: [unclosed\n")),
    "recipe-not-a-mapping": lambda ctx: _train(ctx, ctx.recipe("- a\n- b\n")),
    "recipe-unknown-key": lambda ctx: _train(ctx, ctx.recipe(CLS_RECIPE.replace("epochs", "epoch"))),
    "recipe-bad-value": lambda ctx: _train(ctx, ctx.recipe(CLS_RECIPE.replace("epochs: 1", "epochs: -1"))),
    "recipe-unknown-task": lambda ctx: _train(ctx, ctx.recipe("task: stardust\n" + CLS_RECIPE)),
    "recipe-unknown-model": lambda ctx: _train(ctx, ctx.runs.recipe, "--set", "model.name=vgg9"),
    "recipe-set-unknown-key": lambda ctx: _train(ctx, ctx.runs.recipe, "--set", "train.epoch=2"),
    "data-folder-missing": lambda ctx: _train(ctx, ctx.paired_recipe(ctx.tmp / "nowhere")),
    "data-no-masks-folder": _no_masks,
    "data-image-without-mask": _orphan_image,
    "data-negative-mask-values": _negative_masks,
    "data-instance-masks-for-semantic": _instance_masks_for_semantic,
    "data-one-class-folder": _one_class,
    "train-out-is-an-interrupted-run": _out_is_interrupted_run,
}


# ------------------------------------------------------------------------------------------------------------------
# Weights and run directories
# ------------------------------------------------------------------------------------------------------------------

def _damaged(damage: Callable[[Path], object], command: str = "predict") -> Case:
    def case(ctx: Ctx) -> list[object]:
        run = ctx.copy(ctx.runs.star)
        damage(run)
        if command == "predict":
            return _predict(ctx, ctx.image(), run=run)
        if command == "finetune":
            return ["finetune", run, "--data", ctx.pairs(), "--out", ctx.tmp / "tuned"]
        return [command, run]

    return case


def _weights(run: Path) -> Path:
    return run / "model" / "weights.safetensors"


def _truncate(run: Path) -> None:
    _weights(run).write_bytes(_weights(run).read_bytes()[:100])


def _pickle(run: Path) -> None:
    _weights(run).write_bytes(pickle.dumps({"stem.0.weight": [1.0]}))


def _wrong_shape(run: Path) -> None:
    state = load_file(_weights(run))
    key = next(k for k, v in state.items() if v.ndim == 4)
    state[key] = torch.zeros(1, 1, 1, 1)
    save_file(state, _weights(run))


def _wrong_arch(ctx: Ctx) -> list[object]:
    run = ctx.copy(ctx.runs.star)
    shutil.copy(_weights(ctx.runs.cls), _weights(run))  # a classifier's weights in a star-convex run
    return _predict(ctx, ctx.image(), run=run)


def _edit_config(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        path = run / "model" / "config.json"
        cfg = json.loads(path.read_text())
        edit(cfg)
        path.write_text(json.dumps(cfg))

    return damage


def _bad_checkpoint(content: Callable[[Path], None]) -> Case:
    def case(ctx: Ctx) -> list[object]:
        run = ctx.copy(ctx.runs.star)
        (run / "checkpoint").mkdir()
        content(run / "checkpoint" / "last.pt")
        return ["resume", run]

    return case


WEIGHTS: dict[str, Case] = {
    "weights-truncated-predict": _damaged(_truncate),
    "weights-truncated-evaluate": _damaged(_truncate, "evaluate"),
    "weights-truncated-finetune": _damaged(_truncate, "finetune"),
    "weights-pickled-predict": _damaged(_pickle),
    "weights-pickled-evaluate": _damaged(_pickle, "evaluate"),
    "weights-wrong-shape-predict": _damaged(_wrong_shape),
    "weights-wrong-architecture-predict": _wrong_arch,
    "weights-missing-predict": _damaged(lambda run: _weights(run).unlink()),
    "checkpoint-truncated-resume": _bad_checkpoint(lambda p: p.write_bytes(b"PK\x03\x04 truncated")),
    "checkpoint-pickled-resume": _bad_checkpoint(lambda p: p.write_bytes(pickle.dumps({"trainer": 1}))),
    "checkpoint-foreign-resume": _bad_checkpoint(lambda p: torch.save({"x": torch.zeros(1)}, p)),
    "resume-finished-run": lambda ctx: ["resume", ctx.copy(ctx.runs.star)],
}

RUN_DIRS: dict[str, Case] = {
    "run-not-a-run": lambda ctx: ["evaluate", ctx.tmp],
    "run-missing-config-yaml-predict": _damaged(lambda run: (run / "config.yaml").unlink()),
    "run-corrupt-config-yaml-evaluate": _damaged(lambda run: (run / "config.yaml").write_text("task: ["), "evaluate"),
    "run-corrupt-config-yaml-resume": _bad_checkpoint(lambda p: (shutil.copy(_INTERRUPTED_CHECKPOINT[0], p),
                                                                 (p.parents[1] / "config.yaml").write_text("x: ["))),
    "run-corrupt-config-json-predict": _damaged(lambda run: (run / "model/config.json").write_text("{not json")),
    "run-corrupt-config-json-finetune": _damaged(lambda run: (run / "model/config.json").write_text("{"), "finetune"),
    "run-config-json-not-an-object": _damaged(lambda run: (run / "model/config.json").write_text("[1, 2]")),
    "run-config-json-no-normalize": _damaged(_edit_config(lambda c: c.pop("normalize")), "evaluate"),
    "run-config-json-bad-input-shape": _damaged(_edit_config(lambda c: c.update(input_shape="x"))),
    "run-config-json-unknown-model": _damaged(_edit_config(lambda c: c["model"].update(name="vgg9"))),
    "run-config-json-unknown-task": _damaged(_edit_config(lambda c: c.update(task="stardust")), "evaluate"),
    "run-evaluate-bad-split": lambda ctx: ["evaluate", ctx.runs.star, "--split", "train"],
    "run-evaluate-data-missing": lambda ctx: ["evaluate", ctx.runs.star, "--data", ctx.tmp / "nowhere"],
    "run-retune-without-thresholds": lambda ctx: ["evaluate", ctx.runs.cls, "--retune"],
    "run-tta-for-a-classifier": lambda ctx: ["evaluate", ctx.runs.cls, "--tta"],
}


# ------------------------------------------------------------------------------------------------------------------
# OS errors while writing
# ------------------------------------------------------------------------------------------------------------------

def _parent_is_file(ctx: Ctx, *, classify: bool) -> list[object]:
    (ctx.tmp / "blocker").write_text("a file")
    if classify:
        return ["predict", ctx.runs.cls, ctx.image(shape=(32, 32)), "--out", ctx.tmp / "blocker" / "p.csv"]
    return ["predict", ctx.runs.star, ctx.image(), "--out", ctx.tmp / "blocker" / "out"]


def _read_only(ctx: Ctx, *, classify: bool) -> list[object]:
    image = ctx.image(shape=(32, 32))
    folder = ctx.read_only(ctx.tmp / "ro")
    out = folder / ("p.csv" if classify else "out")
    return ["predict", ctx.runs.cls if classify else ctx.runs.star, image, "--out", out]


def _disk_full_masks(ctx: Ctx) -> list[object]:
    ctx.image("a.png")
    ctx.image("b.png")
    ctx.disk_full_after(tifffile, "imwrite", 1)  # the first label image is written, the second is not
    return _predict(ctx, ctx.tmp / "in")


def _disk_full_csv(ctx: Ctx) -> list[object]:
    for i in range(3):
        ctx.image(f"c{i}.png", shape=(32, 32))
    import csv

    real = csv.writer

    class Full:
        def __init__(self, fh: object) -> None:
            self.inner, self.rows = real(fh), 0

        def writerow(self, row: object) -> None:
            self.inner.writerow(row)

        def writerows(self, rows: list) -> None:
            self.rows += 1
            if self.rows > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.inner.writerows(rows)

    ctx.monkeypatch.setattr(csv, "writer", Full)
    return ["predict", ctx.runs.cls, ctx.tmp / "in", "--out", ctx.tmp / "p.csv", "--batch-size", "1"]


def _labels_json_blocked(ctx: Ctx) -> list[object]:
    gt = _label_folder(ctx, "gt")
    (ctx.tmp / "blocker").write_text("a file")
    return ["evaluate-labels", gt, gt, "--out", ctx.tmp / "blocker" / "m.json"]


def _labels_json_disk_full(ctx: Ctx) -> list[object]:
    gt = _label_folder(ctx, "gt")
    ctx.disk_full_after(Path, "write_bytes", 0)
    return ["evaluate-labels", gt, gt, "--out", ctx.tmp / "m.json"]


OS_ERRORS: dict[str, Case] = {
    "os-out-parent-is-a-file-classify": lambda ctx: _parent_is_file(ctx, classify=True),
    "os-out-parent-is-a-file-segment": lambda ctx: _parent_is_file(ctx, classify=False),
    "os-read-only-folder-classify": lambda ctx: _read_only(ctx, classify=True),
    "os-read-only-folder-segment": lambda ctx: _read_only(ctx, classify=False),
    "os-disk-full-label-images": _disk_full_masks,
    "os-disk-full-csv": _disk_full_csv,
    "os-evaluate-labels-out-parent-is-a-file": _labels_json_blocked,
    "os-evaluate-labels-disk-full": _labels_json_disk_full,
}


# ------------------------------------------------------------------------------------------------------------------
# Label folders (evaluate-labels) and label data (stardist-fidelity)
# ------------------------------------------------------------------------------------------------------------------

def _label_folder(ctx: Ctx, name: str, *, stems: tuple[str, ...] = ("a", "b"), shape: tuple[int, int] = (32, 32),
                  dtype: type = np.uint16) -> Path:
    (ctx.tmp / name).mkdir(parents=True, exist_ok=True)
    for stem in stems:
        labels = np.zeros(shape, dtype)
        labels[2:10, 2:10] = 1
        tifffile.imwrite(ctx.tmp / name / f"{stem}.tif", labels)
    return ctx.tmp / name


def _labels_case(**pred: object) -> Case:
    def case(ctx: Ctx) -> list[object]:
        return ["evaluate-labels", _label_folder(ctx, "gt"), _label_folder(ctx, "pred", **pred)]  # type: ignore[arg-type]

    return case


def _labels_out_exists(ctx: Ctx) -> list[object]:
    gt = _label_folder(ctx, "gt")
    (ctx.tmp / "m.json").write_text("{}")
    return ["evaluate-labels", gt, gt, "--out", ctx.tmp / "m.json"]


LABELS: dict[str, Case] = {
    "labels-gt-folder-missing": lambda ctx: ["evaluate-labels", ctx.tmp / "nope", _label_folder(ctx, "pred")],
    "labels-unpaired-prediction": _labels_case(stems=("a", "c")),
    "labels-size-mismatch": _labels_case(shape=(40, 32)),
    "labels-float-labels": _labels_case(dtype=np.float32),
    "labels-out-exists": _labels_out_exists,
    "fidelity-not-a-folder": lambda ctx: ["stardist-fidelity", ctx.tmp / "nothing"],
}

_INTERRUPTED_CHECKPOINT: list[Path] = []  # a real checkpoint, for the case that damages only config.yaml

CASES: dict[str, Case] = {**FILES, **FOLDERS, **RECIPES, **WEIGHTS, **RUN_DIRS, **OS_ERRORS, **LABELS}


# ------------------------------------------------------------------------------------------------------------------
# The test
# ------------------------------------------------------------------------------------------------------------------

def snapshot(*roots: Path) -> tuple[dict[str, tuple[str, int]], set[str]]:
    """Every file under ``roots`` with its SHA-256 and mtime, and every folder."""
    files, folders = {}, set()
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                files[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            elif path.is_dir():
                folders.add(str(path))
    return files, folders


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, runs: Runs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    _INTERRUPTED_CHECKPOINT[:] = [runs.interrupted / "checkpoint" / "last.pt"]
    ctx = Ctx(runs, tmp_path, monkeypatch)
    args = CASES[name](ctx)
    capsys.readouterr()
    before, folders_before = snapshot(runs.root, tmp_path)
    code, _out, err = cli(monkeypatch, capsys, *map(str, args))
    monkeypatch.undo()  # restore any simulated OS failure before looking at the files
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    after, folders_after = snapshot(runs.root, tmp_path)
    changed = [p for p, seen in before.items() if after.get(p) != seen]
    assert not changed, f"modified or removed: {changed}"
    empty_new = [d for d in folders_after - folders_before if not any(Path(d).iterdir())]
    assert not empty_new, f"empty folders left behind: {empty_new}"


def test_the_matrix_is_large_enough() -> None:
    assert len(CASES) >= 40

"""Training end to end on tiny synthetic data: run directory, reproducibility, resume, early stopping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from convscope import evaluate, load_recipe, resume, train
from convscope.errors import ConvscopeError
from convscope.runs.layout import RunDir
from convscope.training import fit as fit_mod
from convscope.training.step import weight_penalty


def _quiet(_msg: str) -> None:
    pass


def test_train_writes_the_run_directory(tiny_recipe: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    metrics = train(load_recipe(tiny_recipe), out, log=_quiet)
    run = RunDir.open(out)
    for path in (run.config, run.history, run.curves, run.weights, run.model_config, run.metrics, run.report):
        assert path.is_file(), path
    assert not run.checkpoint.exists()
    history = run.read_history()
    assert [r["epoch"] for r in history] == [1, 2]
    assert {"train_loss", "val_loss", "train_accuracy", "val_accuracy"} <= set(history[0])
    on_disk = json.loads(run.metrics.read_text())
    assert on_disk == metrics
    assert set(on_disk) >= {"val", "test", "overfitting", "params"}
    test = on_disk["test"]
    assert 0.0 <= test["accuracy"] <= 1.0 and test["n_images"] == 160
    assert sum(map(sum, test["confusion_matrix"])) == 160
    assert set(test["per_class"]) == {"abnormal", "normal"}
    assert on_disk["params"]["trainable"] > 0
    model_cfg = run.read_model_config()
    assert model_cfg["class_names"] == ["abnormal", "normal"] and model_cfg["input_shape"] == [32, 32, 1]
    assert "provenance:" in run.config.read_text() and "torch" in run.config.read_text()
    assert "accuracy" in run.report.read_text()


def test_same_seed_same_history(tiny_recipe: Path, tmp_path: Path) -> None:
    a = train(load_recipe(tiny_recipe), tmp_path / "a", log=_quiet)
    b = train(load_recipe(tiny_recipe), tmp_path / "b", log=_quiet)
    history_a, history_b = RunDir(tmp_path / "a").read_history(), RunDir(tmp_path / "b").read_history()
    assert history_a[-1]["val_loss"] == history_b[-1]["val_loss"]
    assert a["test"]["accuracy"] == b["test"]["accuracy"]
    wa, wb = load_file(RunDir(tmp_path / "a").weights), load_file(RunDir(tmp_path / "b").weights)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_existing_run_is_never_overwritten(tiny_recipe: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("mine")
    with pytest.raises(ConvscopeError, match="already exists"):
        train(load_recipe(tiny_recipe), out, log=_quiet)
    assert (out / "precious.txt").read_text() == "mine"


def test_resume_after_a_crash_matches_an_uninterrupted_run(tiny_recipe: Path, tmp_path: Path) -> None:
    config = load_recipe(tiny_recipe, ["train.epochs=3"])
    train(config, tmp_path / "whole", log=_quiet)

    def crash_after_epoch_2(msg: str) -> None:
        if msg.startswith("epoch   2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "crashed", log=crash_after_epoch_2)
    crashed = RunDir(tmp_path / "crashed")
    assert crashed.checkpoint.is_file() and len(crashed.read_history()) == 2
    resume(crashed.path, log=_quiet)
    assert not crashed.checkpoint.exists()
    whole = RunDir(tmp_path / "whole").read_history()
    again = crashed.read_history()
    assert [r["val_loss"] for r in again] == pytest.approx([r["val_loss"] for r in whole], rel=1e-6)


def test_early_stopping_stops_on_rising_val_loss(tiny_recipe: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    losses = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1])
    monkeypatch.setattr(fit_mod, "evaluate_loss", lambda *a, **k: {"loss": next(losses), "accuracy": 0.5})
    config = load_recipe(tiny_recipe, ["train.epochs=8", "train.early_stopping.patience=2"])
    train(config, tmp_path / "run", log=_quiet)
    history = RunDir(tmp_path / "run").read_history()
    assert len(history) == 4  # best at epoch 2, two epochs without improvement
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["overfitting"]["best_epoch"] == 2


def test_lr_plateau_halves_the_learning_rate_and_survives_resume(tiny_recipe: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    losses = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9]  # best at epoch 2, then worse and worse
    calls = {"n": 0}

    def fake_loss(*_a, **_k) -> dict[str, float]:
        calls["n"] += 1
        return {"loss": losses[calls["n"] - 1], "accuracy": 0.5}

    monkeypatch.setattr(fit_mod, "evaluate_loss", fake_loss)
    config = load_recipe(tiny_recipe, ["train.epochs=6", "train.lr_plateau.patience=1", "train.learning_rate=0.01"])

    def crash_after_epoch_4(msg: str) -> None:
        if msg.startswith("epoch   4/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", log=crash_after_epoch_4)
    calls["n"] = 3  # the checkpoint is that of epoch 3: epoch 4 runs again
    resume(tmp_path / "run", log=_quiet)
    lrs = [r["lr"] for r in RunDir(tmp_path / "run").read_history()]
    # patience 1: halved after the second epoch without improvement (4); a fresh scheduler would not have
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.005, 0.005])


def test_weight_penalty_is_l1_plus_l2_of_kernels_only() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        model[0].bias.fill_(100.0)
    assert weight_penalty(model, 0.0, 0.0) is None
    assert weight_penalty(model, 0.1, 0.01).item() == pytest.approx(0.1 * 3.5 + 0.01 * 5.25)


def test_augmentation_and_regularisation_train(tiny_recipe: Path, tmp_path: Path) -> None:
    config = load_recipe(tiny_recipe, ["augment.rotation=180", "augment.flip_horizontal=true",
                                       "augment.brightness=0.1", "augment.contrast=0.1", "train.l2=0.001",
                                       "model.options.batch_norm=true", "train.epochs=1"])
    metrics = train(config, tmp_path / "run", log=_quiet)
    assert metrics["params"]["non_trainable"] > 0  # batch-norm statistics


def test_evaluate_run_recomputes_and_rejects_non_runs(tiny_recipe: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = train(load_recipe(tiny_recipe), out, log=_quiet)
    (out / "metrics.json").unlink()
    again = evaluate(out, split="test", log=_quiet).metrics
    assert again["test"]["accuracy"] == first["test"]["accuracy"]
    assert "val" not in again
    with pytest.raises(ConvscopeError, match="not a convscope run directory"):
        evaluate(tmp_path, log=_quiet)


@pytest.mark.parametrize("native", [True, False])
def test_bfloat16_training_says_so_and_where_it_is_slow(tiny_recipe: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(fit_mod, "bfloat16_native", lambda _device: native)
    lines: list[str] = []
    config = load_recipe(tiny_recipe, ["train.precision=bfloat16", "train.epochs=1"])
    metrics = train(config, tmp_path / "run", log=lines.append)
    assert any("training in bfloat16" in line for line in lines)
    assert any("likely slower than float32" in line for line in lines) is not native
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert "precision: bfloat16" in RunDir(tmp_path / "run").config.read_text()
    weights = load_file(RunDir(tmp_path / "run").weights)
    assert all(w.dtype == torch.float32 for w in weights.values())

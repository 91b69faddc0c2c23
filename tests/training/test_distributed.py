"""Training in two CPU processes with DistributedDataParallel (gloo): rank 0 writes a complete run directory, the
ranks' parameters stay equal, the loss falls, and an interrupted run resumes in two processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from convscope import load_recipe, resume, train
from convscope.errors import ConvscopeError
from convscope.runs.layout import RunDir
from convscope.training.distributed import REPORT, Context, context
from convscope.training.tensors import ShuffledBatches

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


def test_ranks_take_disjoint_equal_shares_of_each_epoch() -> None:
    shares = [list(ShuffledBatches(23, 4, seed=5, rank=r, world=2)) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) == 3  # 11 items each: 4 + 4 + 3
    seen = [set(torch.cat(batches).tolist()) for batches in shares]
    assert not seen[0] & seen[1] and len(seen[0]) == len(seen[1]) == 11
    whole = ShuffledBatches(23, 4, seed=5)
    assert torch.equal(torch.cat(list(whole)), torch.cat(list(ShuffledBatches(23, 4, seed=5, rank=0, world=1))))


def test_one_process_is_rank_0_of_1() -> None:
    assert context() == Context(0, 1, 0) and context().is_main and not context().active


@pytest.mark.slow
def test_two_processes_write_one_complete_run_with_equal_parameters(tiny_recipe: Path, tmp_path: Path,
                                                                     capfd: pytest.CaptureFixture[str]) -> None:
    config = load_recipe(tiny_recipe, ["train.epochs=4", "train.learning_rate=0.003"])
    metrics = train(config, tmp_path / "run", nproc=2)
    run = RunDir(tmp_path / "run")
    for path in (run.config, run.history, run.weights, run.model_config, run.metrics, run.report, run.curves):
        assert path.is_file(), path
    assert not run.checkpoint.parent.exists()
    assert metrics == json.loads(run.metrics.read_text()) and "test" in metrics
    report = json.loads((run.path / REPORT).read_text())
    assert report["world_size"] == 2 and report["backend"] == "gloo" and report["in_sync"]
    assert len(report["parameter_digests"]) == 2 and len(set(report["parameter_digests"])) == 1
    history = run.read_history()
    assert len(history) == 4 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    out = capfd.readouterr().out
    assert out.count("epoch   1/4") == 1  # rank 0 alone logs
    with pytest.raises(ConvscopeError, match="already exists"):
        train(config, tmp_path / "run", nproc=2)


@pytest.mark.slow
def test_an_interrupted_run_resumes_in_two_processes(tiny_recipe: Path, tmp_path: Path) -> None:
    config = load_recipe(tiny_recipe, ["train.epochs=3"])

    def crash_after_epoch_2(msg: str) -> None:  # before epoch 2's checkpoint: epoch 1's is the last
        if msg.startswith("epoch   2/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "run", log=crash_after_epoch_2)
    run = RunDir(tmp_path / "run")
    assert run.checkpoint.is_file()
    resume(run.path, nproc=2)
    assert not run.checkpoint.exists() and run.metrics.is_file()
    assert [row["epoch"] for row in run.read_history()] == [1, 2, 3]
    assert json.loads((run.path / REPORT).read_text())["in_sync"]
    with pytest.raises(ConvscopeError, match="no checkpoint to resume from"):
        resume(run.path, nproc=2)

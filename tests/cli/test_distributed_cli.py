"""`convscope train --nproc`: the option is checked before anything starts (training in two processes is tested in
tests/training/test_distributed.py)."""

from __future__ import annotations

from pathlib import Path

from .test_cli import cli


def test_train_nproc_must_be_positive(monkeypatch, capsys, tiny_recipe: Path, tmp_path: Path) -> None:
    code, _, err = cli(monkeypatch, capsys, "train", tiny_recipe, "--out", tmp_path / "run", "--nproc", "0")
    assert code == 2 and "--nproc" in err and not (tmp_path / "run").exists()

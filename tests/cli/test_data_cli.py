"""``convscope data list`` and ``convscope data check`` at the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convscope.io import write_image

from .test_cli import assert_user_error, cli


def _binary_folder(root: Path) -> Path:
    mask = np.zeros((48, 48), np.uint8)
    mask[5:12, 5:12] = 255
    mask[30:40, 30:40] = 255
    for i in range(4):
        write_image(root / "images" / f"a{i}.png", (mask // 2 + i).astype(np.uint8))
        write_image(root / "masks" / f"a{i}.png", mask)
    return root


def test_data_list_columns_do_not_run_into_each_other(monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    code, text, _ = cli(monkeypatch, capsys, "data", "list")
    assert code == 0
    lines = text.splitlines()
    start = lines[0].index("test split")
    rows = [line for line in lines[1:] if not line.startswith(" ")]  # not a wrapped description's next lines
    assert len(rows) >= 9
    for line in rows:  # every row has a space before the "test split" column and its value starts there
        assert line[start - 1] == " " and line[start] != " ", line
    assert any(line.startswith("dsb2018 ") and "semantic,stardist,flows" in line for line in lines)


def test_data_check_refuses_binary_masks_for_stardist(monkeypatch, capsys, tmp_path: Path) -> None:
    root = _binary_folder(tmp_path / "bin")
    result = cli(monkeypatch, capsys, "data", "check", str(root), "--task", "stardist", "--patch-size", "32")
    assert_user_error(result, "4 of 4 masks are binary", "--relabel")
    assert "instance ids" in result[1]  # the table is printed before the error line
    code, out, _ = cli(monkeypatch, capsys, "data", "check", str(root), "--task", "semantic", "--patch-size", "32")
    assert code == 0 and "verdict: usable for semantic" in out


def test_data_check_relabel_then_passes(monkeypatch, capsys, tmp_path: Path) -> None:
    root = _binary_folder(tmp_path / "bin")
    code, out, _ = cli(monkeypatch, capsys, "data", "check", str(root), "--relabel", str(tmp_path / "fixed"))
    assert code == 0 and "4 relabelled masks" in out
    code, out, _ = cli(monkeypatch, capsys, "data", "check", str(tmp_path / "fixed"), "--task", "stardist",
                       "--patch-size", "32")
    assert code == 0, out
    assert_user_error(cli(monkeypatch, capsys, "data", "check", str(root), "--relabel", str(tmp_path / "fixed")),
                      "not empty")


def test_data_check_missing_folder_is_one_line(monkeypatch, capsys, tmp_path: Path) -> None:
    assert_user_error(cli(monkeypatch, capsys, "data", "check", str(tmp_path / "nope")), "not found")

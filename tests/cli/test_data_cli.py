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


def test_evaluate_labels_refuses_binary_ground_truth_and_relabels_on_request(monkeypatch, capsys,
                                                                             tmp_path: Path) -> None:
    root = _binary_folder(tmp_path / "bin")
    pred = tmp_path / "pred"
    for i in range(4):
        labels = np.zeros((48, 48), np.uint16)
        labels[5:12, 5:12], labels[30:40, 30:40] = 1, 2
        write_image(pred / f"a{i}.tif", labels)
    result = cli(monkeypatch, capsys, "evaluate-labels", str(root / "masks"), str(pred))
    assert_user_error(result, "binary mask (one value for 2 separate objects)", "--relabel")
    code, out, _ = cli(monkeypatch, capsys, "evaluate-labels", str(root / "masks"), str(pred), "--relabel")
    assert code == 0 and "4 images, 8 true and 8 predicted objects" in out


def test_train_refuses_binary_masks_for_stardist_with_one_line(monkeypatch, capsys, tmp_path: Path) -> None:
    root = _binary_folder(tmp_path / "bin")
    recipe = tmp_path / "star.yaml"
    recipe.write_text(f"task: stardist\ndata:\n  dataset: paired\n  path: {root}\n  patch_size: 32\n"
                      "model:\n  name: stardist\ntrain:\n  epochs: 1\n  progress: false\n")
    out = tmp_path / "run"
    result = cli(monkeypatch, capsys, "train", str(recipe), "--out", str(out))
    assert_user_error(result, "4 of 4 masks are binary", "--relabel")
    assert not out.exists()  # refused before anything is written
    fixed = tmp_path / "relabelled"
    code, _, _ = cli(monkeypatch, capsys, "data", "check", str(root), "--relabel", str(fixed))
    assert code == 0
    from convscope.config import load_recipe
    from convscope.datasets import load_task_data

    config = load_recipe(recipe, [f"data.path={fixed}"])
    data = load_task_data(config.data, "instances")  # the relabelled copy is accepted
    assert max(int(m.max()) for m in data.train.masks) == 2

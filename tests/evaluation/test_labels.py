"""Label folders judged against ground-truth folders (``convscope evaluate-labels``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convscope.errors import ConvscopeError
from convscope.evaluation.labels import evaluate_label_folders
from convscope.io import write_image
from convscope.metrics.matching import DEFAULT_THRESHOLDS, threshold_key


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """One row per case; non-sequential labels on both sides.

    row 0: A (label 7, 5 px) found exactly by 2                      -> IoU 1.0
    row 1: B (label 3, 10 px) split into 9 (6 px) and 5 (4 px)        -> IoU 0.6 and 0.4
    row 2: C (label 100, 6 px) and D (label 12, 4 px) merged into 40  -> IoU 0.6 and 0.4
    row 3: E (label 65535, 4 px) missed
    """
    y_true = np.zeros((5, 12), np.uint16)
    y_pred = np.zeros((5, 12), np.uint16)
    y_true[0, 0:5], y_pred[0, 0:5] = 7, 2
    y_true[1, 0:10], y_pred[1, 0:6], y_pred[1, 6:10] = 3, 9, 5
    y_true[2, 0:6], y_true[2, 6:10], y_pred[2, 0:10] = 100, 12, 40
    y_true[3, 0:4] = 65535
    return y_true, y_pred


def _write_folders(tmp_path: Path) -> tuple[Path, Path]:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    y_true, y_pred = _scene()
    write_image(gt / "img1.tif", y_true)
    write_image(pred / "img1.png", y_pred)  # suffixes may differ: paired by stem
    write_image(gt / "img2.png", (y_true > 0).astype(np.uint8))
    write_image(pred / "img2.tif", (y_true > 0).astype(np.uint16))
    (gt / "notes.txt").write_text("ignored")
    return gt, pred


def test_evaluate_label_folders(tmp_path: Path) -> None:
    gt, pred = _write_folders(tmp_path)
    out = evaluate_label_folders(gt, pred)
    assert [row["name"] for row in out["per_image"]] == ["img1", "img2"]
    assert out["per_image"][0]["f1@0.5"] == pytest.approx(6 / 9)
    assert out["per_image"][1]["tp@0.5"] == 1 and out["per_image"][1]["f1@0.5"] == 1.0
    assert out["matching"]["0.5"]["tp"] == 4 and list(out["matching"]) == [threshold_key(t) for t in DEFAULT_THRESHOLDS]


def test_evaluate_label_folders_errors(tmp_path: Path) -> None:
    gt, pred = _write_folders(tmp_path)
    write_image(gt / "img3.tif", np.zeros((5, 12), np.uint16))
    with pytest.raises(ConvscopeError, match=r"img3\.tif: no label image named 'img3' in .*pred.*add the prediction"):
        evaluate_label_folders(gt, pred)
    (gt / "img3.tif").unlink()
    write_image(pred / "extra.tif", np.zeros((5, 12), np.uint16))
    with pytest.raises(ConvscopeError, match=r"extra\.tif: no label image named 'extra' in .*gt.*add its ground"):
        evaluate_label_folders(gt, pred)
    (pred / "extra.tif").unlink()
    write_image(pred / "img2.tif", np.zeros((6, 12), np.uint16))
    with pytest.raises(ConvscopeError, match=r"img2\.tif: size 12x6 .* ground truth .*img2\.png \(12x5\); predict"):
        evaluate_label_folders(gt, pred)
    write_image(pred / "img2.tif", np.zeros((5, 12), np.float32))
    with pytest.raises(ConvscopeError, match=r"img2\.tif: label image has dtype float32"):
        evaluate_label_folders(gt, pred)
    write_image(pred / "img2.png", np.zeros((5, 12), np.uint8))
    with pytest.raises(ConvscopeError, match="two predicted label images named 'img2'"):
        evaluate_label_folders(gt, pred)
    with pytest.raises(ConvscopeError, match="folder not found"):
        evaluate_label_folders(tmp_path / "nope", pred)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvscopeError, match="no ground-truth label images"):
        evaluate_label_folders(tmp_path / "empty", pred)


def _two_blobs(value: int) -> np.ndarray:
    mask = np.zeros((12, 12), np.uint8)
    mask[1:4, 1:4] = value
    mask[7:11, 7:11] = value
    return mask


@pytest.mark.parametrize("value", [1, 255])
def test_binary_masks_are_refused_unless_relabelled(tmp_path: Path, value: int) -> None:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    write_image(gt / "a.png", _two_blobs(value))  # a semantic mask: one value for two separate objects
    labels = _two_blobs(1).astype(np.uint16)
    labels[7:11, 7:11] = 2
    write_image(pred / "a.tif", labels)  # the two objects found exactly
    with pytest.raises(ConvscopeError, match=r"a\.png: binary mask \(one value for 2 separate objects\).*--relabel"):
        evaluate_label_folders(gt, pred)
    out = evaluate_label_folders(gt, pred, relabel=True)
    assert out["n_true"] == 2 and out["matching"]["0.5"]["f1"] == 1.0


def test_binary_predictions_are_refused_too(tmp_path: Path) -> None:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    labels = _two_blobs(1).astype(np.uint16)
    labels[7:11, 7:11] = 2
    write_image(gt / "a.tif", labels)
    write_image(pred / "a.png", _two_blobs(255))
    with pytest.raises(ConvscopeError, match=r"pred.a\.png: binary mask"):
        evaluate_label_folders(gt, pred)
    assert evaluate_label_folders(gt, pred, relabel=True)["n_pred"] == 2

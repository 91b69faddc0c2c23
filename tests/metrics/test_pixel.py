"""Pixel metrics: hand-computed cases, empty classes, micro vs macro, all-background accuracy, thresholds."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from convscope.metrics.pixel import (
    all_background_accuracy,
    average_scores,
    binarize,
    pixel_confusion,
    pixel_scores,
    segmentation_report,
    tune_threshold,
)


def test_binary_hand_computed() -> None:
    y_true = np.array([[1, 1, 0, 0],
                       [1, 0, 0, 0]], dtype=np.uint8)
    y_pred = np.array([[1, 0, 1, 0],
                       [1, 0, 0, 0]], dtype=np.uint8)
    # foreground: tp 2, fp 1, fn 1, tn 4
    np.testing.assert_array_equal(pixel_confusion(y_true, y_pred), [[4, 1], [1, 2]])
    s = pixel_scores(y_true, y_pred)
    assert s.pixel_accuracy == pytest.approx(6 / 8)
    fg = s.scores("foreground")
    assert (fg.iou, fg.dice, fg.precision, fg.recall, fg.support) == pytest.approx((2 / 4, 4 / 6, 2 / 3, 2 / 3, 3))
    bg = s.per_class[0]
    assert (bg.iou, bg.dice, bg.precision, bg.recall) == pytest.approx((4 / 6, 8 / 10, 4 / 5, 4 / 5))
    assert (s.dice, s.iou, s.precision, s.recall) == pytest.approx((4 / 6, 2 / 4, 2 / 3, 2 / 3))
    assert s.n_pixels == 8
    assert pixel_scores(y_true.astype(bool), y_pred.astype(bool)).to_dict() == s.to_dict()


def test_multiclass_hand_computed_and_foreground_mean() -> None:
    y_true = np.array([[0, 1, 1, 2, 2, 2]])
    y_pred = np.array([[0, 1, 2, 2, 2, 0]])
    s = pixel_scores(y_true, y_pred, class_names=("bg", "a", "b"))
    assert s.pixel_accuracy == pytest.approx(4 / 6)
    a, b = s.scores("a"), s.scores("b")
    assert (a.iou, a.dice, a.precision, a.recall) == pytest.approx((1 / 2, 2 / 3, 1.0, 1 / 2))
    assert (b.iou, b.dice, b.precision, b.recall) == pytest.approx((2 / 4, 4 / 6, 2 / 3, 2 / 3))
    assert s.dice == pytest.approx((2 / 3 + 4 / 6) / 2)  # background excluded
    assert s.scores("bg").iou == pytest.approx(1 / 2)


def test_empty_classes_are_defined_never_nan() -> None:
    empty = np.zeros((3, 3), dtype=np.uint8)
    s = pixel_scores(empty, empty)
    fg = s.scores("foreground")
    assert (fg.iou, fg.dice, fg.precision, fg.recall) == (1.0, 1.0, 1.0, 1.0)
    missed = empty.copy()
    missed[1, 1] = 1
    m = pixel_scores(missed, empty).scores("foreground")  # present, never predicted
    assert (m.iou, m.dice, m.precision, m.recall) == (0.0, 0.0, 0.0, 0.0)
    f = pixel_scores(empty, missed).scores("foreground")  # absent, falsely predicted
    assert (f.iou, f.dice, f.precision, f.recall) == (0.0, 0.0, 0.0, 0.0)
    values = json.dumps(segmentation_report([empty, missed], [missed, empty]).to_dict())
    assert "NaN" not in values


def test_micro_and_macro_differ() -> None:
    # image A: large, perfectly segmented; image B: small, foreground entirely missed
    true_a = np.zeros((10, 10), dtype=np.uint8)
    true_a[:, :5] = 1
    true_b = np.zeros((2, 2), dtype=np.uint8)
    true_b[0, 0] = 1
    report = segmentation_report([true_a, true_b], [true_a, np.zeros_like(true_b)], image_names=["a", "b"])
    assert [s.dice for s in report.per_image] == [1.0, 0.0]
    assert report.macro.dice == pytest.approx(0.5)
    assert report.micro.dice == pytest.approx(2 * 50 / (2 * 50 + 1))  # pooled: tp 50, fn 1
    assert report.micro.pixel_accuracy == pytest.approx(103 / 104)
    assert report.macro.pixel_accuracy == pytest.approx((1.0 + 3 / 4) / 2)
    assert report.macro.per_class[1].support == 51
    np.testing.assert_array_equal(report.confusion, [[53, 0], [1, 50]])
    d = report.to_dict()
    assert d["average"] == "micro" and d["dice"] == report.micro.dice and d["macro"]["dice"] == 0.5
    assert [r["name"] for r in d["per_image"]] == ["a", "b"] and d["n_images"] == 2
    assert d["all_background_accuracy"] == pytest.approx(53 / 104)
    json.dumps(d)


def test_average_scores_is_mean_of_images() -> None:
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 3, (5, 4)) for _ in range(3)]
    preds = [rng.integers(0, 3, (5, 4)) for _ in range(3)]
    per = [pixel_scores(t, p, class_names=("0", "1", "2")) for t, p in zip(maps, preds, strict=True)]
    macro = average_scores(per)
    assert macro.iou == pytest.approx(np.mean([s.iou for s in per]))
    assert macro.per_class[2].recall == pytest.approx(np.mean([s.per_class[2].recall for s in per]))
    assert macro.n_pixels == 60


def test_all_background_accuracy_is_background_fraction() -> None:
    mask = np.zeros((25, 20), dtype=np.uint16)
    mask[:3, :20] = 7  # instance labels count as objects: 60 of 500 pixels, 88 % background
    assert all_background_accuracy(mask) == pytest.approx(0.88)
    # the lesson: 88 % accuracy while finding none of the objects
    s = pixel_scores(mask > 0, np.zeros(mask.shape, dtype=bool))
    assert s.pixel_accuracy == pytest.approx(0.88) and s.recall == 0.0 and s.dice == 0.0
    other = np.ones((10, 10), dtype=np.uint8)
    assert all_background_accuracy([mask, other]) == pytest.approx(440 / 600)


def test_invalid_inputs_are_errors() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        pixel_scores(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        pixel_scores(np.array([[0, 2]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="dtype"):
        pixel_scores(np.array([[0.0, 1.0]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="logits"):
        tune_threshold([np.array([[2.0, -1.0]])], [np.array([[1, 0]])])


def _separable_case() -> tuple[list[np.ndarray], list[np.ndarray]]:
    mask = np.zeros((6, 6), dtype=np.uint8)
    mask[:2] = 1
    probs = np.where(mask > 0, 0.58, 0.2).astype(np.float32)
    probs[5, :4] = 0.52  # background pixels that only a threshold >= 0.52 rejects
    probs[0, :3] = 0.61
    return [probs], [mask]


def test_tune_threshold_finds_the_separating_threshold() -> None:
    probs, masks = _separable_case()
    best, scores = tune_threshold(probs, masks)
    assert best == pytest.approx(0.55)
    assert scores.shape == (19,) and scores.dtype == np.float64
    assert scores[10] == pytest.approx(1.0) and np.all(np.delete(scores, 10) < 1.0)
    # at 0.5: tp 12, fp 4 -> Dice 24 / 28; at 0.6: tp 3, fn 9 -> Dice 6 / 15
    assert scores[9] == pytest.approx(24 / 28)
    assert scores[11] == pytest.approx(6 / 15)
    assert pixel_scores(masks[0], binarize(probs[0], best)).dice == 1.0


def test_tune_threshold_scores_match_binarize_and_ties_prefer_half() -> None:
    rng = np.random.default_rng(1)
    probs = [rng.random((9, 7)), rng.random((5, 5)).astype(np.float32)]
    masks = [(p + rng.normal(0, 0.3, p.shape) > 0.6).astype(np.uint8) for p in probs]
    thresholds = np.array([0.2, 0.35, 0.5, 0.8])
    for metric in ("dice", "iou", "pixel_accuracy"):
        for average in ("micro", "macro"):
            _, scores = tune_threshold(probs, masks, thresholds=thresholds, metric=metric, average=average)
            reports = [segmentation_report(masks, [binarize(p, t) for p in probs]) for t in thresholds]
            agg = [getattr(r, average) for r in reports]
            np.testing.assert_allclose(scores, [getattr(a, metric) for a in agg], err_msg=f"{metric} {average}")
    # perfectly separable for every threshold in [0.3, 0.7): the tie goes to the one nearest 0.5
    mask = np.array([[0, 0, 1, 1]])
    best, scores = tune_threshold([np.array([[0.1, 0.3, 0.7, 0.9]])], [mask])
    assert math.isclose(best, 0.5) and scores.max() == 1.0


def test_pixel_metrics_import_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None; import convscope.metrics.pixel as m; "
            "print(m.pixel_scores([[0, 1]], [[0, 1]]).dice)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1.0"

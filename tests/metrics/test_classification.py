from __future__ import annotations

import json

import numpy as np
import pytest

from convscope.metrics import (
    ClassificationReport,
    classification_report,
    confusion_matrix,
    report_from_confusion,
)


def test_confusion_matrix_counts_rows_true_columns_pred():
    cm = confusion_matrix([0, 0, 0, 1, 1], [0, 1, 0, 1, 0], 2)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[2, 1], [1, 1]])


def test_confusion_matrix_keeps_absent_classes_and_flattens():
    cm = confusion_matrix(np.array([[0], [2]], dtype=np.uint8), np.array([2, 2]), 4)
    assert cm.shape == (4, 4)
    assert cm[0, 2] == 1 and cm[2, 2] == 1 and cm.sum() == 2


@pytest.mark.parametrize(
    ("y_true", "y_pred", "n", "match"),
    [
        ([0, 1], [0], 2, "differ in length"),
        ([0, 2], [0, 1], 2, "outside"),
        ([0, -1], [0, 1], 2, "outside"),
        ([0.0, 1.0], [0, 1], 2, "integer"),
        ([0], [0], 0, "n_classes"),
    ],
)
def test_confusion_matrix_rejects_bad_input(y_true, y_pred, n, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(y_true, y_pred, n)


def test_binary_report_hand_computed():
    rep = classification_report([0, 0, 0, 1, 1], [0, 1, 0, 1, 0], ["normal", "abnormal"])
    assert isinstance(rep, ClassificationReport)
    assert rep.accuracy == pytest.approx(0.6)
    assert rep.n_images == 5
    normal, abnormal = rep.per_class
    assert (normal.precision, normal.recall, normal.f1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert normal.support == 3
    assert (abnormal.precision, abnormal.recall, abnormal.f1) == pytest.approx((0.5, 0.5, 0.5))
    assert abnormal.support == 2
    assert rep.macro_precision == pytest.approx(7 / 12)
    assert rep.macro_f1 == pytest.approx(7 / 12)
    assert rep.scores("abnormal") == abnormal
    assert not rep.confusion.flags.writeable


def test_three_classes_with_a_class_never_predicted():
    # class 2 ("c") is never predicted: precision 0.0 (not NaN), recall 0.0
    rep = classification_report([0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 1, 1], ["a", "b", "c"])
    np.testing.assert_array_equal(rep.confusion, [[2, 0, 0], [1, 1, 0], [0, 2, 0]])
    assert rep.accuracy == pytest.approx(0.5)
    a, b, c = rep.per_class
    assert (a.precision, a.recall, a.f1) == pytest.approx((2 / 3, 1.0, 0.8))
    assert (b.precision, b.recall, b.f1) == pytest.approx((1 / 3, 0.5, 0.4))
    assert (c.precision, c.recall, c.f1, c.support) == (0.0, 0.0, 0.0, 2)
    assert rep.macro_precision == pytest.approx(1 / 3)
    assert rep.macro_recall == pytest.approx(0.5)
    assert rep.macro_f1 == pytest.approx(0.4)
    assert not np.isnan([rep.macro_precision, rep.macro_recall, rep.macro_f1]).any()


def test_class_absent_from_truth_and_predictions_is_left_out_of_macro_average():
    with_absent = classification_report([0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 1, 1], ["a", "b", "c", "d"])
    assert with_absent.scores("d").support == 0
    assert with_absent.macro_f1 == pytest.approx(0.4)


def test_perfect_and_empty():
    perfect = classification_report([1, 0, 1], [1, 0, 1], ["x", "y"])
    assert perfect.accuracy == 1.0 and perfect.macro_f1 == 1.0
    empty = classification_report([], [], ["x", "y"])
    assert empty.n_images == 0 and empty.accuracy == 0.0 and empty.macro_f1 == 0.0


def test_to_dict_has_the_split_metrics_shape_and_is_json():
    d = classification_report([0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 1, 1], ["a", "b", "c"]).to_dict()
    assert set(d) == {"accuracy", "n_images", "per_class", "macro_avg", "confusion_matrix"}
    assert list(d["per_class"]) == ["a", "b", "c"]
    assert set(d["per_class"]["c"]) == {"precision", "recall", "f1", "support"}
    assert set(d["macro_avg"]) == {"precision", "recall", "f1"}
    assert d["confusion_matrix"] == [[2, 0, 0], [1, 1, 0], [0, 2, 0]]
    assert type(d["confusion_matrix"][0][0]) is int and type(d["per_class"]["a"]["support"]) is int
    assert json.loads(json.dumps(d)) == d


def test_report_from_confusion_matches_and_checks_names():
    rep = classification_report([0, 1, 1], [0, 0, 1], ["p", "q"])
    assert report_from_confusion(rep.confusion, ["p", "q"]).to_dict() == rep.to_dict()
    with pytest.raises(ValueError, match="unique"):
        report_from_confusion([[1, 0], [0, 1]], ["p", "p"])
    with pytest.raises(ValueError, match="shape"):
        report_from_confusion([[1, 0], [0, 1]], ["p", "q", "r"])

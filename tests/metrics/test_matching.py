"""Instance matching metrics: hand-computed cases, empty images, criteria, pooling, speed, folders, StarDist parity."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from convscope.metrics.matching import (
    DEFAULT_THRESHOLDS,
    TABLE_KEYS,
    Matching,
    evaluate_label_pairs,
    matching,
    matching_dataset,
    matching_table,
    threshold_key,
)

SCALARS = ("criterion", "thresh", "fp", "tp", "fn", "precision", "recall", "accuracy", "f1", "n_true", "n_pred",
           "mean_true_score", "mean_matched_score", "panoptic_quality")
RATIOS = ("precision", "recall", "accuracy", "f1", "mean_true_score", "mean_matched_score", "panoptic_quality")


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


def test_hand_computed_split_merge_miss() -> None:
    y_true, y_pred = _scene()
    m = matching(y_true, y_pred, thresh=0.5, report_matches=True)
    assert isinstance(m, Matching)
    assert (m.criterion, m.thresh, m.n_true, m.n_pred, m.tp, m.fp, m.fn) == ("iou", 0.5, 5, 4, 3, 1, 2)
    assert (m.precision, m.recall, m.accuracy, m.f1) == pytest.approx((3 / 4, 3 / 5, 3 / 6, 6 / 9))
    score_sum = 1.0 + 0.6 + 0.6
    assert m.mean_matched_score == pytest.approx(score_sum / 3)
    assert m.mean_true_score == pytest.approx(score_sum / 5)
    assert m.panoptic_quality == pytest.approx(score_sum / (3 + 1 / 2 + 2 / 2))
    # pairs in true-label order (3, 7, 100), original labels
    assert m.matched_pairs == ((3, 9), (7, 2), (100, 40))
    assert m.matched_scores == pytest.approx((0.6, 1.0, 0.6))
    assert m.matched_tps == (0, 1, 2)
    assert m.by_image is None


def test_threshold_sequence_and_strictness() -> None:
    y_true, y_pred = _scene()
    results = matching(y_true, y_pred, thresh=[0.7, 0.1, 0.5])
    assert isinstance(results, tuple) and [r.thresh for r in results] == [0.7, 0.1, 0.5]
    assert [r.tp for r in results] == [1, 3, 3]  # at 0.1 the 0.4 pairs compete with the 0.6 ones and lose
    assert results[0].fp == 3 and results[0].fn == 4
    assert matching(y_true, y_pred, thresh=1.0).tp == 1  # score >= thresh: IoU 1.0 counts at 1.0
    assert matching(y_true, y_pred, thresh=(0.5,))[0] == matching(y_true, y_pred, thresh=0.5)


def test_criteria_iot_and_iop() -> None:
    y_true, y_pred = _scene()
    iot = matching(y_true, y_pred, thresh=0.5, criterion="iot")
    # iot: A 1, B-9 0.6, B-5 0.4, C-40 1, D-40 1 -> one of C/D matched, both score 1
    assert (iot.tp, iot.fp, iot.fn) == (3, 1, 2)
    assert iot.mean_matched_score == pytest.approx((1 + 0.6 + 1) / 3)
    iop = matching(y_true, y_pred, thresh=0.5, criterion="iop")
    # iop: A 1, B-9 1, B-5 1, C-40 0.6, D-40 0.4 -> one of 9/5 matched, C matched
    assert (iop.tp, iop.fp, iop.fn) == (3, 1, 2)
    assert iop.mean_matched_score == pytest.approx((1 + 1 + 0.6) / 3)
    assert matching(y_true, y_pred, thresh=0.7, criterion="iot").tp == 2
    assert matching(y_true, y_pred, thresh=0.7, criterion="iop").tp == 2


@pytest.mark.parametrize(
    ("n_true", "n_pred"), [(0, 0), (0, 2), (2, 0)], ids=["both-empty", "true-empty", "pred-empty"]
)
def test_empty_images_give_zeros_not_nan(n_true: int, n_pred: int) -> None:
    y_true = np.zeros((6, 6), np.uint16)
    y_pred = np.zeros((6, 6), np.uint16)
    y_true[0, :n_true] = np.arange(1, n_true + 1)
    y_pred[5, :n_pred] = np.arange(1, n_pred + 1)
    m = matching(y_true, y_pred, thresh=0.5, report_matches=True)
    assert (m.tp, m.fp, m.fn, m.n_true, m.n_pred) == (0, n_pred, n_true, n_true, n_pred)
    assert all(getattr(m, k) == 0.0 for k in RATIOS)
    assert m.matched_pairs == m.matched_scores == m.matched_tps == ()
    text = json.dumps(m.to_dict())
    assert "NaN" not in text and json.loads(text)["fp"] == n_pred


def test_no_background_and_zero_size_images() -> None:
    full = np.ones((3, 3), np.uint8)
    for criterion in ("iou", "iot", "iop"):
        m = matching(full, full, criterion=criterion)
        assert (m.tp, m.fp, m.fn, m.mean_matched_score) == (1, 0, 0, 1.0)
    m = matching(np.zeros((0, 4), np.uint8), np.zeros((0, 4), np.uint8))
    assert (m.n_true, m.n_pred, m.tp, m.f1) == (0, 0, 0, 0.0)


def test_non_sequential_labels_match_sequential() -> None:
    y_true, y_pred = _scene()
    ranks_true = np.searchsorted(np.unique(y_true), y_true).astype(np.uint8)
    ranks_pred = np.searchsorted(np.unique(y_pred), y_pred).astype(np.uint8)
    a = matching(y_true, y_pred, thresh=(0.3, 0.5))
    b = matching(ranks_true, ranks_pred, thresh=(0.3, 0.5))
    assert [r.to_dict() for r in a] == [r.to_dict() for r in b]
    # huge labels (sorted, not a lookup table) and signed dtypes give the same numbers
    huge = np.where(y_true > 0, y_true.astype(np.uint64) * 60_000_000_000, 0).astype(np.uint64)
    assert matching(huge, y_pred.astype(np.int64), thresh=(0.3, 0.5)) == a
    pairs = matching(huge, y_pred, report_matches=True).matched_pairs
    assert pairs == ((3 * 60_000_000_000, 9), (7 * 60_000_000_000, 2), (100 * 60_000_000_000, 40))
    assert matching(y_true > 0, y_pred > 0).n_true == 1  # a bool mask is one object


def test_volumes_and_progress(capsys: pytest.CaptureFixture[str]) -> None:
    y_true = np.zeros((4, 6, 6), np.uint16)
    y_true[0:2, 0:3, 0:3], y_true[2:4, 3:6, 3:6] = 1, 2
    y_pred = y_true.copy()
    y_pred[3] = 0  # object 2 loses half its voxels: IoU 0.5
    m = matching(y_true, y_pred, thresh=0.5)
    assert (m.tp, m.mean_matched_score) == (2, pytest.approx(0.75))
    pooled = matching_dataset([y_true, y_true], [y_pred, y_pred], thresh=0.6, show_progress=True)
    assert (pooled.tp, pooled.fn) == (2, 2)
    assert "2/2" in capsys.readouterr().err


def test_invalid_input_raises() -> None:
    y = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        matching(y, np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="non-negative integers"):
        matching(y.astype(np.float32), y)
    with pytest.raises(ValueError, match="negative labels"):
        matching(y, np.full((4, 4), -1, np.int16))
    with pytest.raises(ValueError, match="criterion"):
        matching(y, y, criterion="dice")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        matching(y, y, thresh=50)
    with pytest.raises(ValueError, match="empty"):
        matching(y, y, thresh=())


def test_dataset_pooled_versus_by_image() -> None:
    one = np.zeros((8, 8), np.uint8)
    one[0:4, 0:4] = 1
    found = (one, one.copy())  # tp 1
    missed = np.zeros((8, 8), np.uint8)
    missed[0:2, 0:2], missed[6:8, 6:8], missed[0:2, 6:8] = 1, 2, 3
    wrong = (one, missed)  # fn 1, fp 3
    empty = (np.zeros((5, 5), np.uint8), np.zeros((5, 5), np.uint8))  # nothing at all
    ys_true, ys_pred = zip(found, wrong, empty, strict=True)

    pooled = matching_dataset(ys_true, ys_pred, thresh=0.5)
    assert (pooled.tp, pooled.fp, pooled.fn, pooled.n_true, pooled.n_pred) == (1, 3, 1, 2, 4)
    assert (pooled.precision, pooled.recall, pooled.accuracy, pooled.f1) == pytest.approx((1 / 4, 1 / 2, 1 / 5, 2 / 6))
    assert (pooled.mean_matched_score, pooled.mean_true_score) == pytest.approx((1.0, 1 / 2))
    assert pooled.panoptic_quality == pytest.approx(1 / (1 + 3 / 2 + 1 / 2))
    assert pooled.by_image is False
    # the empty image adds nothing to pooled counts
    assert matching_dataset(ys_true[:2], ys_pred[:2]).to_dict() == pooled.to_dict()

    by_image = matching_dataset(ys_true, ys_pred, thresh=0.5, by_image=True)
    assert (by_image.tp, by_image.fp, by_image.fn) == (1, 3, 1)  # counts are summed
    assert (by_image.precision, by_image.recall, by_image.f1) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert by_image.mean_matched_score == pytest.approx(1 / 3) and by_image.by_image is True

    several = matching_dataset(ys_true, ys_pred, thresh=[0.5, 0.9])
    assert isinstance(several, tuple) and several[0] == pooled and several[1].thresh == 0.9
    with pytest.raises(ValueError, match="differ in length"):
        matching_dataset(ys_true, ys_pred[:2])
    with pytest.raises(ValueError, match="no images"):
        matching_dataset([], [])


def test_matching_table_layout() -> None:
    y_true, y_pred = _scene()
    table = matching_table([y_true], [y_pred])
    assert list(table) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    assert set(table["0.5"]) == set(TABLE_KEYS)
    assert table["0.5"]["f1"] == pytest.approx(6 / 9) and table["0.5"]["tp"] == 3
    assert table["0.9"]["tp"] == 1
    json.dumps({"matching": table})
    assert [threshold_key(t) for t in (0.5, 0.55, 1.0, 0.1 + 0.2)] == ["0.5", "0.55", "1", "0.3"]


def _grid_labels(n_objects: int, cell: int, size: int, shift: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Touching square objects of side ``cell`` on a grid; the prediction is the grid shifted by ``shift``."""
    per_row = (size - max(shift)) // cell
    y_true = np.zeros((size, size), np.uint32)
    y_pred = np.zeros((size, size), np.uint32)
    rng = np.random.default_rng(0)
    pred_labels = rng.permutation(np.arange(1, n_objects + 1) * 7 + 1000).astype(np.uint32)  # scrambled, sparse
    for k in range(n_objects):
        r, c = (k // per_row) * cell, (k % per_row) * cell
        y_true[r:r + cell, c:c + cell] = k + 1
        y_pred[r + shift[0]:r + shift[0] + cell, c + shift[1]:c + shift[1] + cell] = pred_labels[k]
    return y_true, y_pred


def test_two_thousand_objects_on_1024_squared() -> None:
    # 2,000 touching 22x22 squares; the prediction is shifted by (5, 7): IoU 255/713 with its own object,
    # about 0.14 with the right-hand neighbour and 0.08 with the one below, so at 0.1 every object competes
    # with a neighbour and the whole grid is one connected assignment problem.
    y_true, y_pred = _grid_labels(2000, 22, 1024, (5, 7))
    results = matching(y_true, y_pred, thresh=DEFAULT_THRESHOLDS)
    own = 255 / 713
    assert [r.tp for r in results] == [2000, 2000, 2000, 0, 0, 0, 0, 0, 0]
    for r in results[:3]:
        assert (r.n_true, r.n_pred, r.fp, r.fn) == (2000, 2000, 0, 0)
        assert r.mean_matched_score == pytest.approx(own)


def _reference(y_true: np.ndarray, y_pred: np.ndarray, thresh: float, criterion: str) -> dict[str, float]:
    """StarDist's ``matching`` transcribed literally: dense overlap matrix, dense assignment."""

    def ranks(y: np.ndarray) -> tuple[np.ndarray, int]:
        labels = np.unique(y[y > 0])
        return np.where(y > 0, np.searchsorted(labels, y) + 1, 0), labels.size

    (t, nt), (p, npred) = ranks(y_true), ranks(y_pred)
    overlap = np.zeros((nt + 1, npred + 1), np.uint64)
    np.add.at(overlap, (t.ravel(), p.ravel()), 1)
    n_pixels_pred = np.sum(overlap, axis=0, keepdims=True)
    n_pixels_true = np.sum(overlap, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        denominator = {"iou": n_pixels_pred + n_pixels_true - overlap, "iot": n_pixels_true, "iop": n_pixels_pred}
        scores = (overlap / denominator[criterion])[1:, 1:].astype(np.float32)  # StarDist's scores are float32
    n_true, n_pred = scores.shape
    n_matched = min(n_true, n_pred)
    not_trivial = n_matched > 0 and np.any(scores >= thresh)
    tp, sum_matched = 0, 0.0
    if not_trivial:
        costs = -(scores >= thresh).astype(float) - scores / (2 * n_matched)
        true_ind, pred_ind = linear_sum_assignment(costs)
        match_ok = scores[true_ind, pred_ind] >= thresh
        tp = int(np.count_nonzero(match_ok))
        # StarDist sums in float32; summing the same float32 scores in float64 differs by float32 rounding only
        sum_matched = float(np.sum(scores[true_ind, pred_ind][match_ok].astype(np.float64)))
    fp, fn = n_pred - tp, n_true - tp

    def safe(x: float, y: float) -> float:
        return x / y if y > 0 else 0.0

    return {
        "criterion": criterion, "thresh": thresh, "fp": fp, "tp": tp, "fn": fn,
        "precision": tp / (tp + fp) if tp else 0.0, "recall": tp / (tp + fn) if tp else 0.0,
        "accuracy": tp / (tp + fp + fn) if tp else 0.0, "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        "n_true": n_true, "n_pred": n_pred, "mean_true_score": safe(sum_matched, n_true),
        "mean_matched_score": safe(sum_matched, tp), "panoptic_quality": safe(sum_matched, tp + fp / 2 + fn / 2),
    }


def _random_pair(seed: int, shape: tuple[int, int] = (40, 40)) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping random rectangles; the prediction jitters, drops, merges and adds some; random label values."""
    rng = np.random.default_rng(seed)
    y_true = np.zeros(shape, np.uint16)
    y_pred = np.zeros(shape, np.uint16)
    n = int(rng.integers(0, 16))
    true_values = rng.choice(np.arange(1, 60000), size=n, replace=False)
    pred_values = rng.choice(np.arange(1, 60000), size=n + 4, replace=False)
    for k in range(n):
        h, w = rng.integers(2, 12, 2)
        r, c = rng.integers(0, shape[0] - h), rng.integers(0, shape[1] - w)
        y_true[r:r + h, c:c + w] = true_values[k]
        if rng.random() < 0.15:
            continue  # missed
        dr, dc, dh, dw = rng.integers(-2, 3, 4)
        r, c = np.clip((r + dr, c + dc), 0, None)
        value = pred_values[k - 1] if k and rng.random() < 0.15 else pred_values[k]  # sometimes merged
        y_pred[r:r + max(h + dh, 1), c:c + max(w + dw, 1)] = value
    for k in range(int(rng.integers(0, 4))):  # false positives
        r, c = rng.integers(0, shape[0] - 4, 2)
        y_pred[r:r + 4, c:c + 3] = pred_values[n + k]
    return y_true, y_pred


PARITY_THRESHOLDS = (0.0, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9)


def _assert_same(got: object, expected: object, keys: tuple[str, ...], where: object) -> None:
    """Counts, names and flags equal; ratios equal up to rounding (summation order at thresh 0)."""
    for key in keys:
        a, b = getattr(got, key), expected[key] if isinstance(expected, dict) else getattr(expected, key)
        if isinstance(a, float) and not isinstance(b, bool):
            assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15), (where, key, a, b)
        else:
            assert a == b, (where, key, a, b)


@pytest.mark.parametrize("criterion", ["iou", "iot", "iop"])
def test_same_numbers_as_dense_stardist_algorithm(criterion: str) -> None:
    for seed in range(40):
        y_true, y_pred = _random_pair(seed)
        ours = matching(y_true, y_pred, thresh=PARITY_THRESHOLDS, criterion=criterion)
        for thresh, m in zip(PARITY_THRESHOLDS, ours, strict=True):
            _assert_same(m, _reference(y_true, y_pred, thresh, criterion), SCALARS, (seed, thresh))


def _reference_dataset(pairs: list[tuple[np.ndarray, np.ndarray]], thresh: float, criterion: str,
                       by_image: bool) -> dict[str, float]:
    """StarDist's ``matching_dataset`` accumulation transcribed: sums, then means or recomputed ratios."""
    acc: dict[str, float] = {}
    for y_true, y_pred in pairs:
        stats = _reference(y_true, y_pred, thresh, criterion)
        for key, value in stats.items():
            if key == "mean_true_score" and not by_image:
                acc[key] = acc.setdefault(key, 0) + value * stats["n_true"]  # the score sum
            elif not isinstance(value, str):
                acc[key] = acc.setdefault(key, 0) + value
    acc.update(criterion=criterion, thresh=thresh, by_image=by_image)
    if by_image:
        acc.update({key: acc[key] / len(pairs) for key in RATIOS})
        return acc
    tp, fp, fn, total = acc["tp"], acc["fp"], acc["fn"], acc["mean_true_score"]
    acc.update(
        precision=tp / (tp + fp) if tp else 0.0, recall=tp / (tp + fn) if tp else 0.0,
        accuracy=tp / (tp + fp + fn) if tp else 0.0, f1=2 * tp / (2 * tp + fp + fn) if tp else 0.0,
        mean_true_score=total / acc["n_true"] if acc["n_true"] else 0.0,
        mean_matched_score=total / tp if tp else 0.0,
        panoptic_quality=total / (tp + fp / 2 + fn / 2) if tp + fp / 2 + fn / 2 else 0.0,
    )
    return acc


@pytest.mark.parametrize("by_image", [False, True], ids=["pooled", "by-image"])
def test_dataset_same_numbers_as_dense_stardist_algorithm(by_image: bool) -> None:
    pairs = [_random_pair(seed) for seed in range(12)]
    ys_true, ys_pred = zip(*pairs, strict=True)
    for criterion in ("iou", "iop"):
        ours = matching_dataset(ys_true, ys_pred, thresh=(0.3, 0.5), criterion=criterion, by_image=by_image)
        for m in ours:
            expected = _reference_dataset(pairs, m.thresh, criterion, by_image)
            _assert_same(m, expected, (*SCALARS, "by_image"), (criterion, m.thresh))


# The comparison with the `stardist` package itself is tests/metrics/test_matching_vs_stardist.py (it runs in the
# StarDist benchmark environment; StarDist's float32 scores need a tolerance there).


def test_report_matches_are_one_to_one_and_serialisable() -> None:
    y_true, y_pred = _random_pair(3, (40, 40))
    m = matching(y_true, y_pred, thresh=0.3, report_matches=True)
    assert len(m.matched_pairs) == len(m.matched_scores) >= len(m.matched_tps) == m.tp
    assert all(m.matched_scores[i] >= 0.3 for i in m.matched_tps)
    assert [p[0] for p in m.matched_pairs] == sorted(p[0] for p in m.matched_pairs)
    assert len({p[1] for p in m.matched_pairs}) == len(m.matched_pairs)  # one-to-one
    assert json.loads(json.dumps(m.to_dict()))["matched_pairs"] == [list(p) for p in m.matched_pairs]


def test_evaluate_label_pairs_layout() -> None:
    y_true, y_pred = _scene()
    out = evaluate_label_pairs([y_true, y_true], [y_pred, y_true], names=["a", "b"], thresholds=(0.5, 0.9))
    assert (out["criterion"], out["n_images"], out["n_true"], out["n_pred"]) == ("iou", 2, 10, 9)
    assert list(out["matching"]) == ["0.5", "0.9"]
    assert out["matching"]["0.5"]["tp"] == 3 + 5
    first = out["per_image"][0]
    assert first["name"] == "a" and first["n_true"] == 5 and first["n_pred"] == 4
    assert first["f1@0.5"] == pytest.approx(6 / 9) and first["accuracy@0.5"] == pytest.approx(0.5)
    assert out["per_image"][1]["f1@0.5"] == 1.0
    json.dumps(out)


def test_matching_imports_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None; import convscope.metrics as m; import numpy as np; "
            "y = np.ones((2, 2), np.uint8); print(m.matching(y, y).f1)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert math.isclose(float(out.stdout.strip()), 1.0)

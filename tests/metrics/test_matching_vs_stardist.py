"""Differential test: ``convscope.metrics.matching`` against the real ``stardist.matching`` package.

Skipped unless ``stardist`` is importable, i.e. outside the benchmark environment. Run it there, with convscope
from the source tree (nothing of convscope is installed in that venv; the matching module is numpy + scipy):

    bash bench/setup_stardist_env.sh
    PYTHONPATH=src bench/.envs/stardist/bin/python -m pytest tests/metrics/test_matching_vs_stardist.py \
        -q -p no:cacheprovider

Random label images (overlapping ellipses and rectangles, random non-sequential label values, several integer
dtypes, 2-D and 3-D, images without objects on either side), every criterion, thresholds 0.1 ... 0.9 (and 0,
0.05 for the scalar fields), single images with and without ``report_matches`` and data sets pooled and
``by_image``. Every field is compared.

What is compared how, and why (differences of StarDist 0.9.2 found by this test):

- Counts (``tp``, ``fp``, ``fn``, ``n_true``, ``n_pred``), ``criterion``, ``thresh`` and ``by_image``: equal.
- Ratios and scores: equal up to float32 rounding (``rel_tol=1e-6``), because StarDist computes the scores
  in float32 (its ``_safe_divide`` writes into a float32 array) and convscope in float64. Exact equality (what
  the dense-reference tests in ``test_matching.py`` check) does not hold against the package. StarDist also
  returns the int 0 where convscope returns 0.0 (``tp == 0``); the values are equal.
- Where two assignments are exactly optimal (ties, common with ``iot``/``iop`` when an object lies inside two
  others), the two implementations may pick different ones (convscope documents this). The counts must still
  agree and both assignments must have the same cost; scores of the tp pairs are then not compared.
- ``matched_pairs`` / ``matched_scores``: convscope lists only the assigned pairs that overlap, StarDist also
  its pairs of score 0 (documented in convscope). The two tests at the end pin two details convscope copies:
  StarDist 0.9 lists its whole assignment even when no pair reaches the threshold, and it compares a threshold
  rounded to float32, so ``np.linspace(0.1, 0.9, 9)[6] == 0.7000000000000001`` accepts a score of exactly 0.7.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from convscope.metrics.matching import matching, matching_dataset

sd = pytest.importorskip(
    "stardist.matching",
    reason="the `stardist` package is not installed here; this differential test runs in the StarDist benchmark "
           "environment (bash bench/setup_stardist_env.sh; see bench/README.md)",
)

CRITERIA = ("iou", "iot", "iop")
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
COUNTS = ("fp", "tp", "fn", "n_true", "n_pred")
RATIOS = ("precision", "recall", "accuracy", "f1", "mean_true_score", "mean_matched_score", "panoptic_quality")
SCALARS = ("criterion", "thresh", *COUNTS, *RATIOS)
REL_TOL, ABS_TOL = 1e-6, 1e-7  # float32 scores on StarDist's side
DTYPES = (np.uint16, np.int32, np.uint32, np.int64)


# ------------------------------------------------------------------------------------------------- data


def _draw(rng: np.random.Generator, shape: tuple[int, ...], values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Paint one ellipse(oid) or box per value into ``out`` (later objects cover earlier ones)."""
    grid = np.indices(shape).astype(float)
    for value in values:
        centre = [rng.uniform(0, s) for s in shape]
        if rng.random() < 0.5:  # an ellipse (ellipsoid in 3-D), random axes; rotated in-plane
            radii = rng.uniform(1.5, 12, len(shape))
            d = [g - c for g, c in zip(grid, centre, strict=True)]
            angle = rng.uniform(0, np.pi)
            d[-2], d[-1] = d[-2] * np.cos(angle) + d[-1] * np.sin(angle), -d[-2] * np.sin(angle) + d[-1] * np.cos(angle)
            inside = sum((di / r) ** 2 for di, r in zip(d, radii, strict=True)) <= 1
        else:  # a box
            size = rng.integers(1, 16, len(shape))
            inside = np.all([(g >= c) & (g < c + s) for g, c, s in zip(grid, centre, size, strict=True)], axis=0)
        out[inside] = value
    return out


def _random_pair(seed: int, shape: tuple[int, ...] = (48, 64)) -> tuple[np.ndarray, np.ndarray]:
    """True objects and a prediction that shifts, drops, merges and adds objects; random label values."""
    rng = np.random.default_rng(seed)
    dtype = DTYPES[seed % len(DTYPES)]
    top = 60_000 if dtype == np.uint16 else 2**31 - 1
    n = int(rng.integers(0, 20))
    true_values = rng.choice(top, size=n, replace=False) + 1
    pred_values = rng.choice(top, size=n + 6, replace=False) + 1
    y_true = _draw(rng, shape, true_values, np.zeros(shape, np.int64))
    y_pred = np.zeros(shape, np.int64)
    for k, value in enumerate(true_values):
        if rng.random() < 0.15:
            continue  # missed
        moved = np.roll(y_true == value, tuple(rng.integers(-3, 4, len(shape))), tuple(range(len(shape))))
        y_pred[moved] = pred_values[k - 1] if k and rng.random() < 0.15 else pred_values[k]  # sometimes merged
    extra = _draw(rng, shape, pred_values[n: n + int(rng.integers(0, 5))], np.zeros(shape, np.int64))
    y_pred = np.where(extra > 0, extra, y_pred)  # false positives on top
    y_true[(0,) * (len(shape) - 1)] = 0  # keep a line of background (StarDist asserts on some images without)
    y_pred[(0,) * (len(shape) - 1)] = 0
    return y_true.astype(dtype), y_pred.astype(dtype)


def _special_pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    """Empty images on either side, one object, identical images, a volume."""
    y_true, y_pred = _random_pair(7)
    empty = np.zeros_like(y_true)
    one = np.zeros((20, 30), np.uint16)
    one[5:12, 4:20] = 40_000
    return [(empty, empty), (empty, y_pred), (y_true, empty), (one, one), (one, one * 0),
            (y_true, y_true), (one, np.roll(one, 3, axis=1)), _random_pair(11, (16, 20, 24))]


PAIRS = [_random_pair(seed) for seed in range(120)] + _special_pairs()


# ------------------------------------------------------------------------------------------- comparing


def _same_float(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _tp_pairs(m: object) -> set[tuple[int, int]]:
    return {tuple(map(int, m.matched_pairs[i])) for i in m.matched_tps}


def _cost(m: object, n_matched: int) -> float:
    """StarDist's assignment cost of a reported matching (pairs of score 0 add nothing)."""
    return -len(m.matched_tps) - sum(map(float, m.matched_scores)) / (2 * n_matched)


def _compare_image(ours: object, theirs: object, where: object) -> bool:
    """Compare one image at one threshold (both with report_matches); True if the two picked different (tied)
    optimal assignments."""
    for key in ("criterion", "thresh", *COUNTS):
        assert getattr(ours, key) == getattr(theirs, key), (where, key, getattr(ours, key), getattr(theirs, key))
    n_matched = min(ours.n_true, ours.n_pred)
    # nothing reaches the threshold: convscope reports no pairs (see test_report_without_a_tp), StarDist its assignment
    no_tp_report = bool(n_matched) and not ours.tp and not ours.matched_pairs
    theirs_overlapping = [(tuple(map(int, p)), float(s))
                          for p, s in zip(theirs.matched_pairs, theirs.matched_scores, strict=True) if s > 0]
    same_pairs = list(ours.matched_pairs) == [p for p, _ in theirs_overlapping]
    tied = not no_tp_report and not same_pairs
    if tied:  # another optimal assignment: same counts (checked above) and the same cost
        assert math.isclose(_cost(ours, n_matched), _cost(theirs, n_matched), abs_tol=1e-6), where
    if no_tp_report or _tp_pairs(ours) == _tp_pairs(theirs):  # the same tp pairs: the same scores
        for key in RATIOS:
            assert _same_float(getattr(ours, key), getattr(theirs, key)), (where, key, getattr(ours, key),
                                                                            getattr(theirs, key))
    if same_pairs:
        for a, (_, b) in zip(ours.matched_scores, theirs_overlapping, strict=True):
            assert _same_float(a, b), (where, "matched_scores", a, b)
    return tied


@pytest.mark.parametrize("criterion", CRITERIA)
def test_matching_same_as_stardist(criterion: str) -> None:
    ties = 0
    for index, (y_true, y_pred) in enumerate(PAIRS):
        ours = matching(y_true, y_pred, thresh=THRESHOLDS, criterion=criterion, report_matches=True)
        plain = matching(y_true, y_pred, thresh=THRESHOLDS, criterion=criterion)
        theirs = sd.matching(y_true, y_pred, thresh=THRESHOLDS, criterion=criterion, report_matches=True)
        for o, p, s in zip(ours, plain, theirs, strict=True):
            where = (index, criterion, o.thresh)
            assert all(getattr(p, k) == getattr(o, k) for k in SCALARS), where  # report_matches changes nothing
            ties += _compare_image(o, s, where)
        # a single threshold gives one result, not a tuple, on both sides
        one, one_sd = matching(y_true, y_pred, 0.5, criterion), sd.matching(y_true, y_pred, 0.5, criterion)
        assert all(getattr(one, k) == getattr(plain[4], k) for k in SCALARS)
        assert one.tp == one_sd.tp and _same_float(one.f1, one_sd.f1)
    assert ties <= len(PAIRS) * len(THRESHOLDS) // 20, f"{ties} tied assignments: too many to trust the comparison"


@pytest.mark.parametrize("criterion", CRITERIA)
def test_matching_scalars_at_low_thresholds(criterion: str) -> None:
    """At 0 every assigned pair is a tp (StarDist's definition), overlapping or not; 0.05 is nearly as loose."""
    for index, (y_true, y_pred) in enumerate(PAIRS):
        ours = matching(y_true, y_pred, thresh=(0.0, 0.05), criterion=criterion)
        theirs = sd.matching(y_true, y_pred, thresh=(0.0, 0.05), criterion=criterion)
        for o, s in zip(ours, theirs, strict=True):
            for key in ("criterion", "thresh", *COUNTS):
                assert getattr(o, key) == getattr(s, key), (index, o.thresh, key, getattr(o, key), getattr(s, key))
            for key in RATIOS:
                assert _same_float(getattr(o, key), getattr(s, key)), (index, o.thresh, key, getattr(o, key),
                                                                        getattr(s, key))


def _untied(criterion: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The pairs on which both sides pick the same assignment at every threshold (ties may change tp scores)."""
    keep = []
    for y_true, y_pred in PAIRS:
        ours = matching(y_true, y_pred, thresh=THRESHOLDS, criterion=criterion, report_matches=True)
        theirs = sd.matching(y_true, y_pred, thresh=THRESHOLDS, criterion=criterion, report_matches=True)
        if all(_tp_pairs(o) == _tp_pairs(s) or not o.tp for o, s in zip(ours, theirs, strict=True)):
            keep.append((y_true, y_pred))
    assert len(keep) >= 0.9 * len(PAIRS)
    return keep


@pytest.mark.parametrize("by_image", [False, True], ids=["pooled", "by-image"])
@pytest.mark.parametrize("criterion", CRITERIA)
def test_matching_dataset_same_as_stardist(criterion: str, by_image: bool) -> None:
    pairs = _untied(criterion)
    for start in range(0, len(pairs), 32):  # several data sets of different sizes
        ys_true, ys_pred = zip(*pairs[start: start + 32], strict=True)
        ours = matching_dataset(ys_true, ys_pred, thresh=THRESHOLDS, criterion=criterion, by_image=by_image)
        theirs = sd.matching_dataset(ys_true, ys_pred, thresh=THRESHOLDS, criterion=criterion, by_image=by_image,
                                     show_progress=False)
        for o, s in zip(ours, theirs, strict=True):
            where = (start, criterion, by_image, o.thresh)
            for key in ("criterion", "thresh", "by_image", *COUNTS):
                assert getattr(o, key) == getattr(s, key), (where, key, getattr(o, key), getattr(s, key))
            for key in RATIOS:
                assert _same_float(getattr(o, key), getattr(s, key)), (where, key, getattr(o, key), getattr(s, key))
    # one threshold, one image without objects
    empty = np.zeros((8, 8), np.uint16)
    o = matching_dataset([empty], [empty], 0.5, criterion, by_image)
    s = sd.matching_dataset([empty], [empty], 0.5, criterion, by_image, show_progress=False)
    assert all(getattr(o, k) == getattr(s, k) for k in (*SCALARS, "by_image"))


# ---------------------------------------------------------------------------------- known differences


def test_report_without_a_tp() -> None:
    y_true = np.zeros((3, 12), np.uint16)
    y_pred = np.zeros((3, 12), np.uint16)
    y_true[1, 0:10] = 1
    y_pred[1, 0:3] = 5  # IoU 0.3
    ours = matching(y_true, y_pred, thresh=0.5, report_matches=True)
    theirs = sd.matching(y_true, y_pred, thresh=0.5, report_matches=True)
    assert (ours.tp, theirs.tp) == (0, 0)
    assert ours.matched_pairs == tuple(tuple(map(int, p)) for p in theirs.matched_pairs) == ((1, 5),)


def test_threshold_not_exactly_representable() -> None:
    thresh = float(np.linspace(0.1, 0.9, 9)[6])
    assert thresh == 0.7000000000000001
    y_true = np.zeros((3, 12), np.uint16)
    y_pred = np.zeros((3, 12), np.uint16)
    y_true[1, 0:10] = 1
    y_pred[1, 0:7] = 5  # IoT exactly 0.7
    ours = matching(y_true, y_pred, thresh=thresh, criterion="iot")
    theirs = sd.matching(y_true, y_pred, thresh=thresh, criterion="iot")
    assert ours.tp == theirs.tp == 1

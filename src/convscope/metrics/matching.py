"""Instance matching metrics, compatible with StarDist's ``stardist/matching.py``.

Plain numpy + scipy, importable without torch. The definitions and numbers are those of StarDist's
``matching`` and ``matching_dataset`` (https://github.com/stardist/stardist, ``stardist/matching.py``,
BSD-3-Clause; Schmidt et al., MICCAI 2018); this is an independent implementation that scales to images
with thousands of objects.

Definitions
-----------
- A label image holds non-negative integers, 0 = background, every other value one object. Labels need not
  be sequential (they are ranked internally; reported pairs use the original labels).
- The **score** of a (true, predicted) object pair is ``criterion``: ``"iou"`` = intersection / union,
  ``"iot"`` = intersection / true area, ``"iop"`` = intersection / predicted area.
- Objects are matched one-to-one by the optimal assignment StarDist solves with
  ``scipy.optimize.linear_sum_assignment`` on the cost ``-(score >= thresh) - score / (2 * min(n_true, n_pred))``:
  first as many pairs with ``score >= thresh`` as possible, then, among those assignments, the largest total
  score (sub-threshold pairs included, as in StarDist). A matched pair with ``score >= thresh`` is a
  true positive (**tp**); ``fp = n_pred - tp``, ``fn = n_true - tp``.
- ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``, ``accuracy = tp / (tp + fp + fn)`` (the "AP" of
  the DSB2018 challenge and Cellpose), ``f1 = 2 tp / (2 tp + fp + fn)``; ``mean_matched_score`` = the mean score of
  the tp pairs, ``mean_true_score`` = their score sum / ``n_true``, ``panoptic_quality`` = their score sum /
  ``(tp + fp / 2 + fn / 2)`` (Kirillov et al., CVPR 2019, Eq. 1).

Conventions for empty images (StarDist's, never NaN)
----------------------------------------------------
- Every ratio is **0.0 when tp == 0**, whatever the denominator: an image without objects predicted without
  objects scores precision = recall = accuracy = f1 = panoptic_quality = 0.0 (not 1.0 as in
  :mod:`convscope.metrics.pixel`), with ``tp = fp = fn = 0``. A ratio is 1.0 only when it is earned
  (e.g. precision 1.0 = every prediction matched).
- Pooled over a data set (the default of :func:`matching_dataset`) such images add nothing to the counts and
  therefore do not change the result; averaged per image (``by_image=True``) they count as 0.0, as in StarDist.

Differences from StarDist
-------------------------
- Speed: the overlaps are counted with one ``bincount`` over the pixels (no per-object loop), the
  pairs that are each other's only candidate above the threshold are fixed (every optimal assignment contains
  them), and ``linear_sum_assignment`` runs per connected component of the remaining overlap graph, skipping
  components without a pair above the threshold. The optimum is StarDist's. Where two different assignments are
  exactly optimal (ties; about 1 in 8,000 random test cases with many overlaps) the two tie-breaks may differ;
  tp, fp, fn and precision, recall, accuracy, f1 cannot change; mean_matched_score, mean_true_score and
  panoptic_quality can.
- ``matched_pairs`` (``report_matches=True``) lists the assigned pairs that overlap; StarDist's dense
  assignment also lists arbitrary pairs without any overlap (score 0), which are left out here.
- StarDist fails (an assertion) on some images without background pixels (``"iot"``: y_true has none, ``"iop"``:
  y_pred has none, ``"iou"``: neither has); here those give the scores of the objects. Thresholds must lie in
  [0, 1].
- At ``thresh=0`` every assigned pair is a tp, overlapping or not (StarDist's definition); ``matched_tps`` then
  indexes the overlapping pairs only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "CRITERIA",
    "DEFAULT_THRESHOLDS",
    "TABLE_KEYS",
    "Matching",
    "evaluate_label_items",
    "evaluate_label_pairs",
    "matching",
    "matching_dataset",
    "matching_table",
    "tabulate_matchings",
    "threshold_key",
]

CRITERIA = ("iou", "iot", "iop")
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TABLE_KEYS = ("precision", "recall", "f1", "accuracy", "panoptic_quality", "tp", "fp", "fn", "mean_matched_score")
LABEL_SUFFIXES = (".tif", ".tiff", ".png")
_DENSE_BINS = 1 << 22  # count label pairs with bincount up to this many (true x pred) bins, else by sorting


@dataclass(frozen=True)
class Matching:
    """Matching statistics of one image (or of a data set) at one threshold.

    Attributes
    ----------
    criterion : str
        ``"iou"``, ``"iot"`` or ``"iop"``.
    thresh : float
        A pair is a true positive when its score is ``>= thresh``.
    fp, tp, fn : int
        False positives, true positives, false negatives (summed over images for a data set).
    precision, recall, accuracy, f1 : float
        In [0, 1]; 0.0 when ``tp == 0`` (see the module docstring).
    n_true, n_pred : int
        Number of true and predicted objects.
    mean_true_score, mean_matched_score, panoptic_quality : float
        Score sum of the tp pairs divided by ``n_true``, by ``tp``, by ``tp + fp/2 + fn/2`` (0.0 if that is 0).
    by_image : bool or None
        None for one image; for a data set whether ratios are per-image means (True) or pooled (False).
    matched_pairs : tuple of (int, int), or None
        With ``report_matches``: the assigned overlapping (true label, predicted label) pairs, in true-label
        order, including pairs below the threshold.
    matched_scores : tuple of float, or None
        The score of each matched pair.
    matched_tps : tuple of int, or None
        Indices into ``matched_pairs`` of the true positives.
    """

    criterion: str
    thresh: float
    fp: int
    tp: int
    fn: int
    precision: float
    recall: float
    accuracy: float
    f1: float
    n_true: int
    n_pred: int
    mean_true_score: float
    mean_matched_score: float
    panoptic_quality: float
    by_image: bool | None = None
    matched_pairs: tuple[tuple[int, int], ...] | None = None
    matched_scores: tuple[float, ...] | None = None
    matched_tps: tuple[int, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; ``by_image`` and the ``matched_*`` lists only when set."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "matched_pairs":
                value = [list(pair) for pair in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out


# ---------------------------------------------------------------------------------------------- overlaps


@dataclass(frozen=True)
class _Overlaps:
    """The overlapping object pairs of one (true, predicted) label image pair.

    ``rows``/``cols`` are 0-based object indices (objects ranked by label), sorted by (row, col);
    ``intersection`` their pixel counts; ``area_true``/``area_pred`` the object sizes (int64).
    """

    labels_true: np.ndarray
    labels_pred: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    intersection: np.ndarray
    area_true: np.ndarray
    area_pred: np.ndarray

    @property
    def n_true(self) -> int:
        return int(self.labels_true.size)

    @property
    def n_pred(self) -> int:
        return int(self.labels_pred.size)


def _as_label_image(y: ArrayLike, name: str) -> np.ndarray:
    """Validate a label image of non-negative integers (bools are one object); no copy."""
    arr = np.asarray(y)
    if arr.dtype == np.bool_:
        return arr.view(np.uint8)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a label image of non-negative integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise ValueError(f"{name} holds negative labels (min {arr.min()}); labels must be >= 0")
    return arr


def _relabel(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank the labels: 0 stays 0, the k-th smallest non-zero label becomes k.

    Returns the flat ranked image (intp, shape (y.size,)) and the original labels (shape (n,), dtype of y).
    """
    flat = y.reshape(-1)
    if not flat.size:
        return np.zeros(0, np.intp), np.zeros(0, y.dtype)
    top = int(flat.max())
    if top <= max(2 * flat.size, 1 << 16):  # a lookup table is cheaper than sorting
        idx = flat.astype(np.intp, copy=False)
        present = np.bincount(idx, minlength=top + 1).astype(bool)
        present[0] = False
        labels = np.flatnonzero(present)
        lut = np.zeros(top + 1, np.intp)
        lut[labels] = np.arange(1, labels.size + 1)
        return lut[idx], labels.astype(y.dtype)
    labels, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.intp)
    if labels[0] == 0:
        return inverse, labels[1:]
    return inverse + 1, labels


def _pair_counts(t: np.ndarray, p: np.ndarray, n_true: int, n_pred: int) -> tuple[np.ndarray, ...]:
    """Pixel counts of the overlapping pairs of two ranked images: rows, cols (0-based), counts (int64)."""
    if not (n_true and n_pred):
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    both = (t > 0) & (p > 0)
    codes = (t[both] - 1).astype(np.int64) * n_pred + (p[both] - 1)
    if n_true * n_pred <= max(_DENSE_BINS, codes.size):
        counts = np.bincount(codes, minlength=n_true * n_pred)
        codes = np.flatnonzero(counts)
        counts = counts[codes]
    else:
        codes, counts = np.unique(codes, return_counts=True)
    rows, cols = np.divmod(codes, n_pred)
    return rows, cols, counts.astype(np.int64)


def _overlaps(y_true: ArrayLike, y_pred: ArrayLike) -> _Overlaps:
    """Object sizes and pairwise intersections in O(pixels) (bincount), without a dense matrix."""
    yt, yp = _as_label_image(y_true, "y_true"), _as_label_image(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true {yt.shape} and y_pred {yp.shape} differ in shape")
    t, labels_true = _relabel(yt)
    p, labels_pred = _relabel(yp)
    rows, cols, inter = _pair_counts(t, p, labels_true.size, labels_pred.size)
    area_true = np.bincount(t, minlength=labels_true.size + 1)[1:].astype(np.int64)
    area_pred = np.bincount(p, minlength=labels_pred.size + 1)[1:].astype(np.int64)
    return _Overlaps(labels_true, labels_pred, rows, cols, inter, area_true, area_pred)


def _pair_scores(ov: _Overlaps, criterion: str) -> np.ndarray:
    """The criterion of every overlapping pair, in (0, 1], computed as StarDist does: divided in float64 and
    stored as float32 (held here in a float64 array, so that sums do not lose precision)."""
    if criterion == "iou":
        scores = ov.intersection / (ov.area_pred[ov.cols] + ov.area_true[ov.rows] - ov.intersection)
    elif criterion == "iot":
        scores = ov.intersection / ov.area_true[ov.rows]
    else:
        scores = ov.intersection / ov.area_pred[ov.cols]
    return scores.astype(np.float32).astype(np.float64)


def _float32(thresh: float) -> float:
    """The threshold as StarDist compares it with its float32 scores (0.7000000000000001 -> 0.699999988...)."""
    return float(np.float32(thresh))


# -------------------------------------------------------------------------------------------- assignment


def _fixed_pairs(rows: np.ndarray, cols: np.ndarray, above: np.ndarray, n_true: int, n_pred: int) -> np.ndarray:
    """Mask of the pairs above the threshold whose objects have no other pair above it.

    Every optimal assignment contains them: dropping one loses a true positive, which the tie-breaking term
    (< 1 in total) can never make up for.
    """
    degree_true = np.bincount(rows[above], minlength=n_true)
    degree_pred = np.bincount(cols[above], minlength=n_pred)
    return above & (degree_true[rows] == 1) & (degree_pred[cols] == 1)


def _solve_block(rows: np.ndarray, cols: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Indices of the pairs that ``linear_sum_assignment`` assigns within one connected component."""
    r_idx, r_inv = np.unique(rows, return_inverse=True)
    c_idx, c_inv = np.unique(cols, return_inverse=True)
    block = np.zeros((r_idx.size, c_idx.size))
    block[r_inv, c_inv] = costs
    pair = np.full(block.shape, -1, np.intp)
    pair[r_inv, c_inv] = np.arange(rows.size)
    chosen = pair[linear_sum_assignment(block)]
    return chosen[chosen >= 0]


def _components(rows: np.ndarray, cols: np.ndarray, n_true: int) -> np.ndarray:
    """The connected component of every pair in the bipartite graph of the given pairs."""
    nodes = n_true + int(cols.max()) + 1
    graph = coo_matrix((np.ones(rows.size), (rows, n_true + cols)), shape=(nodes, nodes))
    return connected_components(graph, directed=False)[1][rows]


def _solve_components(rows: np.ndarray, cols: np.ndarray, costs: np.ndarray, n_true: int,
                      needed: np.ndarray | None) -> np.ndarray:
    """Optimal assignment of the given pairs (all costs < 0), solved per connected component; pair indices.

    With ``needed`` (bool, one per pair), components without a needed pair are skipped.
    """
    if not rows.size:
        return np.zeros(0, np.intp)
    comp = _components(rows, cols, n_true)
    if needed is None:
        todo = np.arange(rows.size)
    else:
        wanted = np.zeros(int(comp.max()) + 1, bool)
        wanted[comp[needed]] = True
        todo = np.flatnonzero(wanted[comp])
    single = np.bincount(comp[todo])[comp[todo]] == 1  # a component with one pair: that pair is assigned
    chosen = [todo[single]]
    multi = todo[~single]
    order = multi[np.argsort(comp[multi], kind="stable")]
    for group in np.split(order, np.flatnonzero(np.diff(comp[order])) + 1) if order.size else ():
        chosen.append(group[_solve_block(rows[group], cols[group], costs[group])])
    return np.concatenate(chosen)


def _assign(ov: _Overlaps, scores: np.ndarray, thresh: float, report: bool) -> np.ndarray:
    """Indices (sorted by true object) of the overlapping pairs in StarDist's optimal assignment.

    Without ``report`` (and for ``thresh > 0``), components without a pair above the threshold are not solved:
    they hold no true positive.
    """
    n_matched = min(ov.n_true, ov.n_pred)
    # at thresh <= 0 every pair counts (a constant), so only the score term decides
    above = scores >= thresh if thresh > 0 else np.zeros(scores.size, bool)
    costs = -above.astype(float) - scores / (2 * n_matched)
    fixed = _fixed_pairs(ov.rows, ov.cols, above, ov.n_true, ov.n_pred)
    taken_true = np.zeros(ov.n_true, bool)
    taken_true[ov.rows[fixed]] = True
    taken_pred = np.zeros(ov.n_pred, bool)
    taken_pred[ov.cols[fixed]] = True
    rest = np.flatnonzero(~taken_true[ov.rows] & ~taken_pred[ov.cols])
    needed = None if report or thresh <= 0 else above[rest]
    solved = rest[_solve_components(ov.rows[rest], ov.cols[rest], costs[rest], ov.n_true, needed)]
    return np.sort(np.concatenate([np.flatnonzero(fixed), solved]))  # pairs are sorted by (row, col)


# ------------------------------------------------------------------------------------------------ stats


def _safe_divide(x: float, y: float) -> float:
    return float(x / y) if y > 0 else 0.0


def _ratios(tp: int, fp: int, fn: int, n_true: int, sum_score: float) -> dict[str, float]:
    """StarDist's ratios from counts and the score sum of the tp pairs; 0.0 whenever tp == 0."""
    if tp == 0:
        detection = {k: 0.0 for k in ("precision", "recall", "accuracy", "f1")}
    else:
        detection = {"precision": tp / (tp + fp), "recall": tp / (tp + fn), "accuracy": tp / (tp + fp + fn),
                     "f1": (2 * tp) / (2 * tp + fp + fn)}
    return {
        **detection,
        "mean_true_score": _safe_divide(sum_score, n_true),
        "mean_matched_score": _safe_divide(sum_score, tp),
        "panoptic_quality": _safe_divide(sum_score, tp + fp / 2 + fn / 2),
    }


def _single(ov: _Overlaps, scores: np.ndarray, thresh: float, criterion: str, report: bool) -> Matching:
    """Matching statistics of one image pair at one threshold."""
    n_matched = min(ov.n_true, ov.n_pred)
    t = _float32(thresh)
    # without a pair above the threshold there is no tp; StarDist still reports its whole assignment then
    trivial = n_matched == 0 or not (report or t <= 0 or bool(np.any(scores >= t)))
    pairs = np.zeros(0, np.intp) if trivial else _assign(ov, scores, t, report)
    matched = scores[pairs]
    is_tp = matched >= t
    tp = 0 if trivial else (n_matched if t <= 0 else int(np.count_nonzero(is_tp)))
    sum_score = float(np.sum(matched[is_tp])) if tp else 0.0
    fp, fn = ov.n_pred - tp, ov.n_true - tp
    extra: dict[str, Any] = {}
    if report:
        extra = {
            "matched_pairs": tuple(zip(ov.labels_true[ov.rows[pairs]].tolist(),
                                       ov.labels_pred[ov.cols[pairs]].tolist(), strict=True)),
            "matched_scores": tuple(matched.tolist()),
            "matched_tps": tuple(np.flatnonzero(is_tp).tolist()),
        }
    return Matching(criterion=criterion, thresh=thresh, fp=fp, tp=tp, fn=fn, n_true=ov.n_true, n_pred=ov.n_pred,
                    **_ratios(tp, fp, fn, ov.n_true, sum_score), **extra)


def _check_thresholds(thresh: float | Sequence[float]) -> tuple[tuple[float, ...], bool]:
    """Thresholds as floats in [0, 1], and whether a single number was given."""
    arr = np.asarray(thresh, dtype=np.float64)
    values = tuple(arr.reshape(-1).tolist())
    if not values:
        raise ValueError("thresh is an empty sequence; give at least one threshold")
    for t in values:
        if not (math.isfinite(t) and 0.0 <= t <= 1.0):
            raise ValueError(f"thresholds must lie in [0, 1], got {t} (e.g. 0.5, not 50)")
    return values, arr.ndim == 0


def _check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    return criterion


def _match_all(y_true: ArrayLike, y_pred: ArrayLike, thresholds: Sequence[float], criterion: str,
               report: bool = False) -> tuple[Matching, ...]:
    """Statistics at every threshold, sharing one overlap computation."""
    ov = _overlaps(y_true, y_pred)
    scores = _pair_scores(ov, criterion)
    return tuple(_single(ov, scores, t, criterion, report) for t in thresholds)


def matching(
    y_true: ArrayLike, y_pred: ArrayLike, thresh: float | Sequence[float] = 0.5, criterion: str = "iou",
    report_matches: bool = False,
) -> Matching | tuple[Matching, ...]:
    """Match the objects of a predicted label image to the true ones (StarDist's ``matching``).

    Parameters
    ----------
    y_true, y_pred : array_like of int (or bool), same shape, e.g. (H, W) or (Z, Y, X)
        Label images: 0 = background, any other non-negative value one object (need not be sequential).
    thresh : float or sequence of float
        In [0, 1]; a matched pair with ``score >= thresh`` is a true positive.
    criterion : {"iou", "iot", "iop"}
        Intersection over union, over the true object, or over the predicted object.
    report_matches : bool
        Also return the matched pairs, their scores and which are true positives.

    Returns
    -------
    Matching or tuple of Matching
        One result for a single ``thresh``, a tuple (same order) for a sequence.

    Raises
    ------
    ValueError
        Non-integer or negative labels, different shapes, an unknown criterion, a threshold outside [0, 1].

    Examples
    --------
    >>> y_true = np.zeros((100, 100), np.uint16)
    >>> y_true[10:20, 10:20] = 1
    >>> m = matching(y_true, np.roll(y_true, 5, axis=0))
    >>> m.tp, m.fp, m.fn, round(m.mean_true_score, 3)
    (0, 1, 1, 0.0)
    """
    thresholds, single = _check_thresholds(thresh)
    results = _match_all(y_true, y_pred, thresholds, _check_criterion(criterion), report=bool(report_matches))
    return results[0] if single else results


# --------------------------------------------------------------------------------------------- data sets


def _pool(stats: Sequence[Matching], by_image: bool) -> Matching:
    """Combine per-image results at one threshold as StarDist's ``matching_dataset`` does."""
    if not stats:
        raise ValueError("no images to match")
    tp, fp, fn = (sum(getattr(s, k) for s in stats) for k in ("tp", "fp", "fn"))
    n_true, n_pred = sum(s.n_true for s in stats), sum(s.n_pred for s in stats)
    if by_image:
        keys = ("precision", "recall", "accuracy", "f1", "mean_true_score", "mean_matched_score", "panoptic_quality")
        ratios = {k: _mean(getattr(s, k) for s in stats) for k in keys}
    else:
        sum_score = 0.0
        for s in stats:  # StarDist recovers the score sum of each image as mean_true_score * n_true
            sum_score = sum_score + s.mean_true_score * s.n_true
        ratios = _ratios(tp, fp, fn, n_true, sum_score)
    first = stats[0]
    return Matching(criterion=first.criterion, thresh=first.thresh, fp=fp, tp=tp, fn=fn, n_true=n_true,
                    n_pred=n_pred, by_image=bool(by_image), **ratios)


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    total = 0.0
    for v in items:  # sequential, as StarDist accumulates
        total = total + v
    return total / len(items)


def progress(items: Iterable[Any], total: int, show: bool, desc: str) -> Iterable[Any]:
    if not show:
        return items
    from tqdm import tqdm  # only when asked for: keeps this module numpy + scipy at import

    return tqdm(items, total=total, desc=desc)


def matching_dataset(
    ys_true: Sequence[ArrayLike], ys_pred: Sequence[ArrayLike], thresh: float | Sequence[float] = 0.5,
    criterion: str = "iou", by_image: bool = False, show_progress: bool = False,
) -> Matching | tuple[Matching, ...]:
    """Matching statistics of a data set (StarDist's ``matching_dataset``).

    Parameters
    ----------
    ys_true, ys_pred : sequence of array_like of int, each (H_i, W_i)
        True and predicted label images, pairwise of the same shape (images may differ in size).
    thresh : float or sequence of float
        In [0, 1].
    criterion : {"iou", "iot", "iop"}
    by_image : bool
        False (default): sum tp, fp, fn, n_true, n_pred and the tp score sums over the images, then compute
        the ratios (every object weighs the same). True: the mean of the per-image ratios (every image weighs the
        same; images without objects on either side count 0.0); counts are still summed.
    show_progress : bool
        A progress bar (tqdm) on stderr.

    Returns
    -------
    Matching or tuple of Matching
        ``by_image`` set; no ``matched_*`` fields.
    """
    thresholds, single = _check_thresholds(thresh)
    results = _dataset(ys_true, ys_pred, thresholds, _check_criterion(criterion), bool(by_image), show_progress)
    return results[0] if single else results


def _dataset(ys_true: Sequence[ArrayLike], ys_pred: Sequence[ArrayLike], thresholds: Sequence[float],
             criterion: str, by_image: bool, show_progress: bool) -> tuple[Matching, ...]:
    """One pooled (or per-image averaged) result per threshold."""
    if len(ys_true) != len(ys_pred):
        raise ValueError(f"ys_true and ys_pred differ in length: {len(ys_true)} vs {len(ys_pred)}")
    if not len(ys_true):
        raise ValueError("no images to match")
    pairs = progress(zip(ys_true, ys_pred, strict=True), len(ys_true), show_progress, "matching")
    per_image = [_match_all(t, p, thresholds, criterion) for t, p in pairs]
    return tuple(_pool([m[i] for m in per_image], by_image) for i in range(len(thresholds)))


def threshold_key(thresh: float) -> str:
    """The JSON key of a threshold: ``0.5 -> "0.5"``, ``0.55 -> "0.55"``, ``1.0 -> "1"``."""
    return f"{float(thresh):g}"


def tabulate_matchings(results: Iterable[Matching]) -> dict[str, dict[str, float | int]]:
    """``{threshold_key: {key: value for key in TABLE_KEYS}}`` from results at different thresholds."""
    table: dict[str, dict[str, float | int]] = {}
    for m in results:
        key = threshold_key(m.thresh)
        if key in table:
            raise ValueError(f"two results at threshold {key}")
        table[key] = {k: getattr(m, k) for k in TABLE_KEYS}
    return table


def matching_table(
    ys_true: Sequence[ArrayLike], ys_pred: Sequence[ArrayLike], thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *, criterion: str = "iou",
) -> dict[str, dict[str, float | int]]:
    """Pooled matching statistics at several thresholds, keyed for metrics.json.

    Parameters
    ----------
    ys_true, ys_pred : sequence of array_like of int, each (H_i, W_i)
        True and predicted label images.
    thresholds : sequence of float
        In [0, 1]; default 0.1, 0.2, ..., 0.9.
    criterion : {"iou", "iot", "iop"}

    Returns
    -------
    dict
        ``{"0.5": {"precision", "recall", "f1", "accuracy", "panoptic_quality", "tp", "fp", "fn",
        "mean_matched_score"}, ...}`` (pooled over the images).
    """
    values, _ = _check_thresholds(tuple(thresholds))
    return tabulate_matchings(_dataset(ys_true, ys_pred, values, _check_criterion(criterion), False, False))


# ------------------------------------------------------------------------------------------- evaluation


def evaluate_label_items(items: Iterable[tuple[str, ArrayLike, ArrayLike]],
                         thresholds: Sequence[float] = DEFAULT_THRESHOLDS, criterion: str = "iou",
                         per_image_thresholds: Sequence[float] = (0.5,)) -> dict[str, Any]:
    """Pooled table and per-image rows from (name, y_true, y_pred) triples, consumed one at a time (a
    generator keeps one pair in memory); the layout of :func:`evaluate_label_pairs`."""
    table_t, _ = _check_thresholds(tuple(thresholds))
    image_t, _ = _check_thresholds(tuple(per_image_thresholds))
    criterion = _check_criterion(criterion)
    everything = tuple(sorted(set(table_t) | set(image_t)))
    per_image: list[dict[str, Any]] = []
    stats: list[tuple[Matching, ...]] = []
    for name, y_true, y_pred in items:
        results = dict(zip(everything, _match_all(y_true, y_pred, everything, criterion), strict=True))
        stats.append(tuple(results[t] for t in table_t))
        row: dict[str, Any] = {"name": name, "n_true": results[everything[0]].n_true,
                               "n_pred": results[everything[0]].n_pred}
        for t in image_t:
            row.update({f"{k}@{threshold_key(t)}": getattr(results[t], k) for k in TABLE_KEYS})
        per_image.append(row)
    if not stats:
        raise ValueError("no images to evaluate")
    pooled = [_pool([s[i] for s in stats], by_image=False) for i in range(len(table_t))]
    return {"criterion": criterion, "n_images": len(stats), "n_true": pooled[0].n_true,
            "n_pred": pooled[0].n_pred, "matching": tabulate_matchings(pooled), "per_image": per_image}


def evaluate_label_pairs(
    ys_true: Sequence[ArrayLike], ys_pred: Sequence[ArrayLike], *, names: Sequence[str] | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS, criterion: str = "iou",
    per_image_thresholds: Sequence[float] = (0.5,), show_progress: bool = False,
) -> dict[str, Any]:
    """Pooled matching table and per-image scores of label images in memory (metrics.json layout).

    Parameters
    ----------
    ys_true, ys_pred : sequence of array_like of int, each (H_i, W_i)
        True and predicted label images, pairwise of the same shape.
    names : sequence of str, optional
        One per image; default ``"0"``, ``"1"``, ...
    thresholds : sequence of float
        Thresholds of the pooled table.
    criterion : {"iou", "iot", "iop"}
    per_image_thresholds : sequence of float
        Thresholds reported per image (keys ``"f1@0.5"`` etc.).
    show_progress : bool
        A progress bar (tqdm) on stderr.

    Returns
    -------
    dict
        ``{"criterion", "n_images", "n_true", "n_pred", "matching": {"0.5": {...}, ...},
        "per_image": [{"name", "n_true", "n_pred", "precision@0.5", "recall@0.5", "f1@0.5", "accuracy@0.5",
        "panoptic_quality@0.5", "tp@0.5", "fp@0.5", "fn@0.5", "mean_matched_score@0.5"}, ...]}``.
    """
    if len(ys_true) != len(ys_pred):
        raise ValueError(f"ys_true and ys_pred differ in length: {len(ys_true)} vs {len(ys_pred)}")
    names = [str(i) for i in range(len(ys_true))] if names is None else [str(n) for n in names]
    if len(names) != len(ys_true):
        raise ValueError(f"{len(names)} names for {len(ys_true)} images")
    items = progress(zip(names, ys_true, ys_pred, strict=True), len(names), show_progress, "matching")
    return evaluate_label_items(items, thresholds, criterion, per_image_thresholds)


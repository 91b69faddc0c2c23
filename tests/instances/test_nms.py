"""Candidates, polygon NMS (intersection over the smaller area), drawing polygons, instances from a prediction."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.instances import (
    StarPolygons,
    candidates,
    edt_prob,
    instances_from_prediction,
    non_maximum_suppression,
    polygon_nms,
    polygons_from_dist,
    polygons_to_label,
    star_dist,
)
from convscope.instances._polygons import crossing_overlaps, polygon_areas, rasterize_polygons, row_crossings
from convscope.instances.nms import _geometry, _suppressed_by
from convscope.metrics.matching import matching


def disc(shape: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    rr, cc = np.indices(shape)
    return (rr - center[0]) ** 2 + (cc - center[1]) ** 2 <= radius**2


def scene() -> np.ndarray:
    """Discs and an ellipse: two touching, one cut by the border, one tiny."""
    labels = np.zeros((64, 80), np.int32)
    labels[disc(labels.shape, (20, 20), 8)] = 1
    labels[disc(labels.shape, (20, 37), 8.5)] = 2  # touches disc 1
    labels[disc(labels.shape, (50, 3), 7)] = 3  # cut by the left border
    labels[disc(labels.shape, (50, 60), 2)] = 4  # tiny
    rr, cc = np.indices(labels.shape)
    labels[((rr - 45) / 5.0) ** 2 + ((cc - 32) / 11.0) ** 2 <= 1] = 5
    return labels


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def square(half: float) -> np.ndarray:
    """8 ray distances of an axis-aligned square of half-side ``half`` around its centre (edge midpoints, corners)."""
    phi = 2 * np.pi * np.arange(8) / 8
    return half / np.maximum(np.abs(np.sin(phi)), np.abs(np.cos(phi)))


def test_polygons_to_label_reproduces_discs() -> None:
    labels = scene()
    dist = star_dist(labels, 32)
    centres = np.array([[20, 20], [20, 37], [50, 3], [50, 60], [45, 32]])
    coords = polygons_from_dist(dist[centres[:, 0], centres[:, 1]], centres)
    drawn = polygons_to_label(coords, None, labels.shape)
    assert drawn.dtype == np.uint32 and drawn.shape == labels.shape
    for value in range(1, 6):
        assert iou(drawn == value, labels == value) > 0.9


def test_rasterize_square_and_shared_edges() -> None:
    # a 3 x 4 pixel rectangle with edges on pixel borders, and its right neighbour sharing an edge
    left = np.array([[[0.5, 0.5, 3.5, 3.5], [0.5, 4.5, 4.5, 0.5]]])
    right = left + np.array([0.0, 4.0])[None, :, None]
    ids, rows, cols = rasterize_polygons(np.concatenate([left, right]), (10, 10))
    assert (ids == 0).sum() == 12 and (ids == 1).sum() == 12
    pixels = set(zip(rows.tolist(), cols.tolist(), strict=True))
    assert len(pixels) == 24  # no pixel shared
    assert polygon_areas(left)[0] == pytest.approx(12)
    assert rasterize_polygons(left - 10, (10, 10))[0].size == 0  # clipped away


def test_higher_score_wins_overlaps() -> None:
    a = polygons_from_dist(square(5)[None], [[10, 10]])
    b = polygons_from_dist(square(5)[None], [[10, 14]])
    coords = np.concatenate([a, b])
    both = polygons_to_label(coords, [0.3, 0.9], (20, 24))
    assert both[10, 12] == 2 and both[10, 7] == 1 and both[10, 17] == 2
    swapped = polygons_to_label(coords, [0.9, 0.3], (20, 24))
    assert swapped[10, 12] == 1 and swapped[10, 17] == 2
    assert polygons_to_label(coords, [0.5, 0.5], (20, 24))[10, 12] == 2  # ties: the later polygon wins


def test_polygons_to_label_dtype_and_empty() -> None:
    assert polygons_to_label(np.zeros((0, 2, 8)), None, (4, 5)).shape == (4, 5)
    coords = polygons_from_dist(np.full((1, 8), 3.0), [[5, 5]])
    assert polygons_to_label(coords, None, (10, 10), dtype=np.uint16).dtype == np.uint16
    with pytest.raises(ValueError, match="scores"):
        polygons_to_label(coords, [1.0, 2.0], (10, 10))


def test_crossing_overlaps_match_a_fine_raster() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        dist = rng.uniform(3, 9, (2, 32))
        centres = np.array([[20.0, 20.0], [20.0, 20.0]]) + rng.uniform(-6, 6, (2, 2))
        coords = polygons_from_dist(dist, centres).astype(np.float64)
        spacing = 1 / 16
        edges = np.stack([coords[:, 0], coords[:, 1], np.roll(coords[:, 0], -1, 1), np.roll(coords[:, 1], -1, 1)])
        ids, rows, x, entering = row_crossings(edges, np.full(2, -1.0), spacing)
        one = (ids[ids == 0], rows[ids == 0], x[ids == 0], entering[ids == 0])
        both = (ids, rows, x, entering)
        measured = crossing_overlaps(one, both, 2) * spacing
        fine, scale = 16, 16**2
        pid, rr, cc = rasterize_polygons(coords * fine)
        sets = [set(zip(rr[pid == k].tolist(), cc[pid == k].tolist(), strict=True)) for k in range(2)]
        area = polygon_areas(coords)
        assert measured[0] == pytest.approx(area[0], rel=2e-3)  # overlap with itself = its area
        assert measured[1] == pytest.approx(len(sets[0] & sets[1]) / scale, abs=0.01 * area.min())


def test_nms_removes_a_duplicate_and_keeps_touching_objects() -> None:
    r = np.full(32, 8.0)
    dist = np.stack([r, r * 0.98, r])
    points = np.array([[20, 20], [21, 20], [20, 36]])  # 0 and 1 duplicates; 2 touches 0
    keep = polygon_nms(dist, points, np.array([0.9, 0.8, 0.7]), nms_thresh=0.4)
    assert keep.tolist() == [True, False, True]
    keep = polygon_nms(dist, points, np.array([0.7, 0.8, 0.9]), nms_thresh=0.4)
    assert keep.tolist() == [False, True, True]


def test_nms_overlap_is_over_the_smaller_area() -> None:
    big, small = np.full(32, 12.0), np.full(32, 3.0)
    keep = polygon_nms(np.stack([big, small]), np.array([[20, 20], [22, 20]]), np.array([0.9, 0.5]))
    assert keep.tolist() == [True, False]  # small polygon inside the big one: overlap 1 over the smaller area
    # two squares overlapping by half of each: overlap 0.5
    dist = np.stack([square(5), square(5)])
    points = np.array([[10, 10], [10, 15]])
    assert polygon_nms(dist, points, np.array([0.9, 0.8]), nms_thresh=0.4).tolist() == [True, False]
    assert polygon_nms(dist, points, np.array([0.9, 0.8]), nms_thresh=0.6).tolist() == [True, True]


def naive_nms(dist: np.ndarray, points: np.ndarray, scores: np.ndarray, thresh: float) -> np.ndarray:
    """The greedy loop without neighbour search, over all pairs."""
    order = np.argsort(-scores, kind="stable")
    geo = _geometry(dist[order], points[order])
    alive = np.ones(len(order), bool)
    for i in range(len(order)):
        if alive[i]:
            later = np.flatnonzero(alive[i + 1 :]) + i + 1
            alive[later[_suppressed_by(geo, i, later, thresh)]] = False
    keep = np.zeros(len(order), bool)
    keep[order] = alive
    return keep


@pytest.mark.parametrize("thresh", [0.1, 0.4, 0.7])
def test_nms_equals_naive_greedy(thresh: float) -> None:
    rng = np.random.default_rng(1)
    n = 150
    dist = rng.uniform(2, 10, (n, 16)) * rng.uniform(0.5, 1.5, (n, 1))
    points = rng.uniform(0, 100, (n, 2))
    scores = rng.uniform(0, 1, n)
    keep = polygon_nms(dist, points, scores, nms_thresh=thresh)
    np.testing.assert_array_equal(keep, naive_nms(dist, points, scores, thresh))
    assert 0 < keep.sum() < n


def test_degenerate_polygons_are_kept_and_suppress_nothing() -> None:
    dist = np.stack([np.zeros(8), np.full(8, 4.0)])
    keep = polygon_nms(dist, np.array([[10, 10], [10, 10]]), np.array([0.9, 0.8]))
    assert keep.tolist() == [True, True]  # as StarDist: zero area, zero overlap


def test_candidates_threshold_border_grid_and_order() -> None:
    prob = np.zeros((10, 12), np.float32)
    prob[5, 6], prob[4, 4], prob[1, 5], prob[7, 8] = 0.9, 0.6, 0.95, 0.5
    dist = np.ones((10, 12, 8), np.float32)
    dist[4, 4] = -1  # negative distances count as 0
    c = candidates(prob, dist, prob_thresh=0.5, grid=(2, 2), border=2)
    assert isinstance(c, StarPolygons) and len(c) == 2
    assert c.points.tolist() == [[10, 12], [8, 8]]  # full-resolution centres, by descending score
    assert c.scores.tolist() == pytest.approx([0.9, 0.6])
    assert c.dist[1].max() == 0
    assert len(candidates(prob, dist, border=0)) == 3
    with pytest.raises(ValueError, match="prob"):
        candidates(prob, dist[:5])


@pytest.mark.parametrize("grid", [(1, 1), (2, 2)])
def test_instances_from_perfect_prediction(grid: tuple[int, int]) -> None:
    labels = scene()
    prob = edt_prob(labels)[:: grid[0], :: grid[1]]
    dist = star_dist(labels, 32, grid=grid)
    found, polygons = instances_from_prediction(prob, dist, grid=grid)
    assert found.dtype == np.uint32 and found.shape == labels.shape
    assert len(polygons) == 5 and np.all(np.diff(polygons.scores) <= 0)
    result = matching(labels, found, thresh=0.7)
    assert result.tp == 5 and result.fp == 0 and result.fn == 0
    kept = non_maximum_suppression(prob, dist, grid=grid)
    np.testing.assert_array_equal(kept.points, polygons.points)


def test_instances_from_an_empty_prediction() -> None:
    found, polygons = instances_from_prediction(np.zeros((8, 8)), np.zeros((8, 8, 16)), shape=(16, 15), grid=2)
    assert found.shape == (16, 15) and not found.any() and len(polygons) == 0
    assert polygons.coord.shape == (0, 2, 16)

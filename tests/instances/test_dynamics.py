"""Flow dynamics: the speed-ups change nothing (settled points, sparse seed growth, lookup tables), Omnipose's
grouping keeps touching rods apart and long curved rods whole."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.instances.dynamics import (
    cluster_endpoints,
    compute_masks,
    fill_holes_and_remove_small,
    follow_flows,
    group_endpoints,
    omnipose_n_iter,
    relabel_sequential,
)
from convscope.instances.flows import cellpose_flows, omnipose_flows
from convscope.metrics import matching


def _capsule(shape: tuple[int, int], line: np.ndarray, radius: float) -> np.ndarray:
    """(H, W) bool: pixels within ``radius`` of the centre line ``line`` (K, 2) (row, col)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.hypot(yy[..., None] - line[:, 0], xx[..., None] - line[:, 1]).min(axis=-1) <= radius


def _segment(p0: tuple[float, float], p1: tuple[float, float], n: int = 200) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) * np.asarray(p0, float) + t * np.asarray(p1, float)


def _arc(centre: tuple[float, float], radius: float, start: float, stop: float, n: int = 300) -> np.ndarray:
    a = np.linspace(start, stop, n)
    return np.stack([centre[0] + radius * np.sin(a), centre[1] + radius * np.cos(a)], axis=1)


def _omnipose_masks(labels: np.ndarray) -> np.ndarray:
    flows, dist = omnipose_flows(labels)
    return compute_masks(flows, (labels > 0).astype(np.float32), variant="omnipose", dist=dist)


@pytest.mark.parametrize("width", [6, 8, 12])
@pytest.mark.parametrize("tilt", [0, 5])
def test_omnipose_keeps_two_touching_parallel_rods_apart(width: int, tilt: int) -> None:
    labels = np.zeros((60, 100), np.int64)
    labels[_capsule(labels.shape, _segment((18, 15), (18 + tilt, 85)), width / 2)] = 1
    labels[_capsule(labels.shape, _segment((18 + width, 15), (18 + width + tilt, 85)), width / 2) & (labels == 0)] = 2
    assert ndimage.label(labels > 0)[1] == 1  # the two rods touch along their length
    pred = _omnipose_masks(labels)
    assert pred.max() == 2
    assert matching(labels, pred, thresh=0.9).accuracy == 1.0


def test_omnipose_keeps_rods_touching_end_to_end_apart() -> None:
    labels = np.zeros((40, 120), np.int64)
    labels[_capsule(labels.shape, _segment((20, 10), (20, 55)), 4)] = 1
    labels[_capsule(labels.shape, _segment((20, 63), (20, 110)), 4) & (labels == 0)] = 2
    pred = _omnipose_masks(labels)
    assert pred.max() == 2 and matching(labels, pred, thresh=0.9).accuracy == 1.0


@pytest.mark.parametrize("width", [6, 10])
def test_omnipose_keeps_a_long_curved_rod_whole(width: int) -> None:
    """An S-shaped cell about 190 px long: its medial axis is one cluster of end points."""
    labels = np.zeros((100, 190), np.int64)
    line = np.concatenate([_arc((50, 50), 30, -np.pi, 0), _arc((50, 110), 30, np.pi, 0)])
    labels[_capsule(labels.shape, line, width / 2)] = 1
    pred = _omnipose_masks(labels)
    assert pred.max() == 1
    assert matching(labels, pred, thresh=0.9).accuracy == 1.0


def _nuclei_and_noisy_flows(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (H, W), their Cellpose flows perturbed by smooth noise (2, H, W), and the object mask."""
    labels = make_synthetic_nuclei(1, size=(192, 192), density=0.35, seed=seed)[1][0]
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((2, 192, 192)), (0, 1.5, 1.5))
    flows = cellpose_flows(labels) + 0.3 * noise / noise.std()
    return labels, flows.astype(np.float32), labels > 0


def _partition(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    labels = np.zeros(mask.shape, np.int64)
    labels[mask] = ids
    return relabel_sequential(labels)


@pytest.mark.parametrize("noisy", [False, True], ids=["exact", "noisy"])
def test_settled_points_stop_without_changing_the_objects(noisy: bool) -> None:
    """Freezing points that oscillate in a sink gives the labels of all 200 steps for every point."""
    labels, flows, mask = _nuclei_and_noisy_flows()
    if not noisy:
        flows = cellpose_flows(labels)
    full = follow_flows(flows * mask, mask, n_iter=200, settle=0)
    fast = follow_flows(flows * mask, mask, n_iter=200)
    moved_apart = np.hypot(*(full - fast).T) > 1
    assert moved_apart.mean() < 1e-3
    a = _partition(group_endpoints(full, mask.shape), mask)
    b = _partition(group_endpoints(fast, mask.shape), mask)
    assert matching(a, b, thresh=0.9).accuracy == 1.0


def _group_endpoints_dense(ends: np.ndarray, shape: tuple[int, int], min_count: int = 10) -> np.ndarray:
    """The dense formulation (as Cellpose's ``get_masks``): whole-image maximum filter and grey dilations."""
    h, w = shape
    r = np.clip(np.rint(ends[:, 0]).astype(np.int64), 0, h - 1)
    c = np.clip(np.rint(ends[:, 1]).astype(np.int64), 0, w - 1)
    counts = np.bincount(r * w + c, minlength=h * w).reshape(h, w)
    peaks = (counts >= ndimage.maximum_filter(counts, size=5)) & (counts > min_count)
    seeds, _ = ndimage.label(peaks, structure=np.ones((3, 3)))
    for _ in range(5):
        seeds = np.where((seeds == 0) & (counts > 2), ndimage.grey_dilation(seeds, size=(3, 3)), seeds)
    return seeds[r, c]


def test_sparse_seed_growth_equals_the_dense_one() -> None:
    _, flows, mask = _nuclei_and_noisy_flows(seed=5)
    ends = follow_flows(flows * mask, mask, n_iter=200)
    np.testing.assert_array_equal(group_endpoints(ends, mask.shape), _group_endpoints_dense(ends, mask.shape))
    # end points piled against the image border
    border = np.array([[0, 0]] * 12 + [[0.4, 1.2]] * 5 + [[191, 191]] * 20 + [[190.6, 189.9]] * 3, np.float32)
    np.testing.assert_array_equal(group_endpoints(border, mask.shape), _group_endpoints_dense(border, mask.shape))


def test_follow_flows_stops_where_the_flow_vanishes() -> None:
    mask = np.ones((10, 30), bool)
    flows = np.zeros((2, 10, 30), np.float32)
    flows[1, :, :20] = 1.0  # rightwards up to column 19, no flow from column 20 on
    flows[1, :, 20:] = 0.2
    ends = follow_flows(flows, mask, n_iter=40, stop_below=0.5)
    start = np.nonzero(mask)[1]
    np.testing.assert_allclose(ends[start < 20, 1], 20.0, atol=1e-5)  # stopped on arrival
    np.testing.assert_allclose(ends[start >= 20, 1], start[start >= 20])  # never moved
    # without a stop, slow points (0.2 px per step: no sink) are not taken for settled and reach the border
    np.testing.assert_allclose(follow_flows(flows, mask, n_iter=80)[:, 1], 29.0)


def test_cluster_endpoints_joins_a_dotted_axis_and_keeps_axes_apart() -> None:
    axis = [(10.0, float(c)) for c in range(5, 60, 3) for _ in range(4)]  # every third bin: gaps of two bins
    other = [(16.0, float(c)) for c in range(5, 60) for _ in range(3)]  # 6 px away
    ends = np.array(axis + other + [(13.0, 30.0)], np.float32)  # a lone point between them
    ids = cluster_endpoints(ends, (30, 70))
    assert len(set(ids[: len(axis)])) == 1 and len(set(ids[len(axis) : -1])) == 1
    assert ids[0] != ids[len(axis)] and 0 not in ids[:-1]


def test_fill_holes_and_remove_small() -> None:
    labels = np.zeros((40, 50), np.int64)
    labels[5:25, 5:25] = 4
    labels[10:15, 10:15] = 0  # a hole
    labels[17:21, 17:21] = 9  # an object inside a hole of object 4
    labels[16:22, 16:22][labels[16:22, 16:22] == 4] = 0  # ... with a ring of background around it
    labels[30:38, 30:45] = 2
    labels[33, 35] = 0
    labels[0, 49] = 7  # too small
    labels[39, 0:5] = 3  # cut by the border, keeps its open notch
    labels[38, 1:4] = 3
    out = fill_holes_and_remove_small(labels, min_size=8)
    assert out.dtype == np.uint32
    expected = labels.copy()
    expected[10:15, 10:15] = 4
    expected[16:22, 16:22][labels[16:22, 16:22] == 0] = 4
    expected[33, 35] = 2
    expected[0, 49] = 0
    np.testing.assert_array_equal(out, relabel_sequential(expected))
    assert out.max() == 4  # 2, 3, 4, 9 -> 1..4


def test_relabel_sequential_and_n_iter() -> None:
    labels = np.array([[0, 7, 7], [3, 0, 12]], np.int64)
    np.testing.assert_array_equal(relabel_sequential(labels), [[0, 2, 2], [1, 0, 3]])
    assert omnipose_n_iter(np.array([[0.0, 4.5]])) == 7  # ceil(1.16 * 4.5) + 1


def test_compute_masks_options() -> None:
    labels = np.zeros((40, 40), np.int64)
    labels[5:15, 5:30] = 1
    flows, dist = omnipose_flows(labels)
    prob = (labels > 0).astype(np.float32)
    with pytest.raises(ValueError, match="variant"):
        compute_masks(flows, prob, variant="stardist")  # type: ignore[arg-type]
    assert compute_masks(flows, np.zeros_like(prob), variant="omnipose").max() == 0
    without_dist = compute_masks(flows, prob, variant="omnipose")  # n_iter from the mask's distance transform
    np.testing.assert_array_equal(without_dist, compute_masks(flows, prob, variant="omnipose", dist=dist))
    np.testing.assert_array_equal(without_dist, labels)

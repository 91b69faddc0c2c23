"""Star-convex geometry: star_dist (StarDist's c_star_dist), edt_prob, polygons, fidelity."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from convscope.instances import (
    StarConvexityWarning,
    edt_prob,
    fidelity,
    polygons_from_dist,
    star_dist,
    star_dist_at,
)


def disc(shape: tuple[int, int], center: tuple[float, float], radius: float) -> np.ndarray:
    rr, cc = np.indices(shape)
    return (rr - center[0]) ** 2 + (cc - center[1]) ** 2 <= radius**2


def random_labels(seed: int, shape: tuple[int, int] = (41, 53), n: int = 14) -> np.ndarray:
    """Touching and overlapping ellipses with repeated, non-sequential ids, some cut by the border."""
    rng = np.random.default_rng(seed)
    rr, cc = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    for _ in range(n):
        r, c = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        a, b = rng.uniform(1, 8, 2)
        t = rng.uniform(0, np.pi)
        u = ((rr - r) * np.cos(t) + (cc - c) * np.sin(t)) / a
        v = (-(rr - r) * np.sin(t) + (cc - c) * np.cos(t)) / b
        labels[u * u + v * v <= 1] = rng.integers(1, 40)
    return labels


def c_star_dist_literal(labels: np.ndarray, n_rays: int) -> np.ndarray:
    """A literal scalar port of StarDist's c_star_dist (stardist/lib/stardist2d.cpp), float32 arithmetic."""
    h, w = labels.shape
    out = np.zeros((h, w, n_rays), np.float32)
    st = np.float32(2 * np.pi / n_rays)
    for i in range(h):
        for j in range(w):
            value = labels[i, j]
            if value == 0:
                continue
            for k in range(n_rays):
                phi = np.float32(k) * st
                dy, dx = np.float32(np.cos(np.float64(phi))), np.float32(np.sin(np.float64(phi)))
                x = y = np.float32(0)
                while True:
                    x, y = np.float32(x + dx), np.float32(y + dy)
                    ii, jj = int(np.rint(np.float32(i) + x)), int(np.rint(np.float32(j) + y))
                    if ii < 0 or ii >= h or jj < 0 or jj >= w or labels[ii, jj] != value:
                        t = np.float32(0.5) / max(abs(dx), abs(dy))
                        x, y = np.float32(x + (t - 1) * dx), np.float32(y + (t - 1) * dy)
                        out[i, j, k] = np.sqrt(x * x + y * y)
                        break
    return out


@pytest.mark.parametrize("radius", [5.3, 8.3, 10.5, 15.7])
def test_disc_distances_equal_radius(radius: float) -> None:
    labels = disc((81, 81), (40, 40), radius).astype(np.uint16)
    d = star_dist(labels, 32)[40, 40]
    # the digital disc's edge is within a pixel of the circle in every direction
    assert np.all(np.abs(d - radius) <= 1.01)
    assert abs(d.mean() - radius) < 0.3


def test_square_axes_and_diagonals() -> None:
    labels = np.zeros((61, 61), np.int32)
    labels[20:41, 20:41] = 1  # 21 x 21 pixels around (30, 30): edges at +-10.5
    d = star_dist(labels, 8)[30, 30]
    np.testing.assert_allclose(d[0::2], 10.5, atol=1e-5)
    # diagonal: exit at step 15 (15 / sqrt 2 = 10.6 rounds outside), pulled back by 1 - 0.5 sqrt 2 steps
    s = np.float32(np.sin(np.pi / 4))
    np.testing.assert_allclose(d[1::2], np.sqrt(2) * (15 * s + (0.5 / s - 1) * s), atol=1e-4)
    assert np.all(np.abs(d[1::2] - 10.5 * np.sqrt(2)) < 0.2)


def test_background_is_zero_and_objects_positive() -> None:
    labels = random_labels(0)
    d = star_dist(labels, 16)
    assert d.shape == (*labels.shape, 16) and d.dtype == np.float32
    assert np.all(d[labels == 0] == 0)
    assert np.all(d[labels > 0] >= 0.5)


def test_tiny_object() -> None:
    labels = np.zeros((5, 5), np.int32)
    labels[2, 2] = 3
    d = star_dist(labels, 8)[2, 2]
    np.testing.assert_allclose(d[0::2], 0.5)
    np.testing.assert_allclose(d[1::2], np.sqrt(0.5), atol=1e-6)


def test_border_objects_stop_at_the_image_edge() -> None:
    labels = np.zeros((20, 20), np.int32)
    labels[5:16, 0:10] = 1  # cut by the left border
    d = star_dist(labels, 4)  # rays 0, 90, 180, 270 degrees: +col, +row, -col, -row
    assert d[10, 3, 2] == pytest.approx(3.5)  # 3 pixels to the edge, then half a pixel
    assert d[10, 3, 0] == pytest.approx(6.5)
    full = np.ones((7, 9), np.int32)
    np.testing.assert_allclose(star_dist(full, 4)[3, 4], [4.5, 3.5, 4.5, 3.5])


def test_touching_objects_stop_at_the_label_change() -> None:
    labels = np.zeros((10, 20), np.int32)
    labels[2:8, 2:10] = 1
    labels[2:8, 10:18] = 2
    d = star_dist(labels, 4)
    assert d[5, 9, 0] == pytest.approx(0.5)
    assert d[5, 10, 2] == pytest.approx(0.5)
    assert d[5, 10, 0] == pytest.approx(7.5)


@pytest.mark.parametrize("n_rays", [6, 8, 12])
def test_equals_literal_stardist_port(n_rays: int) -> None:
    labels = random_labels(1, shape=(17, 19), n=6)
    np.testing.assert_array_equal(star_dist(labels, n_rays), c_star_dist_literal(labels, n_rays))


@pytest.mark.parametrize("n_rays", [8, 12, 32])
@pytest.mark.parametrize("grid", [(1, 1), (2, 2), (1, 2), (4, 1)])
def test_vectorised_walk_equals_pointwise_walk(n_rays: int, grid: tuple[int, int]) -> None:
    labels = random_labels(2)
    d = star_dist(labels, n_rays, grid=grid)
    rows, cols = np.arange(0, labels.shape[0], grid[0]), np.arange(0, labels.shape[1], grid[1])
    points = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2)
    np.testing.assert_array_equal(d, star_dist_at(labels, points, n_rays).reshape(d.shape))
    np.testing.assert_array_equal(d, star_dist(labels, n_rays)[:: grid[0], :: grid[1]])


def test_label_values_do_not_matter() -> None:
    labels = random_labels(3)
    huge = np.where(labels > 0, labels.astype(np.uint64) * 2**40 + 7, 0)
    np.testing.assert_array_equal(star_dist(huge, 16), star_dist(labels, 16))
    np.testing.assert_array_equal(edt_prob(huge), edt_prob(labels))


def test_empty_and_invalid_labels() -> None:
    assert not star_dist(np.zeros((6, 7), np.uint8), 8).any()
    with pytest.raises(ValueError, match="2D"):
        star_dist(np.zeros((2, 3, 4), np.int32))
    with pytest.raises(ValueError, match="integer"):
        star_dist(np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="non-negative"):
        star_dist(-np.ones((3, 3), np.int32))
    with pytest.raises(ValueError, match="n_rays"):
        star_dist(np.zeros((3, 3), np.int32), 2)
    with pytest.raises(ValueError, match="grid"):
        star_dist(np.zeros((3, 3), np.int32), grid=(0, 1))


def test_edt_prob_matches_per_object_distance_transform() -> None:
    labels = random_labels(4)
    prob = edt_prob(labels)
    assert prob.dtype == np.float32 and prob.shape == labels.shape
    expected = np.zeros(labels.shape)
    for value in np.unique(labels[labels > 0]):
        mask = labels == value
        edt = ndimage.distance_transform_edt(mask)[mask]
        expected[mask] = edt / edt.max()
    np.testing.assert_allclose(prob, expected, atol=1e-6)


def test_edt_prob_peaks_at_the_centre_of_each_object() -> None:
    labels = np.zeros((40, 60), np.int32)
    labels[disc(labels.shape, (20, 15), 8)] = 1
    labels[disc(labels.shape, (20, 40), 10)] = 2
    prob = edt_prob(labels)
    assert prob[labels == 0].max() == 0
    for value, centre in [(1, (20, 15)), (2, (20, 40))]:
        assert prob[labels == value].max() == pytest.approx(1, abs=1e-6)
        assert prob[centre] == pytest.approx(1, abs=1e-6)
    assert edt_prob(np.full((3, 4), 5, np.int32)).min() == 1  # one object fills the image


def test_polygons_from_dist() -> None:
    dist = np.array([[1.0, 2.0, 3.0, 4.0]])
    coord = polygons_from_dist(dist, [[10, 20]])
    assert coord.shape == (1, 2, 4) and coord.dtype == np.float32
    np.testing.assert_allclose(coord[0, 0], [10, 12, 10, 6], atol=1e-5)  # rows: + d sin(phi)
    np.testing.assert_allclose(coord[0, 1], [21, 20, 17, 20], atol=1e-5)  # cols: + d cos(phi)


def c_shape(shape: tuple[int, int], center: tuple[int, int]) -> np.ndarray:
    ring = disc(shape, center, 12) & ~disc(shape, center, 6)
    rr, cc = np.indices(shape)
    return ring & ~((cc > center[1]) & (np.abs(rr - center[0]) < 5))


def test_fidelity_of_discs_is_high() -> None:
    labels = np.zeros((64, 96), np.int32)
    for value, (centre, radius) in enumerate([((20, 20), 9), ((40, 50), 12), ((15, 80), 6), ((60, 5), 8)], 1):
        labels[disc(labels.shape, centre, radius)] = value * 10  # non-sequential, one cut by the border
    labels[5, 60] = 99  # a one-pixel object
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = fidelity(labels, 32)
    assert result.labels.tolist() == [10, 20, 30, 40, 99]
    assert result.mean_iou > 0.9 and result.ious.min() > 0.85
    assert result.poorly_represented == ()


def test_fidelity_warns_about_a_c_shape() -> None:
    labels = np.zeros((64, 64), np.int32)
    labels[c_shape(labels.shape, (30, 30))] = 7
    labels[disc(labels.shape, (55, 55), 6)] = 8
    with pytest.warns(StarConvexityWarning, match="labels 7"):
        result = fidelity(labels, 32)
    assert result.poorly_represented == (7,)
    iou = dict(zip(result.labels.tolist(), result.ious.tolist(), strict=True))
    assert iou[7] < 0.8 < iou[8]
    assert labels[tuple(result.points[0])] == 7  # centroid is in the hole: the deepest pixel is used


def test_fidelity_of_an_empty_image() -> None:
    result = fidelity(np.zeros((8, 8), np.int32))
    assert result.mean_iou == 0.0 and result.ious.shape == (0,)

"""Flow targets (Cellpose heat diffusion, distance-field gradients) and the dynamics that turn flows back into masks."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.datasets.bacteria import make_synthetic_bacteria
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.instances.dynamics import compute_masks, fill_holes_and_remove_small, flow_errors, follow_flows
from convscope.instances.flows import (
    cellpose_flows,
    distance_field,
    flows_from_potential,
    heat_potential,
    object_centres,
    omnipose_flows,
)
from convscope.metrics import matching


def _disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_cellpose_flows_point_to_the_centre_and_are_unit_vectors() -> None:
    labels = np.zeros((40, 60), np.uint16)
    labels[_disc(labels.shape, (20, 20), 9)] = 7
    labels[_disc(labels.shape, (20, 36), 9) & (labels == 0)] = 3  # touching at x = 29 | 30, non-sequential ids
    flows = cellpose_flows(labels)
    assert flows.shape == (2, 40, 60) and flows.dtype == np.float32
    assert np.all(flows[:, labels == 0] == 0)
    norm = np.sqrt((flows**2).sum(0))[labels > 0]
    assert np.mean(np.abs(norm - 1) < 1e-3) > 0.95  # unit length except where the gradient vanishes
    # left of the first centre the flow points right (+x), above it down (+y)
    assert flows[1, 20, 14] > 0.9 and flows[0, 14, 20] > 0.9
    # at the boundary between the two discs, each side flows toward its own centre
    assert labels[20, 29] == 7 and labels[20, 30] == 3
    assert flows[1, 20, 29] < -0.9 and flows[1, 20, 30] > 0.9


def test_object_centres_are_object_pixels_nearest_the_mean() -> None:
    labels = np.zeros((30, 30), np.int64)
    labels[5:10, 5:20] = 1
    ring = _disc(labels.shape, (20, 20), 6) & ~_disc(labels.shape, (20, 20), 3)
    labels[ring] = 2
    centres = object_centres(labels)
    assert tuple(centres[0]) in {(7, 12)}
    assert labels[tuple(centres[1])] == 2  # the mean of a ring is outside it; the centre is still on the ring


def test_distance_field_and_omnipose_flows() -> None:
    labels = np.zeros((20, 40), np.int64)
    labels[5:15, 2:38] = 1
    flows, dist = omnipose_flows(labels)
    assert dist.max() == pytest.approx(5.0) and dist[0, 0] == 0
    np.testing.assert_array_equal(dist, distance_field(labels))
    assert flows[0, 6, 20] > 0.9 and flows[0, 13, 20] < -0.9  # toward the medial axis of the rod
    # not normalised: half the central difference, clipped to length 1; vanishing on the medial axis (rows 9, 10)
    np.testing.assert_allclose(flows[:, 9:11, 10:30], 0.0, atol=0.5)
    assert np.abs(flows[0, 9:11, 10:30]).max() == pytest.approx(0.5)  # (5 - 4) / 2 between the two ridge rows
    assert np.sqrt((flows**2).sum(0)).max() <= 1 + 1e-6


def test_flows_from_potential_is_one_sided_at_the_image_border() -> None:
    """The object goes on beyond the image: no artificial flow into the image where it is cut."""
    labels = np.ones((5, 6), np.int64)
    potential = np.tile(np.arange(6, dtype=np.float32), (5, 1))  # rises along x by 1 per pixel
    flows = flows_from_potential(potential, labels, normalize=False)
    np.testing.assert_allclose(flows[1], 1.0)  # one-sided (1 / 1) at the borders, central (2 / 2) inside
    np.testing.assert_allclose(flows[0], 0.0)
    np.testing.assert_allclose(flows_from_potential(potential, labels)[1], 1.0)


def test_cellpose_flows_of_an_object_do_not_depend_on_the_others() -> None:
    """Every object diffuses for its own number of iterations (2 x (box height + width)), so a small object's
    flows are those of the small object alone, next to a large one, as in Cellpose's CPU code."""
    labels = np.zeros((80, 90), np.int32)
    labels[_disc(labels.shape, (40, 35), 30)] = 1
    labels[_disc(labels.shape, (40, 76), 6) & (labels == 0)] = 2  # touching the large disc
    labels[5:9, 70:88] = 3
    together = cellpose_flows(labels)
    for value in (1, 2, 3):
        alone = cellpose_flows(np.where(labels == value, labels, 0))
        np.testing.assert_array_equal(together[:, labels == value], alone[:, labels == value])
    np.testing.assert_array_equal(heat_potential(labels) > 0, labels > 0)


@pytest.mark.parametrize("variant", ["cellpose", "omnipose"])
@pytest.mark.parametrize("make", [make_synthetic_nuclei, make_synthetic_bacteria], ids=["nuclei", "bacteria"])
def test_masks_to_flows_to_masks_round_trip(make, variant: str) -> None:
    """Both dynamics recover the labels from their own flows, for round nuclei and long, curved rods."""
    for labels in make(2, size=(160, 160), seed=11)[1]:
        if variant == "cellpose":
            flows, dist = cellpose_flows(labels), None
        else:
            flows, dist = omnipose_flows(labels)
        pred = compute_masks(flows, (labels > 0).astype(np.float32), prob_thresh=0.5, flow_thresh=0.4,
                             variant=variant, dist=dist)
        assert pred.dtype == np.uint32 and pred.shape == labels.shape
        m = matching(labels, pred, thresh=0.5)
        assert m.accuracy > 0.95 and m.mean_true_score > 0.95


def test_follow_flows_moves_pixels_to_the_sink_and_stays_in_the_image() -> None:
    mask = np.ones((20, 20), bool)
    flows = np.zeros((2, 20, 20), np.float32)
    flows[1] = 1.0  # everything flows right
    ends = follow_flows(flows, mask, n_iter=50)
    assert ends.shape == (400, 2)
    np.testing.assert_allclose(ends[:, 1], 19.0)
    np.testing.assert_allclose(ends[:, 0], np.nonzero(mask)[0])


def test_flow_error_flags_wrong_flows_and_cleanup() -> None:
    labels = np.zeros((40, 40), np.int64)
    labels[_disc(labels.shape, (12, 12), 7)] = 1
    labels[_disc(labels.shape, (28, 28), 7)] = 2
    flows = cellpose_flows(labels)
    wrong = flows.copy()
    wrong[:, labels == 2] *= -1
    errors = flow_errors(labels, wrong, cellpose_flows)
    assert errors[0] < 1e-6 and errors[1] > 1.0
    holed = labels.copy()
    holed[12, 12] = 0
    holed[2, 38] = 3  # a one-pixel object
    cleaned = fill_holes_and_remove_small(holed, min_size=15)
    assert cleaned[12, 12] == cleaned[10, 10] != 0 and cleaned.max() == 2

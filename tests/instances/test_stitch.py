"""Stitching block labels: one-to-one matching on the halo bands, one id per object over the whole image."""

from __future__ import annotations

import numpy as np
import pytest

from convscope.instances.stitch import BlockLabels, core_first, matching_pairs, merge_blocks, shared_box


def test_matching_pairs_links_the_same_object_and_keeps_touching_neighbours_apart() -> None:
    """Two nuclei touching across a border (a's 1 | a's 2) seen by both blocks: each is matched with itself only,
    although 1 also touches b's 7; a sliver (b's 9 over a's 3, IoU 0.2) is not a match."""
    a = np.zeros((6, 10), np.uint32)
    a[1:5, 0:5], a[1:5, 5:10], a[5, 0:5] = 1, 2, 3
    b = np.zeros((6, 10), np.uint32)
    b[1:5, 0:5], b[1:5, 5:10], b[5, 0] = 8, 7, 9
    pairs = matching_pairs(a, b)
    assert sorted(map(tuple, pairs.tolist())) == [(1, 8), (2, 7)]
    assert matching_pairs(a, np.zeros_like(b)).shape == (0, 2)
    with pytest.raises(ValueError, match="one partner"):
        matching_pairs(a, b, min_iou=0.3)


def test_core_first_numbers_core_objects_first_then_the_ring_only_ones() -> None:
    labels = np.zeros((10, 10), np.uint32)
    labels[4:6, 4:6] = 50  # in the core
    labels[0:2, 0:2] = 7  # in the ring only
    labels[3:5, 8:10] = 20  # crosses the core border
    relabelled, n_core, n_ids = core_first(labels, (3, 7, 3, 9), (1, 9, 1, 10))
    assert (n_core, n_ids) == (2, 3)
    assert relabelled[4, 4] == 2 and relabelled[3, 9] == 1 and relabelled[1, 1] == 3 and relabelled[0, 0] == 3
    assert set(np.unique(relabelled)) == {0, 1, 2, 3}


def test_merge_blocks_gives_linked_objects_one_id_and_numbers_objects_1_to_n() -> None:
    """Block 0 has core objects 1, 2 (and band-only 3); block 1 has 1; block 2 has 1, 2. 0:2 is 1:1 and 1:1 is
    2:2 (an object over three blocks), 0:3 (band only) is 2:1."""
    blocks = [(2, 3), (1, 1), (2, 2)]
    links = [(0, 1, np.array([[2, 1]])), (1, 2, np.array([[1, 2]])), (0, 2, np.array([[3, 1]]))]
    luts, n = merge_blocks(blocks, links)
    assert n == 3
    assert luts[0].tolist() == [0, 1, 2] and luts[1].tolist() == [0, 2] and luts[2].tolist() == [0, 3, 2]
    assert merge_blocks([(0, 0), (1, 1)], [])[1] == 1


def test_shared_box_and_band_lookup() -> None:
    left, right = (0, 50, 0, 40), (0, 50, 40, 80)
    box = shared_box(left, right, 8, (50, 80))
    assert box == (0, 50, 32, 48)
    assert shared_box((0, 10, 0, 10), (20, 30, 20, 30), 4, (30, 30)) is None
    band = np.arange(50 * 16, dtype=np.uint32).reshape(50, 16)
    block = BlockLabels(1, 1, (((0, 50, 32, 48), band),))
    np.testing.assert_array_equal(block.labels_in((10, 20, 40, 48)), band[10:20, 8:16])
    with pytest.raises(ValueError, match="none of the block's bands"):
        block.labels_in((0, 10, 0, 10))

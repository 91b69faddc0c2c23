"""Label images of blocks stitched into one, with ids unique over the whole image: plain functions on arrays.

A huge image is segmented block by block (``convscope.inference.blocks``); each block is decoded on itself plus a
halo at least as wide as the largest object, and keeps its own part (its *core*). An object crossing the border
between two cores is then decoded by both blocks, each keeping the half in its core. The two halves are linked when
the two blocks' label images, compared on a thin band around the shared border, overlap with an IoU above 0.5
(:func:`matching_pairs`: at most one partner each). Links join objects into connected components over the whole
image (:func:`merge_blocks`), and each component gets one id.

dask-image's ``label_adjacency_graph`` links labels that merely *touch* across a block face, which merges two
different nuclei touching at a border; matching overlaps in the halo keeps them apart. The connected components
are taken as dask-image does (``scipy.sparse.csgraph.connected_components``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), image pixels


@dataclass(frozen=True)
class BlockLabels:
    """What one block tells the merge: its core's object count, and its labels on bands around its core's sides.

    Attributes
    ----------
    n_core : int
        Objects in the block's core, ids ``1 .. n_core``.
    n_ids : int
        Ids the block uses in its bands: the core's, then ``n_core + 1 .. n_ids`` for objects seen in the band
        outside the core only.
    bands : tuple of (Box, ndarray)
        Label images (h, w) uint32 of the block on rectangles around its core's sides, with their boxes.
    """

    n_core: int
    n_ids: int
    bands: tuple[tuple[Box, np.ndarray], ...]

    def labels_in(self, box: Box) -> np.ndarray:
        """The block's labels on ``box``, which must lie inside one of its bands."""
        y0, y1, x0, x1 = box
        for (by0, by1, bx0, bx1), labels in self.bands:
            if by0 <= y0 and y1 <= by1 and bx0 <= x0 and x1 <= bx1:
                return labels[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
        raise ValueError(f"box {box} is in none of the block's bands")


def core_first(labels: np.ndarray, core: Box, ring: Box) -> tuple[np.ndarray, int, int]:
    """Relabel a block's decoded labels: the core's objects ``1 .. n_core`` (in order of their old ids), then the
    objects seen only in ``ring`` outside the core, other objects 0.

    Parameters
    ----------
    labels : ndarray, (H, W) integer
        The block's labels on its decoded region (core plus halo), coordinates relative to that region.
    core, ring : Box
        The core, and the rectangle around it whose labels the merge compares (core inside ring inside ``labels``),
        relative to ``labels``.

    Returns
    -------
    relabelled : ndarray, (H, W) uint32
    n_core, n_ids : int
    """
    cy0, cy1, cx0, cx1 = core
    ry0, ry1, rx0, rx1 = ring
    in_core = np.unique(labels[cy0:cy1, cx0:cx1])
    in_ring = np.unique(labels[ry0:ry1, rx0:rx1])
    in_core, outside = in_core[in_core > 0], np.setdiff1d(in_ring[in_ring > 0], in_core)
    lut = np.zeros(int(labels.max(initial=0)) + 1, np.uint32)
    lut[in_core] = np.arange(1, len(in_core) + 1, dtype=np.uint32)
    lut[outside] = np.arange(len(in_core) + 1, len(in_core) + len(outside) + 1, dtype=np.uint32)
    return lut[labels], len(in_core), len(in_core) + len(outside)


def matching_pairs(a: np.ndarray, b: np.ndarray, *, min_iou: float = 0.5) -> np.ndarray:
    """Pairs of objects of two label images of the same region whose IoU there exceeds ``min_iou``.

    Parameters
    ----------
    a, b : ndarray, (H, W) integer
        Two label images of the same pixels (0 = background).
    min_iou : float
        At least 0.5, so that each object has at most one partner.

    Returns
    -------
    ndarray, (N, 2) int64
        ``(id in a, id in b)`` rows.
    """
    if min_iou < 0.5:
        raise ValueError(f"min_iou must be >= 0.5 (one partner per object), got {min_iou}")
    a, b = np.asarray(a, np.int64).ravel(), np.asarray(b, np.int64).ravel()
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((0, 2), np.int64)
    pairs, inter = np.unique(np.stack([a[both], b[both]], axis=1), axis=0, return_counts=True)
    area_a = np.bincount(a)[pairs[:, 0]]
    area_b = np.bincount(b)[pairs[:, 1]]
    iou = inter / (area_a + area_b - inter)
    return pairs[iou > min_iou]


def shared_box(first: Box, second: Box, band: int, shape: tuple[int, int]) -> Box | None:
    """The rectangle where two neighbouring cores' bands overlap: both cores grown by ``band`` pixels, intersected
    and clipped to the image ``shape``; ``None`` when empty."""
    y0 = max(first[0], second[0]) - band
    y1 = min(first[1], second[1]) + band
    x0 = max(first[2], second[2]) - band
    x1 = min(first[3], second[3]) + band
    y0, y1, x0, x1 = max(y0, 0), min(y1, shape[0]), max(x0, 0), min(x1, shape[1])
    return (y0, y1, x0, x1) if y1 > y0 and x1 > x0 else None


def merge_blocks(blocks: Sequence[tuple[int, int]], links: Sequence[tuple[int, int, np.ndarray]]
                 ) -> tuple[list[np.ndarray], int]:
    """Global ids of every block's core objects, linked objects sharing one.

    Parameters
    ----------
    blocks : sequence of (n_core, n_ids)
        Per block, as :class:`BlockLabels` (core ids ``1 .. n_core``, band-only ids up to ``n_ids``).
    links : sequence of (k, l, pairs)
        Block ``k``'s id ``pairs[:, 0]`` is the same object as block ``l``'s id ``pairs[:, 1]``.

    Returns
    -------
    luts : list of ndarray, (n_core + 1,) uint32
        Per block, the global id of each core id (``lut[0] = 0``); ids are ``1 .. n_objects``, numbered in block
        order, each object's pixels in every block sharing its id.
    n_objects : int
    """
    sizes = np.array([n for _, n in blocks], np.int64)
    offsets = np.concatenate([[1], 1 + np.cumsum(sizes)])  # node 0 is the background
    rows = [offsets[k] + p[:, 0] - 1 for k, _, p in links if len(p)]
    cols = [offsets[l_] + p[:, 1] - 1 for _, l_, p in links if len(p)]
    n_nodes = int(offsets[-1])
    i = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    j = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    graph = scipy.sparse.coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n_nodes, n_nodes))
    _, component = scipy.sparse.csgraph.connected_components(graph, directed=False)
    core_nodes = np.concatenate([offsets[k] + np.arange(n_core) for k, (n_core, _) in enumerate(blocks)]
                                ).astype(np.int64) if blocks else np.zeros(0, np.int64)
    kept = np.zeros(int(component.max(initial=0)) + 1, bool)
    kept[component[core_nodes]] = True
    kept[component[0]] = False
    new_id = np.cumsum(kept) * kept
    if new_id.max(initial=0) >= np.iinfo(np.uint32).max:
        raise ValueError("more objects than uint32 ids")
    luts = [np.concatenate([[0], new_id[component[offsets[k] + np.arange(n_core)]]]).astype(np.uint32)
            for k, (n_core, _) in enumerate(blocks)]
    return luts, int(kept.sum())

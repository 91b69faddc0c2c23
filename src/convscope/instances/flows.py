"""Flow-field targets from instance labels: Cellpose-style (heat diffusion from each object's centre) and
Omnipose-style (gradient of each object's distance field). Plain numpy + scipy.

Cellpose (Stringer et al., Nature Methods 2021; ``masks_to_flows`` of ``cellpose/dynamics.py``): every object
gets a centre, the object pixel nearest the mean of its pixels; heat is injected there and diffused inside the
object (each pixel becomes the mean of its 3 x 3 neighbourhood, pixels outside the object counting 0) for twice the
largest bounding-box height + width in the image; the flow is the normalised central difference of ``log(1 + T)``.
All objects diffuse at once, vectorised over their pixels (Cellpose's GPU formulation), each in its own support.

Omnipose (Cutler et al., Nature Methods 2022): the flow is the normalised gradient of the distance field, the
Euclidean distance of every object pixel to the nearest pixel not of its object, so that flows run to the medial
axis of long, curved cells instead of to a single centre point.

Flows are unit vectors (dy, dx) on object pixels and 0 on background.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from convscope.instances.star import _check_labels, _compact_labels, _object_edt

__all__ = ["cellpose_flows", "distance_field", "flows_from_potential", "object_centres", "omnipose_flows"]

# the 3 x 3 neighbourhood as (dy, dx) offsets; index 0 is the pixel itself
_OFFSETS = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)])


def object_centres(labels: np.ndarray) -> np.ndarray:
    """For compact labels 1..n: (n, 2) int64 (row, col) of the object pixel nearest the mean of its pixels."""
    n = int(labels.max(initial=0))
    rows, cols = np.nonzero(labels)
    ids = labels[rows, cols].astype(np.int64) - 1
    counts = np.bincount(ids, minlength=n)
    mean_r = np.bincount(ids, rows, minlength=n) / np.maximum(counts, 1)
    mean_c = np.bincount(ids, cols, minlength=n) / np.maximum(counts, 1)
    d2 = (rows - mean_r[ids]) ** 2 + (cols - mean_c[ids]) ** 2
    order = np.lexsort((d2, ids))  # by object, nearest first
    first = order[np.r_[0, np.flatnonzero(np.diff(ids[order])) + 1]]
    return np.stack([rows[first], cols[first]], axis=1)


def flows_from_potential(potential: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit flows (2, H, W) float32 up the gradient of ``potential`` (H, W) inside every object.

    Central differences, a neighbour of another object (or background, or beyond the image) counting 0 as in
    Cellpose; background pixels get 0.
    """
    h, w = labels.shape
    pad_p = np.pad(potential, 1)
    pad_l = np.pad(labels, 1)
    inside = labels > 0

    def shifted(dy: int, dx: int) -> np.ndarray:
        p = pad_p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        return np.where(pad_l[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] == labels, p, 0.0)

    flow = np.stack([shifted(1, 0) - shifted(-1, 0), shifted(0, 1) - shifted(0, -1)]).astype(np.float64)
    flow *= inside
    flow /= 1e-20 + np.sqrt((flow**2).sum(0))
    return flow.astype(np.float32)


def cellpose_flows(labels: ArrayLike) -> np.ndarray:
    """Cellpose flows (2, H, W) float32 (dy, dx) of an integer label image (H, W); 0 on background.

    Labels need not be sequential. See the module docstring for the definition.
    """
    labels = _check_labels(labels)
    compact, _ = _compact_labels(labels)
    if not compact.any():
        return np.zeros((2, *labels.shape), np.float32)
    h, w = compact.shape
    wp = w + 2
    rows, cols = np.nonzero(compact)
    flat = (rows + 1) * wp + (cols + 1)  # indices into the image padded by one pixel
    neighbours = flat[None, :] + (_OFFSETS[:, 0] * wp + _OFFSETS[:, 1])[:, None]  # (9, N)
    padded = np.pad(compact, 1).ravel()
    same = padded[neighbours] == padded[flat][None, :]
    centres = object_centres(compact)
    centre_flat = (centres[:, 0] + 1) * wp + (centres[:, 1] + 1)
    boxes = ndimage.find_objects(compact)
    n_iter = 2 * max((b[0].stop - b[0].start) + (b[1].stop - b[1].start) for b in boxes if b is not None)
    heat = np.zeros((h + 2) * wp, np.float64)
    weights = same / 9.0
    for _ in range(n_iter):
        heat[centre_flat] += 1.0
        heat[flat] = np.einsum("kn,kn->n", heat[neighbours], weights)
    potential = np.log1p(heat.reshape(h + 2, wp)[1:-1, 1:-1])
    return flows_from_potential(potential, compact)


def distance_field(labels: ArrayLike) -> np.ndarray:
    """Per-object Euclidean distance (H, W) float32 of every object pixel to the nearest pixel not of its object
    (background or another label; the image border does not count); 0 on background."""
    labels = _check_labels(labels)
    compact, _ = _compact_labels(labels)
    dist = np.zeros(labels.shape, np.float32)
    for value, box in enumerate(ndimage.find_objects(compact), 1):
        if box is not None:
            mask, edt = _object_edt(compact, box, value)
            dist[box][mask] = edt[mask]
    return dist


def omnipose_flows(labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Omnipose-style flows (2, H, W) float32 (dy, dx) and the distance field (H, W) float32 they climb."""
    labels = _check_labels(labels)
    compact, _ = _compact_labels(labels)
    dist = distance_field(compact)
    return flows_from_potential(dist, compact), dist

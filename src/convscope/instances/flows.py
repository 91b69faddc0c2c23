"""Flow-field targets from instance labels: Cellpose-style (heat diffusion from each object's centre) and
Omnipose-style (gradient of each object's distance field). Plain numpy + scipy.

Cellpose (Stringer et al., Nature Methods 2021; ``masks_to_flows_cpu`` of ``cellpose/dynamics.py``): every object
gets a centre, the object pixel nearest the mean of its pixels; heat is injected there and diffused inside the
object (each pixel becomes the mean of its 3 x 3 neighbourhood, pixels outside the object counting 0) for a number
of iterations set by the object's size, twice its bounding box height plus width, as in Cellpose's CPU code (whose
versions add or subtract a few iterations: 2 (ptp(y) + ptp(x)) in Cellpose 1-2, 2 (h + w + 4) in Cellpose 3); the
flow is the normalised central difference of ``log(1 + T)``. Each object diffuses
alone in its bounding box, so its flows do not depend on the other objects. For speed, objects of similar
iteration counts diffuse together, stacked as boxes of one size (tall ones transposed: the stencil is symmetric),
and an object leaves the stack when its own iterations are done; heat is float32.

Omnipose (Cutler et al., Nature Methods 2022): the potential is the distance field, the Euclidean distance of
every object pixel to the nearest pixel not of its object, and the flow its gradient, *not* normalised: half the
central difference, clipped to length 1, so about a unit vector inside the object and vanishing on the medial axis,
where Euler integration then stops instead of sliding along the ridge. Flows run to the medial axis of long,
curved cells instead of to a single centre point.

Gradients: central differences, a neighbour of another object or background counting 0 (as in Cellpose); at the
image border, where the object goes on beyond the image, a one-sided difference (so the flows of a
training patch are right at its border too). Flows are (dy, dx), 0 on background.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from convscope.instances.star import _check_labels, _compact_labels, _object_edt

__all__ = ["cellpose_flows", "distance_field", "flows_from_potential", "heat_potential", "object_centres",
           "omnipose_flows"]

#: Objects whose iteration counts are within this factor of the largest in their stack diffuse together.
_STACK_RATIO = 0.8


def _object_pixels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns (N,) int64 of the object pixels (``np.nonzero`` order) and their 0-based object ids."""
    rows, cols = np.nonzero(labels)
    return rows, cols, labels[rows, cols].astype(np.int64) - 1


def _centres(rows: np.ndarray, cols: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """(n, 2) int64 (row, col) of the pixel of each object nearest the mean of its pixels (first in raster order on
    ties; -1 for ids without pixels)."""
    counts = np.maximum(np.bincount(ids, minlength=n), 1)
    mean_r = np.bincount(ids, rows, minlength=n) / counts
    mean_c = np.bincount(ids, cols, minlength=n) / counts
    d2 = (rows - mean_r[ids]) ** 2 + (cols - mean_c[ids]) ** 2
    nearest = np.full(n, np.inf)
    np.minimum.at(nearest, ids, d2)
    candidates = np.flatnonzero(d2 == nearest[ids])
    present, first = np.unique(ids[candidates], return_index=True)
    centres = np.full((n, 2), -1, np.int64)
    centres[present] = np.stack([rows[candidates[first]], cols[candidates[first]]], axis=1)
    return centres


def object_centres(labels: np.ndarray) -> np.ndarray:
    """Centres (n, 2) int64 (row, col) of the objects of compact labels 1..n (H, W): the object pixel nearest the
    mean of its pixels (the first in raster order on ties)."""
    n = int(labels.max(initial=0))
    rows, cols, ids = _object_pixels(labels)
    return _centres(rows, cols, ids, n)


def flows_from_potential(potential: np.ndarray, labels: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    """Flows (2, H, W) float32 (dy, dx) up the gradient of ``potential`` (H, W) inside every object of ``labels``
    (H, W, integer); 0 on background.

    Central differences, a neighbour of another object or background counting 0 as in Cellpose; one-sided at the
    image border. ``normalize``: unit vectors (Cellpose); else the gradient itself (half the central difference)
    clipped to length 1 (Omnipose's distance field: about 1 inside, about 0 on the medial axis).
    """
    labels = np.asarray(labels)
    flows = np.zeros((2, *labels.shape), np.float32)
    rows, cols = np.nonzero(labels)
    if len(rows):
        flows[:, rows, cols] = _gradient_at(np.asarray(potential), labels, rows, cols, normalize=normalize)
    return flows


def _gradient_at(potential: np.ndarray, labels: np.ndarray, rows: np.ndarray, cols: np.ndarray, *,
                 normalize: bool) -> np.ndarray:
    """The flows (2, N) float32 of :func:`flows_from_potential` at the object pixels ``rows, cols`` (N,)."""
    h, w = labels.shape
    flat_p, flat_l = potential.ravel(), labels.ravel()
    here = rows * w + cols
    own = flat_l[here]

    def value(at: np.ndarray) -> np.ndarray:  # a neighbour of another object or background counts 0
        return np.where(flat_l[at] == own, flat_p[at].astype(np.float64), 0.0)

    up, down = np.maximum(rows - 1, 0), np.minimum(rows + 1, h - 1)  # clipped: one-sided at the image border
    left, right = np.maximum(cols - 1, 0), np.minimum(cols + 1, w - 1)
    row_start = here - cols
    grad = np.stack([value(down * w + cols) - value(up * w + cols), value(row_start + right) - value(row_start + left)])
    if normalize:
        grad /= 1e-20 + np.hypot(grad[0], grad[1])
    else:
        grad[0] /= np.maximum(down - up, 1)
        grad[1] /= np.maximum(right - left, 1)
        grad /= np.maximum(np.hypot(grad[0], grad[1]), 1.0)
    return grad.astype(np.float32)


def cellpose_flows(labels: ArrayLike) -> np.ndarray:
    """Cellpose flows (2, H, W) float32 (dy, dx) of an integer label image (H, W); unit vectors, 0 on background.

    Labels need not be sequential. See the module docstring for the definition.
    """
    labels = _check_labels(labels)
    compact, _ = _compact_labels(labels)
    return flows_from_potential(heat_potential(compact), compact)


def heat_potential(labels: ArrayLike) -> np.ndarray:
    """Cellpose's potential (H, W) float32, ``log(1 + T)`` of the heat T diffused from every object's centre
    inside the object, of an integer label image (H, W); 0 on background. Its gradient is the flow.

    Each object diffuses for its own ``2 * (box height + box width)`` iterations (see the module docstring).
    """
    labels = _check_labels(labels)
    compact, _ = _compact_labels(labels)
    potential = np.zeros(labels.shape, np.float32)
    rows, cols, ids = _object_pixels(compact)
    if not len(rows):
        return potential
    potential[rows, cols] = np.log1p(_diffuse(compact, rows, cols, ids))
    return potential


def _boxes(labels: np.ndarray) -> np.ndarray:
    """(n, 4) int64 (top, left, height, width) of the bounding box of each object 1..n (zeros if absent)."""
    boxes = ndimage.find_objects(labels)
    return np.array([(b[0].start, b[1].start, b[0].stop - b[0].start, b[1].stop - b[1].start) if b else (0, 0, 0, 0)
                     for b in boxes], np.int64).reshape(-1, 4)


def _diffuse(labels: np.ndarray, rows: np.ndarray, cols: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Heat (N,) float32 at the object pixels ``rows, cols`` (N,) of objects ``ids`` (N,) (0-based ids of compact
    ``labels``) after each object's own number of diffusion steps from its centre."""
    top, left, height, width = _boxes(labels).T
    n = len(top)
    n_iter = 2 * (height + width)
    centres = _centres(rows, cols, ids, n)
    # positions inside the boxes; tall boxes are transposed so that stacks need less padding
    flip = width > height
    r, c = rows - top[ids], cols - left[ids]
    r, c = np.where(flip[ids], c, r), np.where(flip[ids], r, c)
    cr, cc = centres[:, 0] - top, centres[:, 1] - left
    cr, cc = np.where(flip, cc, cr), np.where(flip, cr, cc)
    long_side, short_side = np.maximum(height, width), np.minimum(height, width)
    order = np.lexsort((short_side, -n_iter))  # most iterations first
    heat = np.zeros(len(rows), np.float32)
    slot = np.full(n, -1)
    start = 0
    while start < n and n_iter[order[start]] > 0:
        stop = start + int(np.searchsorted(-n_iter[order[start:]], -_STACK_RATIO * n_iter[order[start]], "right"))
        stack = order[start:stop]
        slot[stack] = np.arange(len(stack))
        member = np.flatnonzero(slot[ids] >= 0)
        where = (slot[ids[member]], r[member] + 1, c[member] + 1)
        shape = (len(stack), int(long_side[stack].max()), int(short_side[stack].max()))
        heat[member] = _diffuse_stack(where, shape, (cr[stack] + 1, cc[stack] + 1), n_iter[stack])[where]
        slot[stack] = -1
        start = stop
    return heat


def _diffuse_stack(where: tuple[np.ndarray, np.ndarray, np.ndarray], shape: tuple[int, int, int],
                   centres: tuple[np.ndarray, np.ndarray], n_iter: np.ndarray) -> np.ndarray:
    """Heat (B, h + 2, w + 2) float32 of B objects diffused in boxes of ``shape`` (B, h, w) padded by one pixel.

    ``where`` indexes the object pixels (box, row, col) in the padded boxes, ``centres`` (row, col), each (B,), the
    heat sources; ``n_iter`` (B,) int, non-increasing, the iterations of every object: the first ``m`` boxes of the
    stack are updated while ``m`` objects still diffuse.
    """
    b, h, w = shape
    weights = np.zeros(shape, np.float32)
    weights[where[0], where[1] - 1, where[2] - 1] = 1 / 9
    heat = np.zeros((b, h + 2, w + 2), np.float32)
    rows_sum = np.empty((b, h, w + 2), np.float32)
    box_sum = np.empty(shape, np.float32)
    boxes = np.arange(b)
    active = np.searchsorted(-n_iter, -np.arange(int(n_iter[0])), "left")  # objects with n_iter > t, per step t
    for m in active:
        t = heat[:m]
        t[boxes[:m], centres[0][:m], centres[1][:m]] += 1
        s = rows_sum[:m]
        np.add(t[:, :-2], t[:, 1:-1], out=s)
        s += t[:, 2:]
        bs = box_sum[:m]
        np.add(s[:, :, :-2], s[:, :, 1:-1], out=bs)
        bs += s[:, :, 2:]
        np.multiply(bs, weights[:m], out=t[:, 1:-1, 1:-1])
    return heat


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
    """Omnipose-style flows (2, H, W) float32 (dy, dx) and the distance field (H, W) float32 they climb.

    The flows are the distance field's gradient clipped to length 1, not normalised: about unit vectors inside the
    objects, vanishing on their medial axes (see the module docstring).
    """
    labels = _check_labels(labels)
    compact, _ = _compact_labels(labels)
    dist = distance_field(compact)
    return flows_from_potential(dist, compact, normalize=False), dist

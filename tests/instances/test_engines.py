"""The compiled star-convex decode (numba) gives the labels of the numpy reference, polygon for polygon."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from convscope.datasets.folders import load_image
from convscope.datasets.segmentation import dsb2018_split_ids, image_kinds
from convscope.errors import ConvscopeError
from convscope.inference import Predictor
from convscope.instances import candidates, instances_from_prediction, polygon_nms, polygons_to_label
from convscope.instances.engines import ENV_VAR, compiled
from convscope.runs import load_run

numba = pytest.importorskip("numba", reason="numba is not installed: only the numpy reference runs")


def test_engine_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compiled("numpy") is None
    assert compiled("numba") is not None
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert compiled("auto") is compiled("numba")
    monkeypatch.setenv(ENV_VAR, "0")
    assert compiled("auto") is None
    assert compiled("numba") is not None  # asked for by name, it runs
    with pytest.raises(ValueError, match="engine"):
        compiled("fortran")  # type: ignore[arg-type]


def test_numba_engine_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "convscope.instances._compiled", None)  # import fails as without numba
    assert compiled("auto") is None
    with pytest.raises(ConvscopeError, match="pip install numba"):
        compiled("numba")


def random_prediction(rng: np.random.Generator, shape: tuple[int, int], n_rays: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy star-convex prediction: blobs of high probability whose pixels predict jittered, partly non-convex
    polygons (some with zero rays), so that the NMS has overlapping candidates of every kind to decide on."""
    prob = np.zeros(shape, np.float32)
    dist = np.zeros((*shape, n_rays), np.float32)
    rr, cc = np.indices(shape)
    for _ in range(12):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        radius = rng.uniform(2, 9)
        blob = (rr - cy) ** 2 + (cc - cx) ** 2 <= radius**2
        prob[blob] = np.maximum(prob[blob], rng.uniform(0.3, 1.0, blob.sum()).astype(np.float32))
        rays = radius * rng.uniform(0.5, 1.6, (blob.sum(), n_rays))
        rays[rng.uniform(size=rays.shape) < 0.05] = 0  # spikes inwards: non-convex polygons
        dist[blob] = rays
    return prob, dist


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("nms_thresh", [0.0, 0.3, 0.7])
def test_nms_and_labels_identical_on_random_predictions(seed: int, nms_thresh: float) -> None:
    rng = np.random.default_rng(seed)
    prob, dist = random_prediction(rng, (48, 56), n_rays=[8, 16, 32][seed % 3])
    cands = candidates(prob, dist, prob_thresh=0.4, grid=(2, 2), border=0)
    assert len(cands) > 50
    keep = {e: polygon_nms(cands.dist, cands.points, cands.scores, nms_thresh=nms_thresh, engine=e)
            for e in ("numba", "numpy")}
    np.testing.assert_array_equal(keep["numba"], keep["numpy"])
    assert 1 < keep["numpy"].sum() < len(cands)
    labels = {e: instances_from_prediction(prob, dist, prob_thresh=0.4, nms_thresh=nms_thresh, grid=2, border=0,
                                           engine=e)[0] for e in ("numba", "numpy")}
    np.testing.assert_array_equal(labels["numba"], labels["numpy"])


def test_polygons_to_label_identical_with_ties_clipping_and_degenerate_polygons() -> None:
    rng = np.random.default_rng(7)
    n, n_rays = 60, 24
    centres = rng.uniform(-10, 50, (n, 2))
    dist = rng.uniform(0, 12, (n, n_rays))
    dist[::9] = 0  # degenerate: a point
    phi = 2 * np.pi * np.arange(n_rays) / n_rays
    coords = centres[:, :, None] + dist[:, None, :] * np.stack([np.sin(phi), np.cos(phi)])[None]
    scores = rng.choice([0.2, 0.5, 0.9], n)  # many ties: the later polygon wins
    for dtype, cast in ((np.uint16, np.float32), (np.uint32, np.float64)):
        got = polygons_to_label(coords.astype(cast), scores, (40, 45), dtype=dtype, engine="numba")
        ref = polygons_to_label(coords.astype(cast), scores, (40, 45), dtype=dtype, engine="numpy")
        assert got.dtype == ref.dtype == dtype
        np.testing.assert_array_equal(got, ref)
        assert len(np.unique(ref)) > 20
    bad = coords.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):  # the compiled path leaves the checks to the reference
        polygons_to_label(bad, scores, (40, 45), engine="numba")


def test_empty_inputs() -> None:
    empty = np.zeros((0, 8), np.float32)
    assert polygon_nms(empty, np.zeros((0, 2)), np.zeros(0), engine="numba").shape == (0,)
    assert polygons_to_label(np.zeros((0, 2, 8)), None, (5, 6), engine="numba").shape == (5, 6)


def _dsb_test_images(shared_data: Path, n: int) -> list[np.ndarray]:
    folder = shared_data / "dsb2018"
    ids = dsb2018_split_ids(image_kinds(folder), ["fluorescence_gray"])[2]
    return [load_image(folder / "images" / f"{i}.png", color="gray") for i in ids[:n]]


@pytest.mark.slow
def test_real_dsb_predictions_decode_identically(shared_data: Path) -> None:
    """The built-in model's predictions of real DSB 2018 test images: the compiled decode gives the reference's
    label images exactly, at the model's thresholds and at a looser and a stricter NMS."""
    predictor = Predictor(load_run("nuclei", device="cpu"), backend="torch")
    task = predictor.task
    objects = 0
    for image in _dsb_test_images(shared_data, 6):
        prob, dist = predictor.predict(image)
        for nms_thresh in (task.nms_thresh, 0.1, 0.6):
            labels = {e: instances_from_prediction(prob, dist, prob_thresh=task.prob_thresh, nms_thresh=nms_thresh,
                                                   grid=task.grid, border=task.border, shape=image.shape[:2],
                                                   max_candidates=prob.size // 2, min_ray=1.0, engine=e)[0]
                      for e in ("numba", "numpy")}
            np.testing.assert_array_equal(labels["numba"], labels["numpy"])
        objects += int(labels["numpy"].max())
    assert objects > 50


def test_nms_identical_for_few_candidates_far_apart() -> None:
    """Sparse candidates over a huge extent (the neighbour grid grows its cells) and overlapping pairs among them."""
    rng = np.random.default_rng(3)
    sites = rng.uniform(0, 200_000, (40, 2))
    points = np.concatenate([sites, sites + rng.uniform(-4, 4, sites.shape)])
    dist = rng.uniform(2, 8, (len(points), 16)).astype(np.float32)
    scores = rng.uniform(size=len(points))
    keep = polygon_nms(dist, points, scores, nms_thresh=0.3, engine="numba")
    np.testing.assert_array_equal(keep, polygon_nms(dist, points, scores, nms_thresh=0.3, engine="numpy"))
    assert 40 <= keep.sum() < 80


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_non_finite_polygons_are_refused(engine: str) -> None:
    dist = np.ones((2, 8), np.float32)
    dist[1, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        polygon_nms(dist, np.zeros((2, 2)), np.array([0.9, 0.8]), engine=engine)


@pytest.mark.parametrize("n_rays", [32, 24, 12, 7])
@pytest.mark.parametrize("grid", [1, 2, (1, 3)])
def test_star_distances_identical(n_rays: int, grid: int | tuple[int, int]) -> None:
    """The compiled walk gives the numpy reference's distances bit for bit: touching objects, objects at the image
    border, non-sequential ids, and ray counts whose rounding depends on the start pixel (multiples of 12)."""
    from convscope.datasets.nuclei import make_synthetic_nuclei
    from convscope.instances.star import star_dist

    _, truth = make_synthetic_nuclei(1, size=(67, 90), density=0.3, seed=n_rays)
    labels = np.where(truth[0] > 0, truth[0] * 7 + 3, 0).astype(np.int32)
    labels[:6, :10] = 999  # a block touching two image borders
    reference = star_dist(labels, n_rays, grid=grid, engine="numpy")
    compiled_ = star_dist(labels, n_rays, grid=grid, engine="numba")
    assert compiled_.dtype == np.float32 and (compiled_ > 0).any()
    np.testing.assert_array_equal(compiled_, reference)


@pytest.mark.slow
def test_star_distances_identical_on_real_masks(shared_data: Path) -> None:
    """DSB 2018 training masks (as ``StarDistTask.encode`` gets them, side by side) give identical targets."""
    from convscope.instances.star import star_dist
    from convscope.io.image import read_image

    folder = shared_data / "dsb2018" / "masks"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (real data sets live in ../shared/data)")
    masks = [read_image(p) for p in sorted(folder.glob("*.png"))[:8]]
    for mask in masks:
        for n_rays, grid in ((32, 2), (12, 1)):
            np.testing.assert_array_equal(star_dist(mask, n_rays, grid=grid, engine="numba"),
                                          star_dist(mask, n_rays, grid=grid, engine="numpy"))

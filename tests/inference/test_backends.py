"""The onnxruntime backend of the predictor gives torch eager's network outputs (max absolute difference < 1e-4) and
so the same results, for every kind of task."""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch

import convscope
from convscope.errors import ConvscopeError
from convscope.inference.backends import OnnxRunner, onnx_bytes, onnx_session
from convscope.io import read_image
from convscope.metrics.matching import matching
from convscope.models import create_model

STAR = ("task: stardist\ndata: {dataset: synthetic_nuclei, synthetic_count: 4, synthetic_size: 64, patch_size: 38, "
        "patches_per_epoch: 8}\nmodel: {name: stardist, options: {depth: 1, base_filters: 4, features: 8}}\n"
        "stardist: {n_rays: 8}\ntrain: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}\n")


@pytest.fixture(autouse=True)
def _onnx_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Traced graphs go to a fresh cache per test."""
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path))


@pytest.fixture(scope="module")
def star_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A star-convex run whose training patch (38) is not a multiple of its size multiple (4): tiles are padded."""
    root = tmp_path_factory.mktemp("star38")
    (root / "recipe.yaml").write_text(STAR)
    convscope.train(convscope.load_recipe(root / "recipe.yaml"), root / "run", log=lambda _m: None)
    return root / "run"


def test_onnxruntime_backend_matches_torch_with_padded_tiles(star_run: Path) -> None:
    run = convscope.load_run(star_run, device="cpu")
    assert run.tile % run.model.size_multiple != 0
    image = (np.random.default_rng(0).random((75, 110)) * 255).astype(np.uint8)
    a = convscope.Predictor(run).network(image)
    b = convscope.Predictor(run, backend="onnxruntime").network(image)
    assert a.shape == b.shape and np.abs(a - b).max() < 1e-4


def test_nuclei_labels_are_the_same_with_either_backend() -> None:
    image = read_image(Path(str(files("convscope.napari") / "data" / "dsb2018_nuclei.png")))  # a real DSB crop
    image = np.tile(image if image.ndim == 2 else image[..., 0], (2, 2))  # 256 x 256: several tiles
    run = convscope.load_run("nuclei", device="cpu")
    eager, ort = convscope.Predictor(run), convscope.Predictor(run, backend="onnxruntime")
    assert np.abs(eager.network(image) - ort.network(image)).max() < 1e-4
    labels = eager.segment(image)
    # the same objects (ids may be numbered otherwise: outputs differ by < 1e-4, so NMS order can too)
    assert labels.max() > 10 and matching(labels, ort.segment(image), thresh=0.95).f1 == 1.0


def test_runner_pads_to_the_size_multiple_and_crops_back() -> None:
    net = create_model("stardist", num_classes=5, grid=2, depth=1, base_filters=2, features=4).eval()
    runner = OnnxRunner(onnx_session(onnx_bytes(net, torch.rand(1, 1, 16, 16))), size_multiple=4, grid=2)
    x = torch.rand(2, 1, 18, 22)
    with torch.no_grad():
        expected = net(x)
    found = runner(x)
    assert found.shape == expected.shape == (2, 5, 9, 11) and (found - expected).abs().max() < 1e-5


def test_unknown_backend_and_missing_extra(star_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = convscope.load_run(star_run, device="cpu")
    with pytest.raises(ConvscopeError, match="unknown backend"):
        convscope.Predictor(run, backend="tensorrt")  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConvscopeError, match=r"pip install 'convscope\[onnx\]'"):
        convscope.Predictor(run, backend="onnxruntime").network(np.zeros((38, 38), np.uint8))


def test_auto_is_onnxruntime_on_the_cpu_when_installed_and_the_graph_is_cached(
        star_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = convscope.load_run(star_run, device="cpu")
    predictor = convscope.Predictor(run, backend="auto")
    assert predictor.backend == "onnxruntime" and convscope.Predictor(run).backend == "torch"
    predictor.network(np.zeros((38, 38), np.uint8))
    cached = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    convscope.Predictor(run, backend="onnxruntime").network(np.zeros((50, 60), np.uint8))
    assert cached[0].stat().st_mtime_ns == stamp and len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert convscope.Predictor(run, backend="auto").backend == "torch"  # without the extra


def test_larger_tiles_find_the_same_nuclei() -> None:
    """Tiles of up to 512 px (one tile for this 256 x 256 image instead of 3 x 3 of the training patch) change the
    network output only near the former tile seams: the same nuclei are found."""
    image = read_image(Path(str(files("convscope.napari") / "data" / "dsb2018_nuclei.png")))
    image = np.tile(image if image.ndim == 2 else image[..., 0], (2, 2))
    run = convscope.load_run("nuclei", device="cpu")
    patches, large = convscope.Predictor(run), convscope.Predictor(run, tile=512)
    assert patches.tile_sides(image.shape) == (run.tile, run.tile) and large.tile_sides(image.shape) == (256, 256)
    seen: list[tuple[int, ...]] = []
    forward = large._forward
    large._forward = lambda batch: seen.append(tuple(batch.shape)) or forward(batch)  # type: ignore[method-assign]
    labels = large.segment(image)
    assert seen == [(1, 1, 256, 256)]
    assert labels.max() > 10 and matching(patches.segment(image), labels, thresh=0.5).f1 > 0.95
    ort = convscope.Predictor(run, backend="onnxruntime", tile=512)  # a graph traced on the training patch
    wide = np.ascontiguousarray(image[:200])  # one tile of 208 x 256
    assert np.abs(ort.network(wide) - large.network(wide)).max() < 1e-4
    assert len(list((Path(os.environ["CONVSCOPE_CACHE"]) / "onnx").iterdir())) == 1
    with pytest.raises(ConvscopeError, match="tile"):
        convscope.Predictor(run, tile=0)

"""Block-wise prediction of large images on Dask: the same result as the whole image, whatever the block size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("dask")
pytest.importorskip("ome_zarr")
import tifffile
import zarr

from convscope import Predictor, load_recipe, load_run, matching
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.errors import ConvscopeError
from convscope.inference.blocks import BlockGrid
from convscope.inference.large import is_large_input, predict_large
from convscope.inference.regions import TileLayout, predict_region
from convscope.inference.tiling import predict_tiled
from convscope.io.large import open_large_image, read_label_level
from convscope.training.fit import fit


def _quiet(_message: str) -> None:
    return None


@pytest.fixture(scope="module")
def nuclei_image() -> tuple[np.ndarray, np.ndarray]:
    """A generated 288 x 320 uint16 fluorescence image of touching nuclei, and the built-in model's labels of the
    whole image."""
    torch.set_num_threads(1)
    image = make_synthetic_nuclei(1, size=(288, 320), seed=11)[0][0]
    return image, Predictor(load_run("nuclei", device="cpu")).segment(image)


@pytest.fixture(scope="module")
def nuclei_zarr(tmp_path_factory: pytest.TempPathFactory, nuclei_image: tuple[np.ndarray, np.ndarray]) -> Path:
    path = tmp_path_factory.mktemp("big") / "nuclei.zarr"
    zarr.create_array(str(path), data=nuclei_image[0], chunks=(100, 100))
    return path


@pytest.mark.parametrize("grid", [1, 2])
def test_a_region_of_the_tiled_prediction_is_that_of_the_whole_image(grid: int) -> None:
    """Every region, predicted from only the tiles overlapping it, equals the whole image's tiled prediction there."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 5, padding=2), torch.nn.Tanh(), torch.nn.AvgPool2d(grid))
    image = np.random.default_rng(0).normal(size=(2, 97, 131)).astype(np.float32)
    whole = predict_tiled(net, image, tile=32, overlap=8, grid=grid)
    layout = TileLayout.of(97, 131, tile=32, overlap=8, grid=grid)
    assert layout.out_shape == whole.shape[1:]
    h, w = layout.out_shape
    for region in ((0, h, 0, w), (0, 7, 3, 40), (h // 3, h - 2, w // 2, w), (h - 1, h, w - 1, w)):
        part = predict_region(net, lambda y0, y1, x0, x1: image[:, y0:y1, x0:x1], layout, region, batch_size=3)
        y0, y1, x0, x1 = region
        np.testing.assert_allclose(part, whole[:, y0:y1, x0:x1], rtol=1e-5, atol=1e-6)


def test_block_grid_cores_tile_the_image_and_halos_stay_inside() -> None:
    grid = BlockGrid(300, 250, 128, 32, 2)
    covered = np.zeros((300, 250), int)
    for i, j in grid.indices():
        y0, y1, x0, x1 = grid.core(i, j)
        covered[y0:y1, x0:x1] += 1
        d = grid.decoded(i, j)
        assert d[0] == max(y0 - 32, 0) and d[3] == min(x1 + 32, 250)
    assert (covered == 1).all()
    assert len(grid.neighbours()) == 3 + 4 + 4  # 3 x 2 blocks: 3 side by side, 4 above each other, 4 diagonal


@pytest.mark.parametrize("block", [128, 160, 224])
def test_instances_block_by_block_match_the_whole_image(nuclei_zarr: Path, nuclei_image: tuple[np.ndarray, np.ndarray],
                                                        tmp_path: Path, block: int) -> None:
    """The built-in nuclei model on a generated image: block-wise labels match the whole-image labels (matching
    accuracy >= 0.99 at IoU 0.5), ids are unique over the image and numbered 1..N, and the objects that cross a
    block border are found once and whole."""
    image, whole = nuclei_image
    out = tmp_path / f"labels_{block}.ome.zarr"
    result = predict_large("nuclei", nuclei_zarr, out, block_size=block, threads=1, progress=False, log=_quiet)
    labels = read_label_level(out)[:]
    assert labels.shape == image.shape and labels.dtype == np.uint16
    ids = np.unique(labels)[1:]
    assert result.objects == len(ids) == labels.max() > 50
    assert matching(whole, labels, thresh=0.5).accuracy >= 0.99
    crossing = [k for k in np.unique(whole)[1:] if _crosses(whole == k, block)]
    assert len(crossing) > 5
    for k in crossing:  # the same object, one id, whole
        found, counts = np.unique(labels[whole == k], return_counts=True)
        best = found[np.argmax(counts)]
        assert best > 0
        iou = np.sum((labels == best) & (whole == k)) / np.sum((labels == best) | (whole == k))
        assert iou > 0.9, (k, iou)


def _crosses(mask: np.ndarray, block: int) -> bool:
    ys, xs = np.nonzero(mask)
    return len(set(ys // block)) > 1 or len(set(xs // block)) > 1


def test_the_output_is_an_ngff_label_image_with_a_pyramid(nuclei_zarr: Path, tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    out = tmp_path / "labels.ome.zarr"
    predict_large("nuclei", nuclei_zarr, out, block_size=128, threads=1, progress=False, log=_quiet)
    nodes = list(Reader(parse_url(str(out)))())
    specs = {type(s).__name__ for s in nodes[0].specs}
    assert {"Label", "Multiscales"} <= specs
    shapes = [tuple(level.shape) for level in nodes[0].data]
    assert shapes == [(288, 320), (144, 160), (72, 80)]
    level0, level1 = read_label_level(out, 0)[:], read_label_level(out, 1)[:]
    np.testing.assert_array_equal(level1, level0[::2, ::2])
    meta = dict(zarr.open_group(str(out), mode="r").attrs)["convscope"]
    assert meta["run"] == "nuclei" and meta["objects"] == level0.max() and meta["block_size"] == 128
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_a_tiff_is_read_block_by_block_through_tifffile(nuclei_image: tuple[np.ndarray, np.ndarray],
                                                        nuclei_zarr: Path, tmp_path: Path) -> None:
    """A tiled TIFF gives the labels of the same image stored as zarr; the channel axis of a YXS TIFF is read."""
    tiff = tmp_path / "nuclei.tif"
    tifffile.imwrite(tiff, nuclei_image[0], tile=(64, 64))
    source = open_large_image(tiff)
    assert source.shape == (288, 320, 1) and source.chunks == (64, 64)
    np.testing.assert_array_equal(source.read(10, 90, 200, 310)[..., 0], nuclei_image[0][10:90, 200:310])
    a, b = tmp_path / "a.ome.zarr", tmp_path / "b.ome.zarr"
    predict_large("nuclei", tiff, a, block_size=224, threads=1, progress=False, log=_quiet)
    predict_large("nuclei", nuclei_zarr, b, block_size=224, threads=1, progress=False, log=_quiet)
    np.testing.assert_array_equal(read_label_level(a)[:], read_label_level(b)[:])
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.stack([nuclei_image[0]] * 3, axis=-1), tile=(64, 64), photometric="rgb")
    assert open_large_image(rgb).read(0, 5, 0, 7).shape == (5, 7, 3)


def test_ome_zarr_input_is_read_at_full_resolution(nuclei_image: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    """An OME-Zarr image (axes c, y, x and a pyramid): level 0 is read, its channel axis moved last."""
    from ome_zarr.writer import write_image

    path = tmp_path / "image.ome.zarr"
    write_image(nuclei_image[0][None], zarr.open_group(str(path), mode="w"), axes="cyx",
                storage_options={"chunks": (1, 64, 64)})
    source = open_large_image(path)
    assert source.shape == (288, 320, 1) and source.axes == "cyx"
    np.testing.assert_array_equal(source.read(0, 288, 0, 320)[..., 0], nuclei_image[0])
    assert is_large_input(path) and not is_large_input(tmp_path / "small.tif")


SEMANTIC = """
task: semantic
data: {dataset: synthetic_bacteria, synthetic_count: 6, synthetic_size: 64, patch_size: 32, patches_per_epoch: 16,
       normalize: {mode: percentile}}
model: {name: unet, options: {depth: 2, base_filters: 4}}
train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}
"""


def test_semantic_masks_block_by_block_equal_the_whole_image(tmp_path: Path) -> None:
    """Blocks are blended as the whole image's tiles are, so a semantic class map is the same, pixel for pixel."""
    recipe = tmp_path / "seg.yaml"
    recipe.write_text(SEMANTIC)
    fit(load_recipe(recipe), tmp_path / "run", log=_quiet)
    run = load_run(tmp_path / "run", device="cpu")
    image = np.random.default_rng(1).integers(0, 4000, size=(150, 170)).astype(np.uint16)
    image[40:90, 50:120] += 3000
    zarr.create_array(str(tmp_path / "img.zarr"), data=image, chunks=(64, 64))
    whole = Predictor(run).segment(image)
    for block in (32, 96):
        out = tmp_path / f"mask{block}.ome.zarr"
        result = predict_large(run, tmp_path / "img.zarr", out, block_size=block, threads=2, progress=False,
                               log=_quiet)
        mask = read_label_level(out)[:]
        assert mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, whole)
        assert result.foreground_fraction == pytest.approx(float((whole > 0).mean()))


@pytest.mark.slow
def test_a_local_cluster_of_two_worker_processes_gives_the_same_labels(nuclei_zarr: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "threads.ome.zarr", tmp_path / "cluster.ome.zarr"
    predict_large("nuclei", nuclei_zarr, a, block_size=160, threads=1, progress=False, log=_quiet)
    messages: list[str] = []
    result = predict_large("nuclei", nuclei_zarr, b, block_size=160, workers=2, progress=False, log=messages.append)
    assert any("dask.distributed" in m and "(2 workers)" in m for m in messages)
    np.testing.assert_array_equal(read_label_level(a)[:], read_label_level(b)[:])
    assert result.objects == read_label_level(b)[:].max()


def test_bad_requests_fail_with_one_line(nuclei_zarr: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "labels.ome.zarr"
    out.mkdir()
    with pytest.raises(ConvscopeError, match="already exists; choose another name or pass --overwrite"):
        predict_large("nuclei", nuclei_zarr, out, progress=False, log=_quiet)
    with pytest.raises(ConvscopeError, match=r"ending in \.ome\.zarr"):
        predict_large("nuclei", nuclei_zarr, tmp_path / "labels", progress=False, log=_quiet)
    with pytest.raises(ConvscopeError, match="inside the input"):
        predict_large("nuclei", nuclei_zarr, nuclei_zarr / "labels.zarr", progress=False, log=_quiet)
    with pytest.raises(ConvscopeError, match="--block-size 100"):
        predict_large("nuclei", nuclei_zarr, tmp_path / "x.zarr", block_size=100, progress=False, log=_quiet)
    with pytest.raises(ConvscopeError, match="--halo 3"):
        predict_large("nuclei", nuclei_zarr, tmp_path / "x.zarr", halo=3, progress=False, log=_quiet)
    with pytest.raises(ConvscopeError, match="no such file"):
        predict_large("nuclei", tmp_path / "missing.zarr", tmp_path / "x.zarr", progress=False, log=_quiet)
    stack = tmp_path / "stack.zarr"
    zarr.create_array(str(stack), data=np.zeros((3, 8, 300, 300), np.uint8), chunks=(1, 1, 100, 100))
    with pytest.raises(ConvscopeError, match="expected"):
        predict_large("nuclei", stack, tmp_path / "x.zarr", progress=False, log=_quiet)
    assert not (tmp_path / "x.zarr").exists()
    import builtins

    real_import = builtins.__import__

    def without(missing: str) -> object:
        def fake_import(name: str, *args: object, **kwargs: object) -> object:
            if name == missing:
                raise ImportError(f"no {name}", name=name)
            return real_import(name, *args, **kwargs)
        return fake_import

    monkeypatch.setattr(builtins, "__import__", without("ome_zarr.writer"))
    with pytest.raises(ConvscopeError, match=r"needs the dask extra: pip install 'convscope\[dask\]'"):
        predict_large("nuclei", nuclei_zarr, tmp_path / "y.zarr", progress=False, log=_quiet)
    monkeypatch.setattr(builtins, "__import__", without("distributed"))
    with pytest.raises(ConvscopeError, match=r"need dask.distributed: pip install 'convscope\[dask\]'"):
        predict_large("nuclei", nuclei_zarr, tmp_path / "y.zarr", workers=2, progress=False, log=_quiet)
    assert not (tmp_path / "y.zarr").exists()


def test_overwrite_replaces_an_earlier_output(nuclei_zarr: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.ome.zarr"
    out.mkdir()
    (out / "old.txt").write_text("earlier")
    predict_large("nuclei", nuclei_zarr, out, block_size=224, overwrite=True, threads=1, progress=False, log=_quiet)
    assert not (out / "old.txt").exists() and read_label_level(out)[:].max() > 0


def test_an_image_thinner_than_a_tile_is_normalised_as_a_whole(nuclei_image: tuple[np.ndarray, np.ndarray],
                                                               tmp_path: Path) -> None:
    """A strip 96 px high (the model's tile is 128) in two blocks: normalised with the whole strip's percentiles and
    stitched, it gives the whole-image labels."""
    strip = nuclei_image[0][:96].copy()
    zarr.create_array(str(tmp_path / "strip.zarr"), data=strip, chunks=(96, 64))
    whole = Predictor(load_run("nuclei", device="cpu")).segment(strip)
    out = tmp_path / "strip.ome.zarr"
    predict_large("nuclei", tmp_path / "strip.zarr", out, block_size=160, threads=1, progress=False, log=_quiet)
    assert matching(whole, read_label_level(out)[:], thresh=0.5).accuracy >= 0.99

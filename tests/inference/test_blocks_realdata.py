"""Block-wise prediction on real nuclei: a 4096 x 4096 mosaic of DSB 2018 fluorescence test images, predicted by the
built-in model whole and block by block (run on demand: ``make test-realdata``; 21 minutes on one thread of the
shared 2-core machine)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.realdata
zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")

MOSAIC = 4096
CELL = 256


def nuclei_mosaic(folder: Path, size: int = MOSAIC) -> np.ndarray:
    """A (size, size) uint8 mosaic of 256 x 256 crops of the grey fluorescence test images of DSB 2018 (each
    kind split on its own; never used to train the built-in model), each repeat rotated by another 90 degrees."""
    from convscope.datasets.folders import load_image
    from convscope.datasets.segmentation import dsb2018_split_ids, image_kinds

    ids = dsb2018_split_ids(image_kinds(folder), ["fluorescence_gray"])[2]
    mosaic = np.zeros((size, size), np.uint8)
    for k in range((size // CELL) ** 2):
        image = load_image(folder / "images" / f"{ids[k % len(ids)]}.png", color="gray")[:CELL, :CELL, 0]
        y, x = divmod(k, size // CELL)
        mosaic[y * CELL:(y + 1) * CELL, x * CELL:(x + 1) * CELL] = np.rot90(image, k // len(ids))
    return mosaic


def test_blocks_of_a_real_mosaic_match_the_whole_image(shared_data: Path, tmp_path: Path) -> None:
    """Three block sizes (none a multiple of the 256 px mosaic cells): matching accuracy at IoU 0.5 between the
    block-wise and the whole-image labels is at least 0.99."""
    import torch

    from convscope import Predictor, load_run, matching
    from convscope.inference.large import predict_large
    from convscope.io.large import read_label_level

    torch.set_num_threads(1)
    folder = shared_data / "dsb2018"
    mosaic = nuclei_mosaic(folder)
    zarr.create_array(str(tmp_path / "mosaic.zarr"), data=mosaic, chunks=(512, 512))
    start = time.perf_counter()
    whole = Predictor(load_run("nuclei", device="cpu")).segment(mosaic)
    print(f"whole image: {len(np.unique(whole)) - 1} objects in {time.perf_counter() - start:.1f} s")
    for block in (520, 768, 1000):
        out = tmp_path / f"labels_{block}.ome.zarr"
        result = predict_large("nuclei", tmp_path / "mosaic.zarr", out, block_size=block, threads=1, progress=False,
                               log=lambda _m: None)
        labels = read_label_level(out)[:]
        m = matching(whole, labels, thresh=0.5)
        print(f"block {block}: {result.objects} objects, accuracy {m.accuracy:.4f} (tp {m.tp}, fp {m.fp}, "
              f"fn {m.fn}), {result.seconds}")
        assert result.objects == len(np.unique(labels)) - 1 == labels.max()
        assert m.accuracy >= 0.99, (block, m)

"""Tiny trained runs (seconds each, trained once per session) and a real DSB 2018 nucleus image for the export
tests."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from convscope.io import read_image

#: One-epoch recipes of each dense task on generated nuclei, small enough to export and test in seconds.
RECIPES = {
    "semantic": "task: semantic\ndata: {dataset: synthetic_nuclei, synthetic_count: 4, synthetic_size: 64, "
                "patch_size: 32, patches_per_epoch: 8, normalize: {mode: percentile}}\n"
                "model: {name: unet, options: {depth: 2, base_filters: 4}}\n",
    "flows": "task: flows\ndata: {dataset: synthetic_nuclei, synthetic_count: 4, synthetic_size: 64, patch_size: 32, "
             "patches_per_epoch: 8}\nmodel: {name: unet, options: {depth: 2, base_filters: 4}}\n",
    "classification": "data: {dataset: synthetic_cells, synthetic_count: 40, synthetic_size: 32}\n"
                      "model: {name: mnist_cnn}\n",
}
TRAIN = "train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}\n"


def _train(root: Path, recipe: str) -> Path:
    import convscope

    (root / "recipe.yaml").write_text(recipe)
    convscope.train(convscope.load_recipe(root / "recipe.yaml"), root / "run", log=lambda _m: None)
    return root / "run"


@pytest.fixture(scope="session")
def semantic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch binary U-Net run (percentile normalisation)."""
    return _train(tmp_path_factory.mktemp("semantic"), RECIPES["semantic"] + TRAIN)


@pytest.fixture(scope="session")
def star_run(tmp_path_factory: pytest.TempPathFactory, tiny_star_recipe: str) -> Path:
    """The tiny star-convex run of ``tiny_star_recipe`` (8 rays, grid 2)."""
    return _train(tmp_path_factory.mktemp("star"), tiny_star_recipe)


@pytest.fixture(scope="session")
def flows_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch Cellpose-style flows run."""
    return _train(tmp_path_factory.mktemp("flows"), RECIPES["flows"] + TRAIN)


@pytest.fixture(scope="session")
def classifier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch mnist_cnn run on 32 x 32 generated cell crops."""
    return _train(tmp_path_factory.mktemp("classifier"), RECIPES["classification"] + TRAIN)


@pytest.fixture(scope="session")
def real_nuclei() -> np.ndarray:
    """A real 128 x 128 grey fluorescence crop of DSB 2018 (CC0; the napari plugin's sample image), (H, W) uint8."""
    image = read_image(Path(str(files("convscope.napari") / "data" / "dsb2018_nuclei.png")))
    return image if image.ndim == 2 else image[..., 0]


@pytest.fixture(autouse=True)
def _package_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unpacked packages go to a fresh cache per test."""
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "cache"))

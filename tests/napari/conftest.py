"""Fixtures of the napari widget tests: tiny trained runs (star-convex, semantic, classification), and the skip when
there is no display."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """GUI tests need a display (run them under `xvfb-run -a`; `QT_QPA_PLATFORM=offscreen` breaks vispy)."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    skip = pytest.mark.skip(reason="napari GUI test: no display; run under `xvfb-run -a` (make test does)")
    for item in items:
        if "tests/napari/" in str(item.fspath).replace(os.sep, "/") and "gui" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_recipe(tiny_star_recipe: str) -> str:
    """The YAML text of a one-epoch star-convex recipe (a few seconds)."""
    return tiny_star_recipe


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_star_recipe: str) -> Path:
    """A one-epoch star-convex run on 4 generated 64 x 64 images (a few seconds); ``CONVSCOPE_TEST_RUN=RUN`` uses
    a finished star-convex run instead (a better model, for the README's screenshots)."""
    if os.environ.get("CONVSCOPE_TEST_RUN"):
        return Path(os.environ["CONVSCOPE_TEST_RUN"])
    return _trained(tmp_path_factory, "napari_run", tiny_star_recipe)


#: One-epoch recipes of the other dense and whole-image tasks (seconds each): a binary U-Net on generated nuclei,
#: and a classifier of generated 40 x 40 cells that it resizes to 32 x 32 (``data.resize``), as files are.
SEMANTIC_RECIPE = """
task: semantic
data: {dataset: synthetic_nuclei, synthetic_count: 6, synthetic_size: 64, patch_size: 32, patches_per_epoch: 8}
model: {name: unet, options: {depth: 2, base_filters: 4}}
train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}
"""
CLASSIFICATION_RECIPE = """
data: {dataset: synthetic_cells, synthetic_count: 24, synthetic_size: 40, resize: [32, 32]}
model: {name: mnist_cnn}
train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}
"""


def _trained(tmp_path_factory: pytest.TempPathFactory, name: str, recipe: str) -> Path:
    from convscope import train
    from convscope.config import load_recipe

    tmp = tmp_path_factory.mktemp(name)
    (tmp / "recipe.yaml").write_text(recipe)
    train(load_recipe(tmp / "recipe.yaml"), tmp / "run", log=lambda _m: None)
    return tmp / "run"


@pytest.fixture(scope="session")
def semantic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch binary semantic (U-Net) run on 6 generated 64 x 64 nuclei images."""
    return _trained(tmp_path_factory, "semantic_run", SEMANTIC_RECIPE)


@pytest.fixture(scope="session")
def classification_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch classifier (abnormal / normal) of 24 generated 40 x 40 cells, resized to 32 x 32."""
    return _trained(tmp_path_factory, "classification_run", CLASSIFICATION_RECIPE)

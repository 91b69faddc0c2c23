"""Shared fixtures: tiny recipes on synthetic data, the real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(os.environ.get("CONVSCOPE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    """The real data sets (../shared/data); the test is skipped when they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set CONVSCOPE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def tiny_recipe(tmp_path: Path) -> Path:
    """A recipe that trains mnist_cnn on 160 synthetic 32x32 cell crops for 2 epochs (about a second)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "data:\n  dataset: synthetic_cells\n  synthetic_count: 160\n  synthetic_size: 32\n"
        "model:\n  name: mnist_cnn\n"
        "train:\n  epochs: 2\n  batch_size: 16\n  seed: 3\n  progress: false\n  num_threads: 1\n"
    )
    return path


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """A class-per-subfolder data set: 2 classes x 12 PNGs of 24x24 RGB, train/ and test/."""
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    root = tmp_path / "cells"
    for split, n in (("train", 12), ("test", 4)):
        for k, name in enumerate(("bright", "dark")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                base = 180 if k == 0 else 60
                img = np.clip(rng.normal(base, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
                iio.imwrite(folder / f"{name}_{i}.png", img)
    return root


#: A one-epoch star-convex recipe on 4 generated 64 x 64 nuclei images (a few seconds).
TINY_STAR_RECIPE = """
task: stardist
data:
  dataset: synthetic_nuclei
  synthetic_count: 4
  synthetic_size: 64
  patch_size: 32
  patches_per_epoch: 16
  normalize: {mode: percentile}
model:
  name: stardist
  options: {depth: 1, base_filters: 4, features: 8}
stardist: {n_rays: 8}
train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1, learning_rate: 0.003}
"""


@pytest.fixture(scope="session")
def tiny_star_recipe() -> str:
    """The YAML text of :data:`TINY_STAR_RECIPE` (the finetune and napari tests start from its run)."""
    return TINY_STAR_RECIPE

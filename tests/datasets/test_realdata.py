"""Loads the real data sets in ../shared/data (run on demand: ``make test-realdata``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convscope.datasets.folders import load_folder_splits
from convscope.datasets.mnist import load_mnist

pytestmark = pytest.mark.realdata


def _need(folder: Path) -> Path:
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (real data sets live in ../shared/data)")
    return folder


def test_real_mnist(shared_data: Path) -> None:
    train, test = load_mnist(_need(shared_data / "mnist"))
    assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert train.images.dtype == np.uint8
    np.testing.assert_array_equal(np.unique(train.labels), np.arange(10))
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_real_rbc(shared_data: Path) -> None:
    train, test = load_folder_splits(_need(shared_data / "rbc"))
    assert test is not None
    assert train.images.shape == (6922, 85, 85, 3) and test.images.shape == (2190, 85, 85, 3)
    assert train.class_names == ("abnormal", "normal")
    np.testing.assert_array_equal(np.bincount(train.labels), [3461, 3461])
    np.testing.assert_array_equal(np.bincount(test.labels), [1095, 1095])


@pytest.mark.parametrize("variant", ["cellpose", "omnipose"])
def test_dsb2018_masks_survive_the_flow_round_trip(shared_data: Path, variant: str) -> None:
    """Masks -> flows -> masks through the flow dynamics reproduces the DSB 2018 nuclei (the first 40 test images of
    the fluorescence split): Cellpose-style flows almost exactly; Omnipose-style flows split a few large, irregular
    nuclei whose distance field has several ridges."""
    from convscope.config import DataConfig
    from convscope.datasets.segmentation import load_segmentation
    from convscope.instances import cellpose_flows, compute_masks, omnipose_flows
    from convscope.metrics import matching_dataset

    _need(shared_data / "dsb2018")
    data = load_segmentation(DataConfig(dataset="dsb2018"), data_dir=shared_data, seed=0, instances=True)
    masks = data.test.masks[:40]
    decoded = []
    for y in masks:
        flows = cellpose_flows(y) if variant == "cellpose" else omnipose_flows(y)[0]
        decoded.append(compute_masks(flows, (y > 0).astype(np.float32), variant=variant, min_size=0))
    m = matching_dataset(masks, decoded, thresh=0.5)
    assert m.n_true > 1000
    assert m.mean_matched_score > 0.98  # the objects found are reproduced almost exactly
    assert m.accuracy > (0.98 if variant == "cellpose" else 0.9)
    assert m.mean_true_score > (0.98 if variant == "cellpose" else 0.9)

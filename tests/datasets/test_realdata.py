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

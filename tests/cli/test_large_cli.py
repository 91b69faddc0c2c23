"""`convscope predict` of an OME-Zarr image: block by block into an OME-Zarr label image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convscope.datasets.nuclei import make_synthetic_nuclei

from .test_cli import assert_user_error, cli

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")


def test_predict_a_zarr_image_block_by_block(monkeypatch, capsys, tmp_path: Path) -> None:
    from convscope.io.large import read_label_level

    image = make_synthetic_nuclei(1, size=(200, 260), seed=5)[0][0]
    source = tmp_path / "big.zarr"
    zarr.create_array(str(source), data=image, chunks=(64, 64))
    out = tmp_path / "labels.ome.zarr"
    code, said, err = cli(monkeypatch, capsys, "predict", "nuclei", source, "--out", out, "--block-size", "128")
    assert code == 0, err
    labels = read_label_level(out)[:]
    assert labels.shape == (200, 260) and labels.max() > 10
    assert f"{labels.max():,} objects, written to {out}" in said and "2 x 3 blocks" in said
    assert_user_error(cli(monkeypatch, capsys, "predict", "nuclei", source, "--out", out), "already exists",
                      "--overwrite")
    assert_user_error(cli(monkeypatch, capsys, "predict", "nuclei", source, "--out", tmp_path / "o.zarr",
                          "--diameter", "30"), "--diameter", "does not rescale")
    assert_user_error(cli(monkeypatch, capsys, "predict", "nuclei", source, source, "--out", tmp_path / "o.zarr"),
                      "takes one image")
    assert not (tmp_path / "o.zarr").exists()
    assert np.array_equal(labels, read_label_level(out)[:])  # the refused runs left it alone

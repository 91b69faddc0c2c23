"""Importing bioimage.io packages: convscope's own load as runs (predict, fine-tune), other tools' run through the
tiled predictor with their declared preprocessing; their outputs match bioimageio.core's own prediction."""

from __future__ import annotations

import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import convscope
from convscope.cli.main import run as cli_run
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.errors import ConvscopeError
from convscope.export import export_run
from convscope.export.package import ForeignModel
from convscope.io import read_image, write_image
from convscope.runs import is_convscope_package, load_run


@pytest.fixture(scope="module")
def star_package(tmp_path_factory: pytest.TempPathFactory, star_run: Path) -> Path:
    """The tiny star-convex run as a bioimage.io package."""
    return export_run(star_run, tmp_path_factory.mktemp("pkg") / "star.zip", test=False).path


def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["convscope", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_run()
    return exit_info.value.code or 0


def test_a_convscope_package_loads_as_its_run(star_package: Path, star_run: Path) -> None:
    assert is_convscope_package(star_package)
    original, imported = load_run(star_run), load_run(star_package)
    assert imported.name == "star" and imported.task.thresholds == original.task.thresholds
    assert imported.normalize == original.normalize and imported.config.task == "stardist"
    image = make_synthetic_nuclei(1, size=(70, 90), seed=4)[0][0]
    a, b = convscope.Predictor(original), convscope.Predictor(imported)
    assert np.array_equal(a.network(image), b.network(image))
    assert np.array_equal(a.segment(image), b.segment(image))
    assert load_run(star_package).path == imported.path  # unpacked once


def test_predict_and_finetune_from_a_package_on_the_cli(star_package: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = make_synthetic_nuclei(3, size=(64, 64), seed=8)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        write_image(tmp_path / "data" / "images" / f"n{i}.tif", image)
        write_image(tmp_path / "data" / "masks" / f"n{i}.tif", label.astype(np.uint16))
    assert _cli(["predict", str(star_package), str(tmp_path / "data" / "images"), "--out", str(tmp_path / "labels")],
                monkeypatch) == 0
    assert read_image(tmp_path / "labels" / "n0_labels.tif").shape == (64, 64)
    assert _cli(["finetune", str(star_package), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "ft"),
                 "--epochs", "1"], monkeypatch) == 0
    tuned = load_run(tmp_path / "ft")
    assert tuned.config.model.weights.endswith("weights.safetensors") and tuned.config.task == "stardist"


def test_damaged_package_weights_are_refused(star_package: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(star_package) as src, zipfile.ZipFile(damaged, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[:-8] + b"\0" * 8 if item.filename == "weights.pt" else data)
    with pytest.raises(ConvscopeError, match=r"sha256.*damaged"):
        load_run(damaged)


class Plain(nn.Module):
    """Not a convscope architecture: a 3x3 convolution; a probability and a scaled second channel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.conv(x)
        return torch.sigmoid(y[:, :1]), 2 * y[:, 1:]


def _foreign_package(folder: Path, formats: tuple[str, ...] = ("onnx", "torchscript")) -> Path:
    """A bioimage.io package of :class:`Plain` with zero_mean_unit_variance preprocessing, written with
    bioimageio.spec as another tool would."""
    from bioimageio.spec import ValidationContext, build_description, save_bioimageio_package

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    net = Plain().eval()
    x = np.random.default_rng(0).uniform(0, 200, (1, 1, 64, 64)).astype(np.float32)
    xn = torch.from_numpy(((x - x.mean()) / (x.std() + 1e-6)).astype(np.float32))
    with torch.no_grad():
        prob, other = net(xn)
    np.save(folder / "raw.npy", x)
    np.save(folder / "prob.npy", prob.numpy())
    np.save(folder / "other.npy", other.numpy())
    weights: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "torchscript" in formats:
            torch.jit.trace(net, xn).save(str(folder / "net.pt"))
            weights["torchscript"] = {"source": "net.pt", "pytorch_version": "2.4"}
        if "onnx" in formats:
            torch.onnx.export(net, (xn,), str(folder / "net.onnx"), dynamo=False, input_names=["raw"],
                              output_names=["prob", "other"], opset_version=17,
                              dynamic_axes={k: {0: "b", 2: "h", 3: "w"} for k in ("raw", "prob", "other")})
            weights["onnx"] = {"source": "net.onnx", "opset_version": 17}
    (folder / "README.md").write_text("# plain\n")

    def axes(reference: bool) -> list:
        size = (lambda a: {"tensor_id": "raw", "axis_id": a}) if reference else (lambda a: {"min": 16, "step": 8})
        return [{"type": "batch"}, {"type": "channel", "channel_names": ["c"]},
                *({"type": "space", "id": a, "size": size(a)} for a in ("y", "x"))]

    rdf = {"format_version": "0.5.12", "type": "model", "name": "plain", "description": "a plain torch module",
           "authors": [{"name": "Someone Else"}], "license": "MIT", "documentation": {"source": "README.md"},
           "cite": [{"text": "none", "url": "https://example.org"}],
           "inputs": [{"id": "raw", "axes": axes(False), "test_tensor": {"source": "raw.npy"},
                       "data": {"type": "float32"},
                       "preprocessing": [{"id": "zero_mean_unit_variance",
                                          "kwargs": {"axes": ["channel", "y", "x"]}}]}],
           "outputs": [{"id": "prob", "axes": axes(True), "test_tensor": {"source": "prob.npy"}},
                       {"id": "other", "axes": axes(True), "test_tensor": {"source": "other.npy"}}],
           "weights": weights}
    with ValidationContext(root=folder, perform_io_checks=True):
        descr = build_description(rdf)
    assert type(descr).__name__ == "ModelDescr", descr.validation_summary.format()
    return Path(save_bioimageio_package(descr, output_path=folder.parent / f"{folder.name}.zip"))


@pytest.mark.parametrize("formats", [("onnx", "torchscript"), ("torchscript",)])
def test_another_tools_package_runs_tiled_as_bioimageio_core_runs_it(formats: tuple[str, ...],
                                                                     tmp_path: Path) -> None:
    from bioimageio.core import Tensor, predict

    package = _foreign_package(tmp_path / "plain", formats)
    model = ForeignModel(package)
    assert model.weight_format == formats[0] and model.tile == 256 and model.overlap == 64
    image = np.random.default_rng(1).uniform(0, 255, (300, 280)).astype(np.float32)  # 2 x 2 tiles
    ours = model.predict(image)
    theirs = predict(model=str(package), inputs={"raw": Tensor.from_numpy(image[None, None],
                                                                          dims=("batch", "channel", "y", "x"))})
    for name, tensor in theirs.members.items():
        assert ours[str(name)].shape == (1, 300, 280)
        assert np.abs(ours[str(name)] - tensor.data.to_numpy()[0]).max() < 1e-5


def test_predict_another_tools_package_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = _foreign_package(tmp_path / "plain")
    write_image(tmp_path / "in" / "cells.tif", np.random.default_rng(2).integers(0, 255, (90, 70), dtype=np.uint8))
    assert _cli(["predict", str(package), str(tmp_path / "in"), "--out", str(tmp_path / "out")], monkeypatch) == 0
    prob = read_image(tmp_path / "out" / "cells_prob.tif")
    assert prob.shape == (90, 70) and prob.dtype == np.float32 and 0 <= prob.min() and prob.max() <= 1
    assert (tmp_path / "out" / "cells_other.tif").is_file()
    assert "cells_prob.tif" in (tmp_path / "out" / "predictions.csv").read_text()
    with pytest.raises(ConvscopeError, match="another tool"):
        load_run(package)  # not a convscope architecture: no evaluation or fine-tuning

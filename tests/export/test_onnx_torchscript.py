"""ONNX and TorchScript exports: files that run without convscope, with dynamic height and width, and give torch
eager's outputs (max absolute difference < 1e-4) on a real DSB 2018 image with the built-in nuclei model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from convscope.cli.main import run as cli_run
from convscope.errors import ConvscopeError
from convscope.export import export_run
from convscope.export.architecture import exported_network
from convscope.export.torchscript import DESCRIPTION_FILE
from convscope.inference import Predictor
from convscope.runs import load_run


def _eager(run, x: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        out = exported_network(run)(torch.from_numpy(x))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_nuclei_export_matches_torch_on_a_real_image(fmt: str, tmp_path: Path, real_nuclei: np.ndarray) -> None:
    run = load_run("nuclei", device="cpu")
    out = tmp_path / ("nuclei.onnx" if fmt == "onnx" else "nuclei.pt")
    result = export_run(run, out, format=fmt)
    assert result.path == out and out.is_file() and result.max_abs_diff < 1e-4
    # the real 128 x 128 crop, and the same crop tiled 2 x 3 (256 x 384): height and width are not fixed
    for image in (real_nuclei, np.tile(real_nuclei, (2, 3))):
        x = Predictor(run).normalized(image)[None]
        if fmt == "onnx":
            session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            found = session.run(None, {"input": x})
            assert [o.name for o in session.get_outputs()] == ["probability", "distances"]
        else:
            with torch.no_grad():
                found = [o.numpy() for o in torch.jit.load(str(out))(torch.from_numpy(x))]
        expected = _eager(run, x)
        assert [f.shape for f in found] == [e.shape for e in expected] == [
            (1, 1, image.shape[0] // 2, image.shape[1] // 2), (1, 32, image.shape[0] // 2, image.shape[1] // 2)]
        assert max(float(np.abs(f - e).max()) for f, e in zip(found, expected, strict=True)) < 1e-4
        assert 0.0 <= found[0].min() and found[0].max() <= 1.0  # a probability, not a logit


def test_exports_carry_convscope_s_description(tmp_path: Path, semantic_run: Path) -> None:
    export_run(semantic_run, tmp_path / "m.onnx", format="onnx")
    export_run(semantic_run, tmp_path / "m.pt", format="torchscript")
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    described = json.loads(meta["convscope"])
    assert described["model_config"]["task"] == "semantic" and described["outputs"][0]["name"] == "probability"
    assert described["recipe"]["data"]["normalize"]["mode"] == "percentile"
    files = {DESCRIPTION_FILE: ""}
    torch.jit.load(str(tmp_path / "m.pt"), _extra_files=files)
    assert json.loads(files[DESCRIPTION_FILE])["size_multiple"] == 4


def test_a_classifier_exports_class_probabilities(tmp_path: Path, classifier_run: Path) -> None:
    run = load_run(classifier_run, device="cpu")
    export_run(run, tmp_path / "c.onnx", format="onnx")
    x = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
    session = onnxruntime.InferenceSession(str(tmp_path / "c.onnx"), providers=["CPUExecutionProvider"])
    probs = session.run(None, {"input": x})[0]
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert np.abs(probs - _eager(run, x)[0]).max() < 1e-5


def test_existing_files_and_wrong_names_are_refused(tmp_path: Path, semantic_run: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"earlier")
    with pytest.raises(ConvscopeError, match="already exists"):
        export_run(semantic_run, tmp_path / "m.onnx", format="onnx")
    assert (tmp_path / "m.onnx").read_bytes() == b"earlier"
    with pytest.raises(ConvscopeError, match=r"\.onnx"):
        export_run(semantic_run, tmp_path / "m.zip", format="onnx")
    with pytest.raises(ConvscopeError, match="unknown export format"):
        export_run(semantic_run, tmp_path / "m.x", format="keras")  # type: ignore[arg-type]
    assert export_run(semantic_run, tmp_path / "m.onnx", format="onnx", overwrite=True).path.stat().st_size > 1000


def _cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["convscope", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_run()
    return exit_info.value.code or 0


def test_export_from_the_cli(tmp_path: Path, semantic_run: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["export", str(semantic_run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")],
                monkeypatch) == 0
    assert (tmp_path / "m.pt").is_file() and "torchscript export written" in capsys.readouterr().out
    assert _cli(["export", str(semantic_run), "--format", "torchscript", "--out", str(tmp_path / "m.pt")],
                monkeypatch) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "Traceback" not in err

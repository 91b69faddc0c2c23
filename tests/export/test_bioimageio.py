"""bioimage.io packages: written with bioimage.io's spec and passing ``bioimageio.core.test_model`` offline for
``pytorch_state_dict``, ``torchscript`` and ``onnx`` weights, for a semantic run and for instance runs (their network
outputs: probability + distances, flows + probability), with the normalisation as declared preprocessing."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import bioimageio.core
import numpy as np
import pytest
import yaml

from convscope.config import MetadataConfig
from convscope.errors import ConvscopeError
from convscope.export import export_run, metadata_with
from convscope.io import write_image
from convscope.pretrained import get_pretrained

META = MetadataConfig(authors=["Ada Lovelace"], license="CC-BY-4.0",
                      cite=[{"text": "Schmidt et al. 2018", "doi": "10.1007/978-3-030-00934-2_30"}])


def _rdf(package: Path) -> dict:
    with zipfile.ZipFile(package) as archive:
        return yaml.safe_load(archive.read("rdf.yaml"))


def _passed_formats(package: Path) -> set[str]:
    summary = bioimageio.core.test_model(package)
    assert summary.status == "passed", summary.format()
    return {d.name.split("(")[-1].rstrip(")") for d in summary.details if d.name.startswith("Reproduce test outputs")}


def test_semantic_package_passes_test_model_in_every_weight_format(tmp_path: Path, semantic_run: Path) -> None:
    result = export_run(semantic_run, tmp_path / "model.zip", metadata=META, test=True)  # test_model runs inside
    assert result.warnings == () and result.max_abs_diff < 1e-4
    rdf = _rdf(result.path)
    assert rdf["inputs"][0]["preprocessing"][1] == {"id": "scale_range", "kwargs": {
        "axes": ["channel", "y", "x"], "min_percentile": 1.0, "max_percentile": 99.8}}
    assert [o["id"] for o in rdf["outputs"]] == ["probability"]
    assert rdf["authors"] == [{"name": "Ada Lovelace"}] and rdf["license"] == "CC-BY-4.0"
    assert rdf["cite"][0]["doi"] == "10.1007/978-3-030-00934-2_30"
    assert rdf["config"]["convscope"]["model_config"]["task"] == "semantic"
    with zipfile.ZipFile(result.path) as archive:
        readme = archive.read("README.md").decode()
        assert {"architecture.py", "cover.png", "weights.pt", "weights.torchscript", "weights.onnx"} <= set(
            archive.namelist())
    assert "## Validation" in readme and "pytorch_state_dict passed, torchscript passed, onnx passed" in readme


@pytest.mark.parametrize("fixture, outputs", [("star_run", ["probability", "distances"]),
                                              ("flows_run", ["flows", "probability"])])
def test_instance_packages_export_the_network_outputs(fixture: str, outputs: list[str], tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    run = request.getfixturevalue(fixture)
    result = export_run(run, tmp_path / "model.zip", test=False)
    assert "no authors, license, cite" in result.warnings[0]
    assert _passed_formats(result.path) == {"pytorch_state_dict", "torchscript", "onnx"}
    rdf = _rdf(result.path)
    assert [o["id"] for o in rdf["outputs"]] == outputs
    decoding = " ".join(o["description"] for o in rdf["outputs"])
    assert "convscope" in decoding  # says how convscope decodes them
    if fixture == "star_run":  # on StarDist's output grid: half the input size
        assert rdf["outputs"][0]["axes"][2]["scale"] == 2.0 and len(rdf["outputs"][1]["axes"][1]["channel_names"]) == 8
        prob = np.load(zipfile.ZipFile(result.path).open("test_probability.npy"))
        assert prob.shape[2] * 2 == np.load(zipfile.ZipFile(result.path).open("test_input.npy")).shape[2]


def test_a_sample_image_becomes_the_test_input(tmp_path: Path, semantic_run: Path, real_nuclei: np.ndarray) -> None:
    write_image(tmp_path / "mine.png", real_nuclei[:100, :90])
    result = export_run(semantic_run, tmp_path / "model.zip", sample=tmp_path / "mine.png", test=False)
    with zipfile.ZipFile(result.path) as archive:
        test_input = np.load(archive.open("test_input.npy"))
    assert test_input.shape == (1, 1, 100, 88)  # cropped to a multiple of the U-Net's size multiple (4)
    assert np.array_equal(test_input[0, 0], real_nuclei[:100, 1:89].astype(np.float32))


def test_metadata_flags_override_the_recipe() -> None:
    base = MetadataConfig(authors=["A"], license="MIT", tags=["nuclei"])
    merged = metadata_with(base, authors=["B", "C"], cite=["Weigert et al.|https://example.org/paper"])
    assert merged.authors == ["B", "C"] and merged.license == "MIT" and merged.tags == ["nuclei"]
    assert merged.cite[0].url == "https://example.org/paper" and merged.cite[0].doi is None
    with pytest.raises(ConvscopeError, match="TEXT\\|DOI"):
        metadata_with(base, cite=["no reference"])


def test_bioimageio_rejects_bad_metadata_with_one_line(tmp_path: Path, semantic_run: Path) -> None:
    with pytest.raises(ConvscopeError, match=r"bioimage\.io rejects the package.*license"):
        export_run(semantic_run, tmp_path / "model.zip", metadata=MetadataConfig(license="not-a-licence"),
                   test=False)
    assert not (tmp_path / "model.zip").exists()


def test_missing_extra_gives_the_install_hint(tmp_path: Path, semantic_run: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bioimageio.core", None)
    with pytest.raises(ConvscopeError, match=r"pip install 'convscope\[bioimageio\]'"):
        export_run(semantic_run, tmp_path / "model.zip")


@pytest.mark.slow
def test_the_built_in_nuclei_model_round_trips_through_a_package(tmp_path: Path, real_nuclei: np.ndarray) -> None:
    import convscope

    result = export_run("nuclei", tmp_path / "nuclei.zip", metadata=META, test=False)
    with zipfile.ZipFile(result.path) as archive:
        readme = archive.read("README.md").decode()
    scores = get_pretrained("nuclei").card["metrics_test_by_kind"]["fluorescence_gray"]
    assert f"fluorescence_gray: images 81, f1@0.5 {scores['f1@0.5']}" in readme and "Limitations:" in readme
    original, imported = convscope.load_run("nuclei", device="cpu"), convscope.load_run(result.path, device="cpu")
    assert imported.name == "nuclei" and not imported.builtin and imported.diameter == original.diameter
    assert np.array_equal(convscope.Predictor(original).segment(real_nuclei),
                          convscope.Predictor(imported).segment(real_nuclei))

"""The built-in models: listing, sha256 check, loading without code, segmenting a generated image."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import convscope.pretrained as pretrained
from convscope.errors import ConvscopeError
from convscope.pretrained import get_pretrained, list_pretrained, load_state_dict, sha256_file


def test_every_model_has_weights_config_and_card() -> None:
    models = list_pretrained()
    assert "nuclei" in [m.name for m in models]
    for m in models:
        assert m.weights.stat().st_size <= 2 * 1024 * 1024
        assert m.model_config["task"] in ("stardist", "flows")
        assert m.card["weights_sha256"] == sha256_file(m.weights)
        assert m.diameter is not None and 5 < m.diameter < 100
        assert m.card["thresholds"] == m.model_config["thresholds"]
        assert {"fluorescence_gray", "brightfield_gray"} <= set(m.card["metrics_test_by_kind"])


def test_weights_load_as_float32_into_the_network() -> None:
    model = get_pretrained("nuclei")
    state = model.state_dict()
    assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    net = model.build()
    assert not net.training
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_unknown_name_lists_the_known_ones_with_a_did_you_mean() -> None:
    with pytest.raises(ConvscopeError, match=r"known: .*nuclei.*Did you mean 'nuclei'"):
        get_pretrained("nucleus")


def test_damaged_weights_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = get_pretrained("nuclei")
    for suffix in (".safetensors", ".json", ".card.json", ".recipe.yaml"):
        shutil.copyfile(source.weights.with_name(f"nuclei{suffix}"), tmp_path / f"nuclei{suffix}")
    monkeypatch.setattr(pretrained, "_folder", lambda: tmp_path)
    assert get_pretrained("nuclei").weights == tmp_path / "nuclei.safetensors"
    data = bytearray((tmp_path / "nuclei.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "nuclei.safetensors").write_bytes(bytes(data))
    with pytest.raises(ConvscopeError, match=r"nuclei\.safetensors: sha256 .* does not match"):
        get_pretrained("nuclei")
    assert [m.name for m in list_pretrained()] == ["nuclei"]  # listing does not hash


def test_load_state_dict_casts_half_to_float(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2, dtype=torch.float16), "n": torch.tensor([3])}, str(tmp_path / "w.safetensors"))
    state = load_state_dict(tmp_path / "w.safetensors")
    assert state["w"].dtype == torch.float32 and state["n"].dtype == torch.int64


@pytest.mark.parametrize("name", ["nuclei", "nuclei-flows"])
def test_grey_nuclei_models_segment_generated_nuclei(name: str) -> None:
    from convscope.datasets.nuclei import make_synthetic_nuclei
    from convscope.inference import Predictor
    from convscope.inference.rescale import segment_at_diameter
    from convscope.metrics import matching

    images, truth = make_synthetic_nuclei(1, size=(192, 192), density=0.15, seed=3)
    segmenter = Predictor.from_run(name, device="cpu")
    labels = segmenter.segment(images[0])
    assert labels.shape == truth[0].shape
    assert matching(truth[0], labels, thresh=0.5).f1 > 0.5
    sized = segment_at_diameter(segmenter, images[0], model_diameter=segmenter.run.diameter)
    assert sized.estimated and sized.labels.shape == truth[0].shape and np.isfinite(sized.diameter)


def test_a_folder_of_the_same_name_is_not_the_built_in_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert pretrained.is_pretrained("nuclei") and not pretrained.is_pretrained("nucleus")
    (tmp_path / "nuclei").mkdir()
    assert not pretrained.is_pretrained("nuclei") and not pretrained.is_pretrained(Path("nuclei"))


def test_stained_model_takes_rgb_and_segments_generated_stained_nuclei() -> None:
    """``nuclei-stained`` (3 input channels): generated nuclei painted dark purple on pink, as haematoxylin and eosin
    colour them, are found; a grey image is refused with the channel hint (the CLI converts it)."""
    from scipy import ndimage

    from convscope.datasets.nuclei import make_synthetic_nuclei
    from convscope.inference import Predictor
    from convscope.metrics import matching

    _, truth = make_synthetic_nuclei(1, size=(192, 192), density=0.15, seed=3)
    cover = ndimage.gaussian_filter((truth[0] > 0).astype(np.float64), 1.0)[..., None]
    pink, purple = np.array([235.0, 190.0, 210.0]), np.array([105.0, 65.0, 150.0])
    noise = np.random.default_rng(0).normal(0, 8, (192, 192, 3))
    rgb = (pink * (1 - cover) + purple * cover + noise).clip(0, 255).astype(np.uint8)
    segmenter = Predictor.from_run("nuclei-stained", device="cpu")
    assert segmenter.run.channels == 3
    assert matching(truth[0], segmenter.segment(rgb), thresh=0.5).f1 > 0.7
    with pytest.raises(ConvscopeError, match="the model takes 3"):
        segmenter.segment(rgb[..., 0])

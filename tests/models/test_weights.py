"""Starting weights: published checkpoints (offline through a local file URL) and local files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from convscope.errors import ConvscopeError
from convscope.models import create_model, load_weights
from convscope.models import weights as weights_mod
from convscope.models.vgg16 import vgg16_features


def _torchvision_style_vgg16(path: Path) -> dict[str, torch.Tensor]:
    """A state dict laid out as torchvision's vgg16 (features.* + classifier.*), random values."""
    torch.manual_seed(1)
    state = {f"features.{k}": v.clone() for k, v in vgg16_features().state_dict().items()}
    state["classifier.0.weight"] = torch.randn(8, 4)
    torch.save(state, path)
    return state


def test_imagenet_weights_download_hash_and_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "vgg16-local.pth"
    state = _torchvision_style_vgg16(src)
    prefix = hashlib.sha256(src.read_bytes()).hexdigest()[:8]
    ckpt = weights_mod.Checkpoint(src.as_uri(), prefix, "features.")
    monkeypatch.setitem(weights_mod.PUBLISHED, "vgg16_transfer", ckpt)
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "cache"))
    model = create_model("vgg16_transfer")
    loaded = load_weights(model, "vgg16_transfer", "imagenet")
    assert len(loaded) == 26  # 13 convs x (weight, bias)
    assert torch.equal(model.features[28].weight, state["features.28.weight"])
    assert (tmp_path / "cache" / "weights" / src.name).is_file()


def test_imagenet_hash_mismatch_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "vgg16-bad.pth"
    _torchvision_style_vgg16(src)
    monkeypatch.setitem(weights_mod.PUBLISHED, "vgg16_transfer",
                        weights_mod.Checkpoint(src.as_uri(), "00000000", "features."))
    monkeypatch.setenv("CONVSCOPE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConvscopeError, match=r"vgg16-bad\.pth"):
        load_weights(create_model("vgg16_transfer"), "vgg16_transfer", "imagenet")
    assert not (tmp_path / "cache" / "weights" / src.name).exists()


def test_local_safetensors_round_trip(tmp_path: Path) -> None:
    a, b = create_model("mnist_cnn"), create_model("mnist_cnn")
    save_file(a.state_dict(), tmp_path / "w.safetensors")
    load_weights(b, "mnist_cnn", str(tmp_path / "w.safetensors"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(ConvscopeError, match="cannot load weights safely"):
        load_weights(create_model("mnist_cnn"), "mnist_cnn", str(path))


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    save_file(create_model("dense_10").state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ConvscopeError, match="does not fit model 'mnist_cnn'"):
        load_weights(create_model("mnist_cnn"), "mnist_cnn", str(tmp_path / "w.safetensors"))

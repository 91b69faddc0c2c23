"""Starting weights: published checkpoints (URL + hash, cached) and local files.

Loading never executes code from the file: ``.safetensors`` via safetensors, ``.pt``/``.pth`` via
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from convscope.errors import ConvscopeError


@dataclass(frozen=True)
class Checkpoint:
    """A published checkpoint: where it is, the sha256 prefix that names it, and which keys to take."""

    url: str
    hash_prefix: str
    key_prefix: str  # keys of the checkpoint to keep (e.g. "features." for a conv base)


# torchvision's VGG16 ImageNet weights (IMAGENET1K_V1); torchvision names files by the sha256 prefix.
PUBLISHED: dict[str, Checkpoint] = {
    "vgg16_transfer": Checkpoint("https://download.pytorch.org/models/vgg16-397923af.pth", "397923af", "features."),
    "vgg16_finetune": Checkpoint("https://download.pytorch.org/models/vgg16-397923af.pth", "397923af", "features."),
}


def weights_cache() -> Path:
    """Folder for downloaded checkpoints: ``$CONVSCOPE_CACHE/weights`` (default ``~/.cache/convscope``)."""
    root = os.environ.get("CONVSCOPE_CACHE") or Path.home() / ".cache" / "convscope"
    return Path(root) / "weights"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` or a torch ``.pt``/``.pth`` file, without executing code."""
    path = Path(path)
    if not path.is_file():
        raise ConvscopeError(f"{path}: weights file not found; give a .safetensors or .pt file, or weights: imagenet")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or a pickle that needs code to load
        raise ConvscopeError(f"{path}: cannot load weights safely ({type(err).__name__}); use a .safetensors "
                             "file or a plain state dict saved with torch.save") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConvscopeError(f"{path}: not a state dict of tensors")
    return state


def fetch_published(model_name: str) -> Path:
    """Download (once) the published checkpoint of ``model_name`` into the cache, checking its hash."""
    if model_name not in PUBLISHED:
        have = ", ".join(sorted(PUBLISHED))
        raise ConvscopeError(f"model '{model_name}' has no published weights (models with some: {have})")
    ckpt = PUBLISHED[model_name]
    dest = weights_cache() / Path(ckpt.url).name
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(ckpt.url, str(dest), hash_prefix=ckpt.hash_prefix, progress=True)
    except RuntimeError as err:  # hash mismatch
        raise ConvscopeError(f"{ckpt.url}: {err}; delete {dest} and retry") from None
    except OSError as err:
        raise ConvscopeError(
            f"cannot download {ckpt.url} ({err}); without internet, copy the file to {dest} "
            "or set model.weights to a local path"
        ) from None
    return dest


def load_weights(model: nn.Module, model_name: str, weights: str) -> list[str]:
    """Load starting weights into ``model``.

    Parameters
    ----------
    model : nn.Module
        A freshly created model.
    model_name : str
        Its registry name (decides which published checkpoint ``"imagenet"`` means).
    weights : str
        ``"imagenet"`` or a path to a file holding either a full state dict of this model or (for the
        VGG16 models) a torchvision VGG16 state dict.

    Returns
    -------
    list of str
        The names of the model's tensors that were loaded.
    """
    if weights == "imagenet":
        state, source = read_state_dict(fetch_published(model_name)), PUBLISHED[model_name].url
    else:
        state, source = read_state_dict(weights), weights
    own = model.state_dict()
    if set(state) == set(own):
        loaded = state
    elif model_name in PUBLISHED:
        prefix = PUBLISHED[model_name].key_prefix
        loaded = {k: v for k, v in state.items() if k.startswith(prefix)}
    else:
        loaded = {}
    missing = [k for k in loaded if k not in own]
    bad = [k for k, v in loaded.items() if k in own and own[k].shape != v.shape]
    if not loaded or missing or bad:
        what = f"'{(missing or bad)[0]}'" if (missing or bad) else "no matching tensors"
        raise ConvscopeError(
            f"{source}: does not fit model '{model_name}' ({what}); check model.name and model.weights"
        )
    model.load_state_dict(loaded, strict=set(loaded) == set(own))
    return sorted(loaded)

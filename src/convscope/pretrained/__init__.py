"""Built-in trained models: safetensors weights, the run's ``model/config.json`` and a model card, in package data.

Each model ``NAME`` is four files next to this module: ``NAME.safetensors`` (the weights, half precision where
that changes no reported metric), ``NAME.json`` (the exact ``model/config.json`` of the run that trained it: task,
model name and options, normalisation, tuned thresholds), ``NAME.recipe.yaml`` (the resolved recipe it was trained
with: the starting point of ``convscope finetune NAME``) and ``NAME.card.json`` (training data and licence, the
recipe that reproduces it, the median object diameter of its training data, metrics on the DSB 2018 test split by
image kind, and the sha256 of the weights file). Loading never executes code from the files (JSON + safetensors),
and the weights are checked against the recorded sha256 before use.

This package sits below ``convscope.runs``, ``training`` and ``inference``: they build on :func:`get_pretrained`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from convscope.errors import ConvscopeError

__all__ = ["PretrainedModel", "get_pretrained", "is_pretrained", "list_pretrained", "load_state_dict", "sha256_file"]


@dataclass(frozen=True)
class PretrainedModel:
    """A built-in trained model.

    Attributes
    ----------
    name : str
        The name used everywhere (``convscope predict NAME ...``).
    description : str
        One line for ``convscope models --pretrained``.
    model_config : dict
        The run's ``model/config.json`` (format, task, model name/options, input_shape, normalize, thresholds).
    weights : Path
        The ``.safetensors`` file (float16 or float32 tensors).
    card : dict
        The model card (data, licence, recipe, diameter, thresholds, metrics, ``weights_sha256``).
    recipe : dict
        The resolved recipe it was trained with (``NAME.recipe.yaml``; provenance and data path removed).
    """

    name: str
    description: str
    model_config: dict[str, Any]
    weights: Path
    card: dict[str, Any]
    recipe: dict[str, Any]

    @property
    def diameter(self) -> float | None:
        """Median object diameter of the training data in pixels (``sqrt(4 * area / pi)``), if recorded."""
        value = self.card.get("diameter")
        return float(value) if value is not None else None

    def state_dict(self) -> dict[str, Any]:
        """The weights as float32 torch tensors (:func:`load_state_dict`)."""
        return load_state_dict(self.weights)

    def build(self) -> Any:
        """The network (``torch.nn.Module``, float32, eval mode, on the CPU) with these weights."""
        from convscope.models import create_model

        options = dict(self.model_config["model"]["options"])
        options["input_size"] = tuple(options["input_size"])
        model = create_model(self.model_config["model"]["name"], **options)
        model.load_state_dict(self.state_dict())
        return model.eval()


def _folder() -> Path:
    return Path(str(files("convscope.pretrained")))


def _names() -> list[str]:
    return sorted(p.name[: -len(".card.json")] for p in _folder().glob("*.card.json"))


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConvscopeError(f"{path}: cannot read the built-in model file ({err})") from None


def _read_recipe(path: Path) -> dict[str, Any]:
    try:
        recipe = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConvscopeError(f"{path}: cannot read the built-in model file ({err})") from None
    if not isinstance(recipe, dict):
        raise ConvscopeError(f"{path}: not a recipe (a YAML mapping); reinstall convscope")
    recipe.pop("provenance", None)
    return recipe


def _load(name: str, *, check: bool) -> PretrainedModel:
    folder = _folder()
    card = _read_json(folder / f"{name}.card.json")
    weights = folder / f"{name}.safetensors"
    if not weights.is_file():
        raise ConvscopeError(f"{weights}: the weights of built-in model '{name}' are missing (reinstall convscope)")
    if check:
        found = sha256_file(weights)
        if found != card.get("weights_sha256"):
            raise ConvscopeError(f"{weights}: sha256 {found[:12]}... does not match the model card's "
                                 f"{str(card.get('weights_sha256'))[:12]}...; the file is damaged (reinstall)")
    return PretrainedModel(name=name, description=str(card.get("description", "")),
                           model_config=_read_json(folder / f"{name}.json"), weights=weights, card=card,
                           recipe=_read_recipe(folder / f"{name}.recipe.yaml"))


def list_pretrained() -> list[PretrainedModel]:
    """The built-in models, sorted by name (weights not hashed: :func:`get_pretrained` checks them)."""
    return [_load(name, check=False) for name in _names()]


def is_pretrained(source: str | Path) -> bool:
    """Whether ``source`` names a built-in model: a known name that is not an existing file or folder (a run
    directory called ``nuclei`` is that run)."""
    return str(source) in _names() and not Path(source).exists()


def get_pretrained(name: str) -> PretrainedModel:
    """The built-in model ``name``, its weights' sha256 checked against the model card.

    Raises
    ------
    ConvscopeError
        Unknown name (the known ones listed, with a did-you-mean), or weights whose sha256 differs.
    """
    known = _names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConvscopeError(f"'{name}' is not a built-in model; known: {', '.join(known) or 'none'}.{hint}")
    return _load(name, check=True)


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """Read a safetensors file (no code executed) and return float32 tensors (float16 ones are cast up).

    Returns
    -------
    dict of str to torch.Tensor
        Parameter and buffer name -> tensor, floating tensors float32, integer ones (e.g. batch-norm counters)
        unchanged.
    """
    from safetensors.torch import load_file

    state = load_file(str(path), device="cpu")
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}

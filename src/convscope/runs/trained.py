"""A trained run loaded for use: ``load_run(path) -> TrainedRun``, the one way every consumer (evaluation,
prediction, the CLI, the napari plugin, export) gets a model, its task, its normalisation and its tiling."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from convscope.config import RunConfig, parse_config
from convscope.errors import ConvscopeError
from convscope.models import create_model
from convscope.pretrained import get_pretrained, is_pretrained
from convscope.runs.layout import RunDir, read_run_config
from convscope.runs.package import is_package, package_diameter, package_name, unpack_package
from convscope.runs.runtime import resolve_device
from convscope.tasks import Task, task_from_model_config
from convscope.transforms.normalize import NormalizeConfig


@dataclass
class TrainedRun:
    """A trained model with everything needed to use it.

    Attributes
    ----------
    name : str
        The run directory's name.
    run : RunDir
        Its files.
    config : RunConfig
        The resolved recipe it was trained with.
    model_config : dict
        ``model/config.json``: architecture, classes, normalisation, task settings and tuned thresholds.
    task : Task
        The task, with the tuned thresholds; replace it (``run.task = run.task.with_thresholds(...)``) to decode
        with others.
    model : torch.nn.Module
        The network with its best weights, in eval mode, on ``device``.
    device : torch.device
    normalize : NormalizeConfig
        The intensity normalisation of its training images.
    finished : bool
        False when training was interrupted: the weights are those of the best epoch so far.
    """

    name: str
    run: RunDir
    config: RunConfig
    model_config: dict[str, Any]
    task: Task
    model: nn.Module
    device: torch.device
    normalize: NormalizeConfig
    finished: bool
    #: Median object diameter (pixels) of the training data when it is known (built-in models' cards).
    diameter: float | None = None
    #: A built-in model (``convscope models --pretrained``), not a run directory.
    builtin: bool = False

    @property
    def path(self) -> Path:
        return self.run.path

    def interruption(self) -> str | None:
        """None for a finished run; else one line: how far its training got and what is used (a warning)."""
        if self.finished:
            return None
        done, planned = len(self.run.read_history()), self.config.train.epochs
        return (f"warning: {self.path} is an interrupted run (stopped after epoch {done} of {planned}): using the "
                f"best weights of those {done} epoch(s), not of a finished run; its files are left as they are "
                f"(`convscope resume {self.path}` finishes it)")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(H, W, C) the model was built for: the image size of a classifier, the training patch of a segmenter."""
        h, w, c = self.model_config["input_shape"]
        return int(h), int(w), int(c)

    @property
    def channels(self) -> int:
        return self.input_shape[2]

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.model_config["class_names"])

    @property
    def tile(self) -> int:
        """Side of the tiles a dense task predicts an image in: the training patch."""
        return self.input_shape[0]

    @property
    def overlap(self) -> int:
        """Overlap of neighbouring tiles: a quarter of the tile, a multiple of the task's output grid."""
        g = self.task.grid
        return self.tile // 4 // g * g


def load_run(source: str | Path, *, device: str = "auto") -> TrainedRun:
    """Load a finished (or interrupted) run directory for evaluation, prediction or export.

    Parameters
    ----------
    source : str or Path
        A run directory (``convscope train ... --out RUN``), the name of a built-in model (``nuclei``; its
        weights' sha256 is checked against its model card first), or a bioimage.io package convscope exported
        (``.zip``, rdf file or folder; unpacked into the cache once, :func:`convscope.runs.package.unpack_package`).
    device : str
        ``auto`` (CUDA, then MPS, then the CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``.

    Raises
    ------
    ConvscopeError
        Not a run directory, or a corrupt ``model/config.json`` or weights file (the message names the file).
        Loading executes no code from the files (safetensors + JSON).
    """
    if is_pretrained(source):
        return _load_builtin(str(source), device)
    if is_package(source):
        trained = load_run(unpack_package(source).path, device=device)
        trained.name, trained.diameter = package_name(source), package_diameter(source)
        return trained
    run = RunDir.open(source)
    model_config = run.read_model_config()
    task, normalize = _task_and_normalization(model_config, run.model_config)
    config = read_run_config(run)
    dev = resolve_device(device)
    model = build_trained_model(model_config, run.weights).to(dev).eval()
    return TrainedRun(name=run.path.resolve().name, run=run, config=config, model_config=model_config,
                      task=task, model=model, device=dev, normalize=normalize, finished=not run.checkpoint.is_file())


def _task_and_normalization(model_config: dict[str, Any], path: Path) -> tuple[Task, NormalizeConfig]:
    """The task and normalisation a ``model/config.json`` records; one line naming ``path`` when it lacks them or
    holds values of the wrong kind."""
    try:
        shape = model_config["input_shape"]
        if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
            raise ValueError(f"input_shape {shape!r} is not [H, W, C]")
        return task_from_model_config(model_config), NormalizeConfig(**model_config["normalize"])
    except ConvscopeError as err:
        raise ConvscopeError(f"{path}: {err}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        what = f"no {err}" if isinstance(err, KeyError) else str(err).strip().splitlines()[0][:160]
        raise ConvscopeError(f"{path}: not a convscope model config ({what}); restore the file or retrain the "
                             "run") from None


def _load_builtin(name: str, device: str) -> TrainedRun:
    """A built-in model as a trained run: its config, task and weights from the package (``convscope.pretrained``)."""
    builtin = get_pretrained(name)
    config = builtin.model_config
    dev = resolve_device(device)
    model = build_trained_model(config, builtin.weights).to(dev).eval()
    recipe = parse_config(builtin.recipe, source=f"{builtin.weights.parent / name}.recipe.yaml")
    return TrainedRun(name=name, run=RunDir(builtin.weights.parent), config=recipe, model_config=config,
                      task=task_from_model_config(config), model=model, device=dev,
                      normalize=NormalizeConfig(**config["normalize"]), finished=True, diameter=builtin.diameter,
                      builtin=True)


def build_trained_model(model_config: dict[str, Any], weights: Path) -> nn.Module:
    """The network ``model_config`` describes, with the weights of the safetensors file ``weights`` (fp16 weights
    are cast to the model's dtype); one-line errors naming the file for corrupt or mismatching weights."""
    config_path = weights.parent / "config.json"
    try:
        options = dict(model_config["model"]["options"])
        options["input_size"] = tuple(options["input_size"])
        model = create_model(model_config["model"]["name"], **options)
    except ConvscopeError as err:
        raise ConvscopeError(f"{config_path}: {err}") from None
    except (KeyError, TypeError, ValueError) as err:
        raise ConvscopeError(f"{config_path}: not a convscope model config ({err}); "
                             "re-export or retrain the run") from None
    try:
        state = load_file(weights, device="cpu")
    except (SafetensorError, OSError) as err:
        raise ConvscopeError(f"{weights}: not a readable safetensors weights file ({err}); retrain the run or "
                             "restore the file") from None
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) if k in reference else v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        first = first if len(first) <= 160 else first[:157] + "..."
        raise ConvscopeError(f"{weights}: the weights do not fit the model of {weights.parent / 'config.json'} "
                             f"({first}); use the weights saved with that config") from None
    return model


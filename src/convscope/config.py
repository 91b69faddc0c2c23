"""Typed recipe: the sections ``data``, ``model``, ``augment``, ``train`` and ``metadata``.

A recipe is YAML. Unknown keys are rejected with the key's dotted name; ``--set a.b=value`` overrides
any dotted key and is validated the same way. The resolved recipe (every default filled in, plus the
seed and package versions) is written to ``RUN/config.yaml``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model, field_validator

from convscope.errors import ConvscopeError
from convscope.sections import Section
from convscope.tasks import TASKS
from convscope.transforms.augment import AugmentConfig
from convscope.transforms.normalize import NormalizeConfig

#: The image kinds of ``dsb2018/image_types.csv``.
DsbKind = Literal["fluorescence_gray", "brightfield_gray", "color_stained"]


class DataConfig(Section):
    """Where the images come from and how they are split.

    ``dataset`` is a registered name (``convscope data list``): ``mnist``, ``rbc``, ``folder`` (your own
    class-per-subfolder images at ``path``) or ``synthetic_cells``. ``path`` overrides the data folder
    (else ``--data``, then ``$CONVSCOPE_DATA``, then the download cache).
    """

    dataset: str = "synthetic_cells"
    path: Path | None = None
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="only when the data has no test split")
    resize: tuple[int, int] | None = None
    color: Literal["auto", "gray", "rgb"] = "auto"
    max_train_images: int | None = Field(None, gt=0, description="subsample the training split (seeded)")
    synthetic_count: int = Field(1200, gt=0, description="images per split for synthetic data sets")
    synthetic_size: int = Field(40, ge=16)
    patch_size: int = Field(256, ge=16, description="semantic: training patch side (a multiple of 2**unet depth)")
    patches_per_epoch: int = Field(400, gt=0, description="semantic: random training patches per epoch")
    images_per_epoch: int | None = Field(None, gt=1, description="classification: training images per epoch, "
                                         "the training set reshuffled as often as needed (default: one pass)")
    foreground_bias: float = Field(0.5, ge=0.0, le=1.0, description="semantic: share of patches centred on "
                                   "foreground")
    normalize: NormalizeConfig = NormalizeConfig()
    holdout: bool = Field(True, description="paired: hold out validation and test images (the fixed split); "
                          "false = every pair trains, validation reuses them, no test split (fine-tuning on a "
                          "few corrected images)")
    kinds: tuple[DsbKind, ...] = Field(("fluorescence_gray",), min_length=1,
                                       description="dsb2018: image kinds to load (image_types.csv), each "
                                       "split on its own; color_stained needs color: rgb for an RGB model")


class ModelConfig(Section):
    """A registered model (``convscope models``), its options and its starting weights.

    ``weights``: ``null`` (random initialisation), ``imagenet`` (the published checkpoint for models that
    have one) or a path to a ``.safetensors`` / ``.pt`` / ``.pth`` file.
    """

    name: str = "mnist_cnn"
    weights: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)



class EarlyStoppingConfig(Section):
    """Stop when validation loss has not improved by ``min_delta`` for ``patience`` epochs (0 = never)."""

    patience: int = Field(0, ge=0)
    min_delta: float = Field(0.0, ge=0.0)


class LrPlateauConfig(Section):
    """Multiply the learning rate by ``factor`` when validation loss has not improved for ``patience`` epochs
    (Keras' and StarDist's ReduceLROnPlateau), down to ``min_lr``; ``patience: 0`` = never."""

    patience: int = Field(0, ge=0)
    factor: float = Field(0.5, gt=0.0, lt=1.0)
    min_lr: float = Field(1e-6, ge=0.0)


class TrainConfig(Section):
    """The fit loop: Adam, task loss plus optional L1/L2 weight penalties."""

    epochs: int = Field(10, gt=0)
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(1e-3, gt=0.0)
    loss: str = Field("bce_dice", description="semantic: bce, weighted_bce, dice, bce_dice, focal (binary); "
                      "ce_dice (multi-class)")
    seed: int = 0
    l1: float = Field(0.0, ge=0.0, description="L1 penalty on conv/dense weights (Keras kernel_regularizer)")
    l2: float = Field(0.0, ge=0.0, description="L2 penalty on conv/dense weights (Keras kernel_regularizer)")
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    lr_plateau: LrPlateauConfig = LrPlateauConfig()
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps")
    num_threads: int | None = Field(None, gt=0, description="CPU threads; default: all cores")
    channels_last: bool = Field(True, description="NHWC memory layout for convolutions (faster on CPU, see BENCHMARKS)")
    compile: bool = False
    precision: Literal["float32", "bfloat16"] = Field(
        "float32", description="bfloat16: convolutions and dense layers of the training step in bfloat16 (autocast; "
        "weights, loss and evaluation stay float32): on a CPU with AMX / AVX-512 BF16 a vgg1 step is 2.5-3x "
        "faster, a star-convex one 1.4x (see BENCHMARKS.md); it learns a little less per epoch (give it more "
        "epochs); slower on CPUs without bfloat16 units")
    progress: bool = True
    time_limit: float | None = Field(None, gt=0.0, description="minutes of training; no new epoch starts once "
                                     "the next one would pass the limit (the run then finishes normally)")



class CitationConfig(Section):
    """One citation of a model: free text and a DOI or a URL."""

    text: str
    doi: str | None = None
    url: str | None = None


class MetadataConfig(Section):
    """Who made the model and how to cite it, for ``convscope export --format bioimageio`` (its flags override):
    ``name`` and ``description`` (default: from the run), ``authors`` (names), ``license`` (an SPDX id such as
    ``CC-BY-4.0`` or ``MIT``), ``cite`` (``{text, doi}`` or ``{text, url}``), ``tags``."""

    name: str | None = None
    description: str | None = None
    authors: list[str] = Field(default_factory=list)
    license: str | None = None
    cite: list[CitationConfig] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)


class _Recipe(Section):
    """The sections every recipe has; :data:`RunConfig` adds one section per task that has options."""

    task: str = "classification"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    metadata: MetadataConfig = MetadataConfig()

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        if name not in TASKS:
            close = difflib.get_close_matches(name, list(TASKS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown task '{name}'{hint}; known: {', '.join(TASKS)}")
        return name


#: A whole recipe: ``task``, ``data``, ``model``, ``augment``, ``train``, and the section of every registered task
#: that has options (``stardist``, ``flows``), each the task's own :attr:`section` (its defaults written once).
RunConfig = create_model(
    "RunConfig", __base__=_Recipe, __module__=__name__, __doc__="A whole recipe (see the module docstring).",
    **{name: (task.section, task.section()) for name, task in TASKS.items() if task.section is not None})


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys.extend(_known_keys(ann, prefix + name + "."))
    return keys


def _format_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, _known_keys(RunConfig), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys: {', '.join(_known_keys(RunConfig))}"
        return f"{source}: unknown key '{key}'{hint}"
    return f"{source}: bad value for '{key}': {first['msg']}"


def parse_config(raw: dict[str, Any], *, source: str = "recipe") -> RunConfig:
    """Validate a raw recipe mapping; raise :class:`ConvscopeError` naming the offending key."""
    if not isinstance(raw, dict):
        raise ConvscopeError(f"{source}: a recipe must be a YAML mapping with sections data, model, train")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConvscopeError(_format_error(err, source)) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML recipe, apply ``key=value`` overrides and validate.

    Parameters
    ----------
    path : str or Path
        The recipe file.
    overrides : list of str, optional
        ``"train.epochs=2"``-style dotted overrides; values are parsed as YAML scalars.
    """
    path = Path(path)
    if not path.is_file():
        raise ConvscopeError(f"{path}: recipe not found; give the path of a .yaml recipe (see examples/)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConvscopeError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    raw = apply_overrides(raw, overrides or [])
    return parse_config(raw, source=str(path))


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with dotted ``key=value`` overrides applied (values parsed as YAML)."""
    raw = yaml.safe_load(yaml.safe_dump(raw)) or {}
    known = set(_known_keys(RunConfig))
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConvscopeError(f"--set {item!r}: expected key=value, e.g. --set train.epochs=2")
        top = key.split(".")
        # model.options.* is free-form (checked by the model factory); everything else must be known.
        if key not in known and not (len(top) > 2 and top[0] == "model" and top[1] == "options"):
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConvscopeError(f"--set {key}: unknown key{hint}")
        node = raw
        for part in top[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConvscopeError(f"--set {key}: '{part}' is not a section")
        node[top[-1]] = yaml.safe_load(value)
    return raw


def dump_config(config: RunConfig, extra: dict[str, Any] | None = None) -> str:
    """The resolved recipe as YAML text, with ``extra`` (versions, ...) appended."""
    data = config.model_dump(mode="json")
    if extra:
        data.update(extra)
    return yaml.safe_dump(data, sort_keys=False)

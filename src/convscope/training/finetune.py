"""Fine-tuning: a new run that starts from a trained run's weights and architecture and trains on new image /
label pairs (the human-in-the-loop step: correct a few images, retrain, repeat).

:func:`finetune_recipe` makes the recipe (a :class:`RunConfig`) from the old run's ``config.yaml``: same task,
model, normalisation and loss, ``model.weights`` = the old run's ``model/weights.safetensors``, ``data`` = the
``paired`` folder of new pairs; :func:`convscope.finetune` writes that recipe's run with :func:`convscope.train`, so the
new run directory is complete (config, history, curves, report, tuned thresholds).

With fewer than :data:`HOLDOUT_MIN` images every pair trains (``data.holdout: false``: validation reuses them,
no test split), as a user who corrected three images expects; from there on the fixed seeded split holds some out.
With ``mix_original`` the new pairs are mixed with up to that many images of the old run's training split: both
are copied into ``NEW_RUN_data/`` beside the new run (``new_<stem>`` and ``orig_<n>``), which the new run's
``config.yaml`` names as its data folder, so ``convscope resume`` works.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from convscope.config import RunConfig, parse_config
from convscope.datasets.paired import load_paired_folder
from convscope.datasets.segmentation import load_segmentation
from convscope.errors import ConvscopeError
from convscope.io.image import write_image
from convscope.pretrained import get_pretrained, is_pretrained
from convscope.runs.layout import read_run_config
from convscope.runs.package import open_run_dir

Log = Callable[[str], None]

#: The fine-tuning learning rate as a multiple of the starting recipe's: the same rate (bench/finetune_loop.py:
#: 10 x 128 patches from the built-in model on DSB's stained images, held-out accuracy 0.36-0.40 at k = 1-10
#: corrected images against 0.32-0.34 at a tenth of it).
FINETUNE_LR_FACTOR = 1.0
#: Pairs a held-out split needs: at least one each for training, validation and test.
MIN_PAIRS = 3
#: From this many images on, fine-tuning holds out validation and test images by default; below it, every
#: corrected image trains (a user who corrected 3 images expects all 3 to count, as in Cellpose's loop).
HOLDOUT_MIN = 20


def finetune_recipe(run: str | Path, data: str | Path, *, epochs: int | None = None,
                    learning_rate: float | None = None) -> RunConfig:
    """The recipe of a fine-tuning run of ``run`` on the ``paired`` folder ``data``.

    Parameters
    ----------
    run : str or Path
        A finished run directory (instance or semantic segmentation), a bioimage.io package convscope exported
        from one, or a built-in model's name (``nuclei``).
    data : str or Path
        A folder with ``images/`` and ``masks/`` (same stems; instance labels for instance runs).
    epochs : int, optional
        Training epochs (default: the old recipe's).
    learning_rate : float, optional
        Default: :data:`FINETUNE_LR_FACTOR` times the old recipe's.

    Returns
    -------
    RunConfig
        The old recipe with ``model.weights`` set to the old weights (or the built-in model's name),
        ``data.dataset: paired``, ``data.path``, and
        ``data.color`` fixed to the model's channels (``gray`` for 1, ``rgb`` for 3).
    """
    config, weights, model_config = _starting_point(run)
    if config.task == "classification":
        raise ConvscopeError(f"{run}: a classification run; fine-tuning on image/mask pairs needs a segmentation run")
    raw: dict[str, Any] = config.model_dump(mode="json")
    raw["model"]["weights"] = weights
    channels = int(model_config["input_shape"][2])
    color = {1: "gray", 3: "rgb"}.get(channels, raw["data"]["color"])  # what the model takes (DSB: RGBA -> grey)
    raw["data"].update(dataset="paired", path=str(Path(data).resolve()), color=color)
    raw["train"]["epochs"] = epochs if epochs is not None else raw["train"]["epochs"]
    if learning_rate is None:
        learning_rate = raw["train"]["learning_rate"] * FINETUNE_LR_FACTOR
    raw["train"]["learning_rate"] = learning_rate
    return RunConfig.model_validate(raw)


def _starting_point(run: str | Path) -> tuple[RunConfig, str, dict[str, Any]]:
    """The recipe, ``model.weights`` value and ``model/config.json`` of a run directory or a built-in model."""
    if is_pretrained(run):
        builtin = get_pretrained(str(run))
        return parse_config(builtin.recipe, source=str(run)), str(run), builtin.model_config
    old = open_run_dir(run)
    return read_run_config(old), str(old.weights.resolve()), old.read_model_config()


def prepare_finetune(run: str | Path, data: str | Path, out: str | Path, *, epochs: int | None = None,
                     learning_rate: float | None = None, mix_original: int = 0, holdout: bool | None = None,
                     data_dir: Path | None = None, log: Log = print) -> RunConfig:
    """The recipe that fine-tunes ``run`` on the image / label pairs in ``data`` into the new run directory ``out``
    (with ``mix_original``, the mixed pairs are written to ``<out>_data/`` first); :func:`convscope.finetune`
    trains it.

    Parameters
    ----------
    run : str or Path
        The starting run directory.
    data : str or Path
        Folder with ``images/`` and ``masks/`` (matched by stem); with ``holdout``, at least :data:`MIN_PAIRS`
        images counting the ``mix_original`` ones.
    out : str or Path
        The new run directory (must be new or empty).
    epochs, learning_rate : optional
        See :func:`finetune_recipe`.
    mix_original : int
        Mix in up to this many images of the old run's training split (0 = only the new pairs).
    holdout : bool, optional
        Hold out validation and test images (the fixed seeded split), or train on every image with validation
        reusing them and no test split. Default: hold out from :data:`HOLDOUT_MIN` images on.
    data_dir : Path, optional
        Where the old run's data set lives (as ``--data`` of ``convscope train``), for ``mix_original``.
    log : callable
        Receives progress lines.

    Returns
    -------
    RunConfig
    """
    config = finetune_recipe(run, data, epochs=epochs, learning_rate=learning_rate)
    instances = config.task in ("stardist", "flows")
    mode = "instance" if instances else "binary"
    pairs = _read_pairs(Path(data), mode, config.data.color)
    holdout = len(pairs) + mix_original >= HOLDOUT_MIN if holdout is None else holdout
    if holdout and len(pairs) + mix_original < MIN_PAIRS:
        raise ConvscopeError(f"{data}: {len(pairs)} image/label pair(s); a held-out split needs at least "
                             f"{MIN_PAIRS} (training, validation, test): correct more images, mix in the original "
                             "data, or train on every pair (no --holdout)")
    config = config.model_copy(update={"data": config.data.model_copy(update={"holdout": holdout})})
    if not holdout:
        log(f"fine-tuning on all {len(pairs) + mix_original} images; validation reuses them and there is no "
            "test split (score the new run on other labelled images: convscope evaluate RUN --data DIR)")
    if mix_original:
        folder = Path(f"{Path(out)}_data")
        _mix(pairs, _starting_point(run)[0], folder, mix_original, data_dir, instances)
        config = config.model_copy(update={"data": config.data.model_copy(update={"path": folder.resolve()})})
        log(f"fine-tuning data: {len(pairs)} new pairs + up to {mix_original} original images in {folder}")
    return config


def _read_pairs(folder: Path, mode: str, color: str) -> list:
    if not (folder / "images").is_dir() or not (folder / "masks").is_dir():
        raise ConvscopeError(f"{folder}: needs images/ and masks/ folders (same file stems); save corrected "
                             "images there first")
    return load_paired_folder(folder, mask_mode=mode, color=color)  # type: ignore[arg-type]


def _mix(pairs: list, old: RunConfig, folder: Path, n: int, data_dir: Path | None, instances: bool) -> None:
    """Write the new pairs and up to ``n`` of the old run's training images into ``folder/images|masks``."""
    if folder.exists() and any(folder.iterdir()):
        raise ConvscopeError(f"{folder}: already exists; choose another --out (the mixed data goes beside it)")
    original = load_segmentation(old.data, data_dir=data_dir, seed=old.train.seed, instances=instances).train
    rng = np.random.default_rng(old.train.seed)
    chosen = sorted(rng.choice(len(original), size=min(n, len(original)), replace=False))
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for p in pairs:
        write_image(folder / "images" / f"new_{Path(p.image_path).stem}.tif", p.image)
        write_image(folder / "masks" / f"new_{Path(p.image_path).stem}.tif", p.mask)
    for i in chosen:
        write_image(folder / "images" / f"orig_{i:05d}.tif", original.images[i])
        write_image(folder / "masks" / f"orig_{i:05d}.tif", original.masks[i])

"""A trained run or built-in model judged on the user's own labelled folder: ``convscope evaluate nuclei --data DIR``.

The folder holds ``images/`` and ``masks/`` (same file stems; instance labels for instance models, binary or class
masks for semantic ones). Every pair is predicted as ``convscope predict`` would (a model that records its training
object diameter rescales each image to it: the diameter given, or estimated per image) and scored with the task's
metrics. Nothing is written: a built-in model lives in the installed package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.datasets.paired import MaskMode, load_paired_folder
from convscope.errors import ConvscopeError
from convscope.inference import Predictor
from convscope.inference.rescale import segment_at_diameter
from convscope.runs import TrainedRun
from convscope.tasks import SplitResult

Log = Callable[[str], None]


@dataclass(frozen=True)
class FolderEvaluation:
    """A model's scores on a labelled folder.

    Attributes
    ----------
    result : SplitResult
        The task's metrics (the ``metrics.json`` layout of a split), examples and one-line summary.
    diameters : list of float
        Per image, the object diameter (pixels) the image was rescaled for; empty for models without a training
        diameter.
    """

    result: SplitResult
    diameters: list[float]


def evaluate_folder(trained: TrainedRun, folder: str | Path, *, diameter: float | None = None,
                    log: Log = print) -> FolderEvaluation:
    """Predict every image of ``folder/images`` with ``trained`` and score it against ``folder/masks``.

    Parameters
    ----------
    trained : TrainedRun
        A segmentation run or built-in model (:func:`convscope.runs.load_run`).
    folder : str or Path
        Holds ``images/`` and ``masks/`` (matched by stem). Images are converted to the model's channels as in
        training (grey for a one-channel model, RGB for a three-channel one; a constant alpha channel dropped).
    diameter : float, optional
        Models that record their training object diameter: the objects' diameter in pixels (else estimated per
        image from a first pass, refined by a second; see :func:`~convscope.inference.rescale.diameter_scale`).
    log : callable
        Receives the summary line.

    Returns
    -------
    FolderEvaluation
    """
    task = trained.task
    if task.kind == "classification":
        raise ConvscopeError(f"{trained.name}: a classifier; `evaluate --data` scores segmentation models on "
                             "images/ + masks/ (use `convscope evaluate RUN` for a classification run)")
    if diameter is not None and trained.diameter is None:
        raise ConvscopeError(f"--diameter: {trained.name} records no training object diameter; leave it out")
    n_classes = len(trained.class_names)
    mode: MaskMode = "instance" if task.kind == "instances" else "binary" if n_classes <= 2 else "multiclass"
    pairs = load_paired_folder(folder, mask_mode=mode, num_classes=n_classes if mode == "multiclass" else None,
                               color={1: "gray", 3: "rgb"}.get(trained.channels, "auto"))  # type: ignore[arg-type]
    if not pairs:
        raise ConvscopeError(f"{folder}: no image/mask pairs in images/ and masks/; check the folder")
    predictor = Predictor(trained)
    images = [p.image for p in pairs]
    truths = [p.mask for p in pairs]
    names = [Path(p.image_path).name for p in pairs]
    diameters: list[float] = []
    if task.kind == "instances" and trained.diameter is not None:
        found = [segment_at_diameter(predictor, image, model_diameter=trained.diameter, diameter=diameter)
                 for image in images]
        diameters = [f.diameter for f in found]
        result = task.evaluate_split(images, truths, [], names, [f.labels for f in found])
        log(f"object diameter: median {np.median(diameters):.1f} px over {len(found)} images "
            f"({'given' if diameter is not None else 'estimated per image'}); model trained on "
            f"{trained.diameter:.1f} px")
    else:
        result = task.evaluate_split(images, truths, predictor.predict_many(images), names)
    log(f"{Path(folder).name}: {result.summary}")
    return FolderEvaluation(result, diameters)

"""Instance runs side by side, the numbers: each run's test metrics and timings, a check that they were trained on the
same data set and split, and the test images where they differ most, predicted by every run. Drawing and writing
the comparison is :mod:`convscope.report.compare`'s.

The numbers are those of each run's ``metrics.json`` (test split) and ``history.csv``; only the overlay images need
the data and the models. The per-image accuracies in ``metrics.json`` choose them; a run without them (or evaluated
on differently named images) is scored again with :func:`convscope.metrics.matching.matching`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from tqdm import tqdm

from convscope.config import RunConfig
from convscope.datasets.segmentation import SYNTHETIC, load_segmentation
from convscope.errors import ConvscopeError
from convscope.inference import Predictor
from convscope.metrics.matching import matching
from convscope.runs import RunDir, load_run, read_run_config
from convscope.tasks import task_from_model_config

__all__ = ["KEY_THRESHOLDS", "SCORES", "SPLIT_KEYS", "Comparison", "OverlayImages", "RunSummary",
           "check_same_split", "compare_runs", "differing_images", "overlay_images", "read_instance_run", "scalar"]

Log = Callable[[str], None]

#: The ``data`` settings that decide which images are the test split; runs compared must agree on all of them
#: (and on ``train.seed`` for the generated data sets, whose images it seeds).
SPLIT_KEYS = ("dataset", "path", "val_fraction", "test_fraction", "synthetic_count", "synthetic_size",
              "max_train_images")
KEY_THRESHOLDS = ("0.5", "0.75")
SCORES = ("accuracy", "f1", "panoptic_quality")


@dataclass(frozen=True)
class RunSummary:
    """What the comparison shows of one instance run.

    Attributes
    ----------
    name : str
        The run folder's name (with its parent's when two runs share a name).
    path : Path
    task : str
        ``"stardist"`` or ``"flows"``.
    method : str
        ``"stardist (32 rays)"``, ``"flows (omnipose)"``.
    scores : dict of str to float or None
        ``"accuracy@0.5"``, ``"f1@0.5"``, ``"panoptic_quality@0.5"`` and the same at 0.75 (test split).
    epochs : int or None
        Epochs trained (rows of ``history.csv``).
    training_minutes : float or None
        Training and validation seconds of all epochs, in minutes.
    seconds_per_megapixel : dict of str to float or None
        ``"network"`` and ``"postprocess"`` on the test images.
    thresholds : dict of str to float
        The tuned decoding thresholds.
    matching : dict
        The test matching table of ``metrics.json``, keyed by threshold (``"0.1"`` ... ``"0.9"``).
    per_image : tuple of dict
        The test split's per-image rows (``"name"``, ``"accuracy@0.5"``, ...).
    config : RunConfig
        The resolved recipe.
    baseline : dict or None
        The classical baseline's ``metrics.json`` entry on the same test images (``baseline.test``), if any.
    """

    name: str
    path: Path
    task: str
    method: str
    scores: dict[str, float | None]
    epochs: int | None
    training_minutes: float | None
    seconds_per_megapixel: dict[str, float | None]
    thresholds: dict[str, float]
    matching: dict[str, Any] = field(repr=False)
    per_image: tuple[dict[str, Any], ...] = field(repr=False)
    config: RunConfig = field(repr=False)
    baseline: dict[str, Any] | None = field(default=None, repr=False)

    def row(self) -> dict[str, Any]:
        """The table row: :data:`COLUMNS` key -> value (str, float, int or None)."""
        return {"name": self.name, "method": self.method, **self.scores, "epochs": self.epochs,
                "training_minutes": self.training_minutes,
                "network_s_per_mp": self.seconds_per_megapixel.get("network"),
                "postprocess_s_per_mp": self.seconds_per_megapixel.get("postprocess")}

    def to_dict(self) -> dict[str, Any]:
        """The numbers for ``compare.json``."""
        return {**self.row(), "path": str(self.path), "task": self.task, "model": self.config.model.name,
                "thresholds": self.thresholds, "matching": self.matching}


@dataclass(frozen=True)
class Comparison:
    """Instance runs on one data set and split.

    Attributes
    ----------
    runs : tuple of RunSummary
    data : dict
        The shared split settings (:data:`SPLIT_KEYS`, and ``seed`` for generated data).
    n_test_images : int or None
        Test images the metrics were computed on.
    """

    runs: tuple[RunSummary, ...]
    data: dict[str, Any]
    n_test_images: int | None

    def baseline_row(self) -> dict[str, Any] | None:
        """The classical baseline as one more table row (scores only), from the first run that stored it."""
        stored = next((r.baseline for r in self.runs if r.baseline), None)
        if stored is None or not isinstance(stored.get("matching"), Mapping):
            return None
        matching = stored["matching"]
        scores = {f"{s}@{t}": scalar(matching.get(t, {}).get(s)) for t in KEY_THRESHOLDS for s in SCORES}
        return {"name": "classical baseline", "method": str(stored.get("baseline", "")), **scores, "epochs": None,
                "training_minutes": None, "network_s_per_mp": None, "postprocess_s_per_mp": None}


def scalar(value: Any) -> float | None:
    """``value`` as a finite float, or None for anything else (NaN, text, bool)."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(float(value)) else None


def _training_minutes(history: Sequence[Mapping[str, Any]]) -> float | None:
    seconds = [scalar(row.get(k)) for row in history for k in ("seconds", "validation_seconds")]
    known = [s for s in seconds if s is not None]
    return sum(known) / 60.0 if known else None


def read_instance_run(path: str | Path, name: str | None = None) -> RunSummary:
    """The numbers of a finished instance run (``metrics.json``, ``history.csv``, ``model/config.json``).

    Parameters
    ----------
    path : path-like
        A run directory of a ``stardist`` or ``flows`` run.
    name : str, optional
        Its name in the table; default the folder's name.

    Raises
    ------
    ConvscopeError
        Not a run directory, not an instance run, or no test matching table in ``metrics.json``.
    """
    run = RunDir.open(path)
    model_cfg = run.read_model_config()
    task = task_from_model_config(model_cfg)
    if task.kind != "instances":
        raise ConvscopeError(f"{path}: a {task.name} run, not an instance run; compare takes instance runs "
                             "(stardist, flows)")
    test = run.read_metrics().get("test")
    matching = test.get("matching") if isinstance(test, Mapping) else None
    if not isinstance(matching, Mapping) or "0.5" not in matching:
        raise ConvscopeError(f"{path}: metrics.json has no test matching table; run `convscope evaluate {path}`")
    history = run.read_history()
    baseline = run.read_metrics().get("baseline")
    baseline = baseline.get("test") if isinstance(baseline, Mapping) else None
    scores = {f"{s}@{t}": scalar(matching.get(t, {}).get(s)) for t in KEY_THRESHOLDS for s in SCORES}
    timing = test.get("seconds_per_megapixel") if isinstance(test.get("seconds_per_megapixel"), Mapping) else {}
    per_image = test.get("per_image") if isinstance(test.get("per_image"), Sequence) else []
    return RunSummary(
        name=name or Path(path).name, path=Path(path), task=task.name, method=f"{task.name} ({task.describe()})",
        scores=scores,
        epochs=len(history) or None, training_minutes=_training_minutes(history),
        seconds_per_megapixel={k: scalar(timing.get(k)) for k in ("network", "postprocess")},
        thresholds={str(k): float(v) for k, v in (model_cfg.get("thresholds") or {}).items() if scalar(v) is not None},
        matching=dict(matching), per_image=tuple(r for r in per_image if isinstance(r, Mapping)),
        config=read_run_config(run), baseline=dict(baseline) if isinstance(baseline, Mapping) else None,
    )


def _split_settings(config: RunConfig) -> dict[str, Any]:
    data = config.data
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in ((k, getattr(data, k)) for k in SPLIT_KEYS)}
    if data.dataset in SYNTHETIC:
        settings["seed"] = config.train.seed
    return settings


def check_same_split(runs: Sequence[RunSummary]) -> dict[str, Any]:
    """The split settings the runs share.

    ``train.seed`` counts only for the generated data sets (``synthetic_*``), where it seeds the images; the
    splits of data sets on disk are fixed whatever the seed.

    Raises
    ------
    ConvscopeError
        Naming the first two runs that differ and the setting they differ in.
    """
    first = _split_settings(runs[0].config)
    for other in runs[1:]:
        settings = _split_settings(other.config)
        for key in dict.fromkeys([*first, *settings]):
            if first.get(key) != settings.get(key):
                where = "train.seed" if key == "seed" else f"data.{key}"
                raise ConvscopeError(
                    f"runs {runs[0].name} and {other.name} differ in {where} ({first.get(key)!r} vs "
                    f"{settings.get(key)!r}): compare runs trained on the same data set and split")
    return first


def _names(paths: Sequence[Path]) -> list[str]:
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def compare_runs(paths: Sequence[str | Path]) -> Comparison:
    """Read two or more instance runs and check that they were trained on the same data set and split.

    Raises
    ------
    ConvscopeError
        Fewer than two runs, a run given twice, a run that is not a finished instance run, or different splits.
    """
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ConvscopeError(f"compare: give two or more instance runs, got {len(paths)}")
    resolved = [p.resolve() for p in paths]
    twice = next((p for i, p in enumerate(paths) if resolved[i] in resolved[:i]), None)
    if twice is not None:
        raise ConvscopeError(f"compare: {twice} is given twice; give each run once")
    runs = tuple(read_instance_run(p, n) for p, n in zip(paths, _names(paths), strict=True))
    data = check_same_split(runs)
    counts = {len(r.per_image) for r in runs if r.per_image}
    return Comparison(runs, data, counts.pop() if len(counts) == 1 else None)


def differing_images(accuracies: ArrayLike, k: int) -> list[int]:
    """The ``k`` images where the runs' scores differ most (largest max - min), most different first.

    Parameters
    ----------
    accuracies : array_like of float, shape (n_runs, n_images)
        Per-image scores, e.g. matching accuracy at IoU 0.5; NaN is left out of an image's spread.
    k : int
        At least 0; fewer are returned when there are fewer images.

    Returns
    -------
    list of int
        Image indices; ties go to the image with the lower mean score (the harder one), then the first.
    """
    a = np.asarray(accuracies, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected accuracies of shape (n_runs, n_images), got {a.shape}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    known = np.isfinite(a)
    spread = np.where(known.any(axis=0),
                      np.where(known, a, -np.inf).max(axis=0) - np.where(known, a, np.inf).min(axis=0), -np.inf)
    mean = np.where(known.any(axis=0), np.where(known, a, 0.0).sum(axis=0) / np.maximum(known.sum(axis=0), 1), 0.0)
    order = np.lexsort((np.arange(a.shape[1]), mean, -spread))
    return [int(i) for i in order[:k]]


def _aligned_accuracies(run: RunSummary, names: Sequence[str]) -> list[float] | None:
    """The run's per-image accuracy at IoU 0.5 in the order of ``names``; None when some image has none."""
    values = {str(r.get("name")): scalar(r.get("accuracy@0.5", r.get("accuracy"))) for r in run.per_image}
    by_file = {PurePath(k).name: v for k, v in values.items()}
    for table, key in ((values, str), (by_file, lambda n: PurePath(n).name)):
        if len(table) == len(values) and all(table.get(key(n)) is not None for n in names):
            return [float(table[key(n)]) for n in names]
    return None


def _predict(run: RunSummary, images: Sequence[np.ndarray], indices: Sequence[int], progress: Any
             ) -> dict[int, np.ndarray]:
    predictor = Predictor(load_run(run.path))
    out = {}
    for i in indices:
        try:
            out[i] = predictor.segment(images[i])
        except ConvscopeError as err:
            raise ConvscopeError(f"{run.path}: {err}") from None
        progress.update(1)
    return out


@dataclass(frozen=True)
class OverlayImages:
    """The test images where the runs differ most, with the truth and every run's prediction.

    Attributes
    ----------
    images : list of ndarray, each (H, W, C)
    truths : list of ndarray, each (H, W) int label image
    predictions : list (one per run) of lists (one per image) of ndarray (H, W) int label images
    names : list of str
        The images' names (paths).
    accuracies : ndarray, shape (n_runs, n_images), float64
        Each run's matching accuracy at IoU 0.5 on each shown image.
    n_test_images : int
        Images in the test split.
    """

    images: list[np.ndarray]
    truths: list[np.ndarray]
    predictions: list[list[np.ndarray]]
    names: list[str]
    accuracies: np.ndarray
    n_test_images: int


def overlay_images(comparison: Comparison, k: int, data_dir: Path | None, log: Log = print) -> OverlayImages:
    """Load the test split, choose the ``k`` images where the runs' accuracy at IoU 0.5 differs most, and predict
    them with every run."""
    runs = comparison.runs
    config = runs[0].config
    test = load_segmentation(config.data, data_dir=data_dir, seed=config.train.seed, instances=True).test
    if test is None or len(test) == 0:
        raise ConvscopeError(f"{config.data.dataset}: no test images to draw overlays of; pass --images 0")
    names = [str(n) for n in test.paths]
    scores = [_aligned_accuracies(r, names) for r in runs]
    missing = [i for i, s in enumerate(scores) if s is None]
    k = min(k, len(test))
    n_pred = len(missing) * len(test) + (len(runs) - len(missing)) * k
    preds: list[dict[int, np.ndarray]] = [{} for _ in runs]
    with tqdm(total=n_pred, desc="predict", unit="img", leave=False, disable=n_pred < 4) as progress:
        for i in missing:
            log(f"{runs[i].name}: no per-image accuracies for these test images in metrics.json; scoring again")
            preds[i] = _predict(runs[i], test.images, range(len(test)), progress)
            scores[i] = [matching(test.masks[j], preds[i][j], thresh=0.5).accuracy for j in range(len(test))]
        accuracies = np.array(scores, dtype=np.float64)
        chosen = differing_images(accuracies, k)
        for i, run in enumerate(runs):
            if i not in missing:
                preds[i] = _predict(run, test.images, chosen, progress)
    return OverlayImages([test.images[j] for j in chosen], [test.masks[j] for j in chosen],
                         [[preds[i][j] for j in chosen] for i in range(len(runs))], [names[j] for j in chosen],
                         accuracies[:, chosen], len(test))

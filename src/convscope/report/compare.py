"""Instance runs side by side: star-convex polygons next to flow fields (or any instance runs) trained on the same
data set and split.

``convscope compare RUN_A RUN_B ... --out DIR`` writes into ``DIR``:

- ``compare.md``: the table (matching accuracy, F1 and panoptic quality at IoU 0.5 and 0.75 on the test images,
  epochs, training minutes, network and post-processing seconds per megapixel) and links to the figures, ready to
  paste into BENCHMARKS.md or RESULTS.md;
- ``compare.json``: the same numbers, and the test images of the overlays with every run's accuracy on them;
- ``matching_curves.png``: matching accuracy and F1 against the IoU threshold, one line per run;
- ``overlays.png``: the test images where the runs' accuracy at IoU 0.5 differs most, one row per image, one
  column per run, truth outlined in green and prediction in magenta;
- ``compare.html``: all of it in one self-contained page (figures embedded).

The numbers are those of each run's ``metrics.json`` (test split) and ``history.csv``; only the overlays need the
data and the models. The per-image accuracies in ``metrics.json`` choose the overlay images; a run without them
(or evaluated on differently named images) is scored again with :func:`convscope.metrics.matching.matching`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import jinja2
import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from convscope.config import RunConfig
from convscope.errors import ConvscopeError
from convscope.io.atomic import write_json, write_text
from convscope.report._common import figure_png, mpl_text, png_data_uri, save_figure
from convscope.report.figures import OVERLAY_MAX_SIDE, plot_overlays
from convscope.report.instances import OUTLINE_LEGEND, outline_overlay
from convscope.report.segmentation import short_name
from convscope.tasks.instances import INSTANCE_TASKS

__all__ = [
    "COLUMNS",
    "SPLIT_KEYS",
    "Comparison",
    "RunSummary",
    "check_same_split",
    "compare_runs",
    "differing_images",
    "markdown_table",
    "plot_comparison_curves",
    "plot_comparison_overlays",
    "read_instance_run",
    "text_table",
    "write_comparison",
]

Log = Callable[[str], None]

#: The ``data`` settings that decide which images are the test split; runs compared must agree on all of them
#: (and on ``train.seed`` for the generated data sets, whose images it seeds).
SPLIT_KEYS = ("dataset", "path", "val_fraction", "test_fraction", "synthetic_count", "synthetic_size",
              "max_train_images")
#: Columns of the table: (key of :meth:`RunSummary.row`, header, kind). Scores are better high, times low.
COLUMNS = (
    ("name", "Run", "text"),
    ("method", "Method", "text"),
    ("accuracy@0.5", "Accuracy 0.5", "score"),
    ("f1@0.5", "F1 0.5", "score"),
    ("panoptic_quality@0.5", "PQ 0.5", "score"),
    ("accuracy@0.75", "Accuracy 0.75", "score"),
    ("f1@0.75", "F1 0.75", "score"),
    ("panoptic_quality@0.75", "PQ 0.75", "score"),
    ("epochs", "Epochs", "count"),
    ("training_minutes", "Training (min)", "time"),
    ("network_s_per_mp", "Network (s/MP)", "time"),
    ("postprocess_s_per_mp", "Post-processing (s/MP)", "time"),
)
_KEY_THRESHOLDS = ("0.5", "0.75")
_SCORES = ("accuracy", "f1", "panoptic_quality")
_FILES = ("compare.html", "compare.md", "compare.json", "matching_curves.png")
_OVERLAYS = "overlays.png"
_TEMPLATES = Path(__file__).parent / "templates"
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
TABLE_NOTE = (
    "Accuracy = TP / (TP + FP + FN) (StarDist's and the DSB2018 challenge's), F1 and PQ (panoptic quality) of the "
    "objects matched at IoU 0.5 and 0.75 on the test images, pooled over them. Training = minutes of training and "
    "validation summed over the epochs. s/MP = seconds per megapixel of the test images in the network (tiled) and "
    "in post-processing (polygon NMS or flow dynamics), measured when the run was evaluated, on its machine."
)


# ------------------------------------------------------------------------------------------------ runs


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


def _scalar(value: Any) -> float | None:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(float(value)) else None


def _method(model_cfg: Mapping[str, Any]) -> str:
    task = str(model_cfg.get("task"))
    options = model_cfg.get(task) if isinstance(model_cfg.get(task), Mapping) else {}
    if task == "flows" and options.get("variant"):
        return f"flows ({options['variant']})"
    if task == "stardist" and options.get("n_rays"):
        return f"stardist ({options['n_rays']} rays)"
    return task


def _training_minutes(history: Sequence[Mapping[str, Any]]) -> float | None:
    seconds = [_scalar(row.get(k)) for row in history for k in ("seconds", "validation_seconds")]
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
    from convscope.runs.layout import RunDir, read_run_config

    run = RunDir.open(path)
    model_cfg = run.read_model_config()
    task = model_cfg.get("task")
    if task not in INSTANCE_TASKS:
        raise ConvscopeError(f"{path}: a {task} run, not an instance run ({' or '.join(INSTANCE_TASKS)}); "
                             "compare takes instance runs")
    test = run.read_metrics().get("test")
    matching = test.get("matching") if isinstance(test, Mapping) else None
    if not isinstance(matching, Mapping) or "0.5" not in matching:
        raise ConvscopeError(f"{path}: metrics.json has no test matching table; run `convscope evaluate {path}`")
    history = run.read_history()
    scores = {f"{s}@{t}": _scalar(matching.get(t, {}).get(s)) for t in _KEY_THRESHOLDS for s in _SCORES}
    timing = test.get("seconds_per_megapixel") if isinstance(test.get("seconds_per_megapixel"), Mapping) else {}
    per_image = test.get("per_image") if isinstance(test.get("per_image"), Sequence) else []
    return RunSummary(
        name=name or Path(path).name, path=Path(path), task=str(task), method=_method(model_cfg), scores=scores,
        epochs=len(history) or None, training_minutes=_training_minutes(history),
        seconds_per_megapixel={k: _scalar(timing.get(k)) for k in ("network", "postprocess")},
        thresholds={str(k): float(v) for k, v in (model_cfg.get("thresholds") or {}).items() if _scalar(v) is not None},
        matching=dict(matching), per_image=tuple(r for r in per_image if isinstance(r, Mapping)),
        config=read_run_config(run),
    )


def _split_settings(config: RunConfig) -> dict[str, Any]:
    from convscope.datasets.segmentation import SYNTHETIC

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


# ------------------------------------------------------------------------------------------------ tables


def _format(value: Any, kind: str) -> str:
    if kind == "text":
        return str(value)
    v = _scalar(value)
    if v is None:
        return "\u2013"
    if kind == "score":
        return f"{v:.3f}"
    if kind == "count":
        return f"{int(v):,}"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _best(runs: Sequence[RunSummary]) -> dict[str, set[int]]:
    """Column key -> indices of the runs with the best value (highest score, lowest time); none for one run."""
    out: dict[str, set[int]] = {}
    for key, _, kind in COLUMNS:
        if kind not in ("score", "time"):
            continue
        # as shown: two values that print alike are alike
        values = [None if _scalar(r.row()[key]) is None else float(_format(r.row()[key], kind).replace(",", ""))
                  for r in runs]
        known = [v for v in values if v is not None]
        if len(known) > 1 and len(set(known)) > 1:
            best = max(known) if kind == "score" else min(known)
            out[key] = {i for i, v in enumerate(values) if v == best}
    return out


def _cells(comparison: Comparison) -> list[list[tuple[str, bool]]]:
    """Formatted cells per run, each with whether it is the best of its column."""
    best = _best(comparison.runs)
    return [[(_format(r.row()[key], kind), i in best.get(key, ())) for key, _, kind in COLUMNS]
            for i, r in enumerate(comparison.runs)]


def markdown_table(comparison: Comparison) -> str:
    """The table in Markdown (GitHub), the best value of each score and time column in bold."""
    lines = ["| " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|" + "|".join("---" if kind == "text" else "---:" for _, _, kind in COLUMNS) + "|"]
    for cells in _cells(comparison):
        lines.append("| " + " | ".join(f"**{c}**" if best else c for c, best in cells) + " |")
    return "\n".join(lines)


def text_table(comparison: Comparison) -> str:
    """The table as plain text for the terminal, numbers right-aligned."""
    rows = [[h for _, h, _ in COLUMNS], *([c for c, _ in cells] for cells in _cells(comparison))]
    widths = [max(len(row[j]) for row in rows) for j in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) if kind == "text" else c.rjust(w)
                  for c, w, (_, _, kind) in zip(row, widths, COLUMNS, strict=True)).rstrip()
        for row in rows)


# ------------------------------------------------------------------------------------------------ figures


def _curve(matching: Mapping[str, Any], metric: str) -> tuple[np.ndarray, np.ndarray]:
    points = []
    for key, row in matching.items():
        try:
            t = float(key)
        except (TypeError, ValueError):
            continue
        v = _scalar(row.get(metric)) if isinstance(row, Mapping) else None
        points.append((t, np.nan if v is None else v))
    points.sort()
    return np.array([p[0] for p in points], dtype=np.float64), np.array([p[1] for p in points], dtype=np.float64)


def plot_comparison_curves(runs: Sequence[RunSummary], path: str | Path | None = None) -> Figure:
    """Matching accuracy (left) and F1 (right) on the test images against the IoU threshold, one line per run.

    Parameters
    ----------
    runs : sequence of RunSummary
    path : path-like, optional
        Also save the figure there as a PNG (atomically).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels, y in [0, 1], a dotted line at IoU 0.5, the runs' names and methods in the legend below.
    """
    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, (metric, label) in zip(axes, (("accuracy", "Matching accuracy (AP, DSB2018)"), ("f1", "F1")),
                                   strict=True):
        for i, run in enumerate(runs):
            xs, ys = _curve(run.matching, metric)
            ax.plot(xs, ys, marker=_MARKERS[i % len(_MARKERS)], ms=4, lw=1.8, color=_COLORS[i % len(_COLORS)],
                    ls="-" if i < len(_COLORS) else "--",
                    label=mpl_text(f"{run.name} \u00b7 {run.method}", max_len=60) if metric == "accuracy" else None)
        ax.axvline(0.5, color="0.35", ls=":", lw=1.4)
        ax.set_ylim(-0.02, 1.02)  # a run at 0 or 1 stays visible off the axes
        ax.set_xlim(0.05, 0.95)
        ax.set_xlabel("IoU threshold (a predicted object matches a true one at or above it)", fontsize=9)
        ax.set_title(label, fontsize=11)
        ax.grid(True, color="0.9", lw=0.8)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[0].set_ylabel("Score on the test images")
    fig.legend(loc="outside lower center", ncols=min(len(runs), 3), fontsize=9, frameon=False)
    if path is not None:
        save_figure(fig, path)
    return fig


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


def _object_count(labels: np.ndarray) -> int:
    return int(np.count_nonzero(np.unique(labels)))


def plot_comparison_overlays(
    images: Sequence[ArrayLike], true_labels: Sequence[ArrayLike], pred_labels: Sequence[Sequence[ArrayLike]], *,
    run_names: Sequence[str], image_names: Sequence[str], accuracies: ArrayLike,
) -> Figure:
    """A grid of outline overlays: one row per image, one column per run.

    Parameters
    ----------
    images : sequence of array_like, each (H_i, W_i) or (H_i, W_i, C), any real dtype
    true_labels : sequence of array_like of int, each (H_i, W_i)
        0 = background.
    pred_labels : sequence (one per run) of sequences (one per image) of array_like of int, each (H_i, W_i)
    run_names, image_names : sequence of str
    accuracies : array_like of float, shape (n_runs, n_images)
        Each run's matching accuracy at IoU 0.5 on each image, shown in the panel titles.

    Returns
    -------
    matplotlib.figure.Figure
        Truth outlined green, prediction magenta, both amber (:func:`~convscope.report.instances.outline_overlay`),
        with the outline legend below.
    """
    acc = np.asarray(accuracies, dtype=np.float64)
    if acc.shape != (len(run_names), len(images)) or len(pred_labels) != len(run_names):
        raise ValueError(f"{len(run_names)} runs and {len(images)} images, but accuracies {acc.shape} and "
                         f"{len(pred_labels)} prediction lists")
    panels, titles = [], []
    for j, (image, truth) in enumerate(zip(images, true_labels, strict=True)):
        thickness = max(1, math.ceil(max(np.shape(truth)) / OVERLAY_MAX_SIDE))
        for i, run in enumerate(run_names):
            pred = np.asarray(pred_labels[i][j])
            panels.append(outline_overlay(image, truth, pred, thickness=thickness))
            score = "\u2013" if not np.isfinite(acc[i, j]) else f"{acc[i, j]:.3f}"
            titles.append(f"{run}: {short_name(image_names[j])}\naccuracy@0.5 {score}, "
                          f"{_object_count(np.asarray(truth))} true, {_object_count(pred)} predicted")
    return plot_overlays(panels, titles, ncols=len(run_names), legend=OUTLINE_LEGEND)


# ------------------------------------------------------------------------------------------------ overlays


def _aligned_accuracies(run: RunSummary, names: Sequence[str]) -> list[float] | None:
    """The run's per-image accuracy at IoU 0.5 in the order of ``names``; None when some image has none."""
    values = {str(r.get("name")): _scalar(r.get("accuracy@0.5", r.get("accuracy"))) for r in run.per_image}
    by_file = {PurePath(k).name: v for k, v in values.items()}
    for table, key in ((values, str), (by_file, lambda n: PurePath(n).name)):
        if len(table) == len(values) and all(table.get(key(n)) is not None for n in names):
            return [float(table[key(n)]) for n in names]
    return None


def _predict(run: RunSummary, images: Sequence[np.ndarray], indices: Sequence[int], progress: Any
             ) -> dict[int, np.ndarray]:
    from convscope.inference.instances import InstanceSegmenter
    from convscope.runs.layout import RunDir

    segmenter = InstanceSegmenter(RunDir.open(run.path))
    out = {}
    for i in indices:
        try:
            out[i] = segmenter.segment(images[i])
        except ConvscopeError as err:
            raise ConvscopeError(f"{run.path}: {err}") from None
        progress.update(1)
    return out


def _overlays(comparison: Comparison, k: int, data_dir: Path | None, log: Log) -> dict[str, Any]:
    """Load the test split, choose the ``k`` images where the runs differ most, predict them, draw the grid."""
    from tqdm import tqdm

    from convscope.datasets.segmentation import load_segmentation
    from convscope.metrics.matching import matching

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
    figure = plot_comparison_overlays(
        [test.images[j] for j in chosen], [test.masks[j] for j in chosen],
        [[preds[i][j] for j in chosen] for i in range(len(runs))], run_names=[r.name for r in runs],
        image_names=[names[j] for j in chosen], accuracies=accuracies[:, chosen])
    shown = [{"name": names[j], "accuracy@0.5": {r.name: float(accuracies[i, j]) for i, r in enumerate(runs)}}
             for j in chosen]
    return {"figure": figure, "images": shown, "n_test_images": len(test)}


# ------------------------------------------------------------------------------------------------ files


def _markdown(comparison: Comparison, overlays: Mapping[str, Any] | None) -> str:
    data = comparison.data
    n = comparison.n_test_images
    where = f"{data['dataset']}" + (f", {n} test images" if n else "")
    lines = [f"## Instance runs compared: {', '.join(r.name for r in comparison.runs)} ({where})", "",
             markdown_table(comparison), "", TABLE_NOTE, "",
             "![Matching accuracy and F1 against the IoU threshold](matching_curves.png)", ""]
    if overlays is not None:
        k = len(overlays["images"])
        lines += [f"The {k} test image{'s' if k != 1 else ''} where the runs' accuracy at IoU 0.5 differs most "
                  "(one row per image, one column per run; truth green, prediction magenta, both amber):", "",
                  f"![Outline overlays]({_OVERLAYS})", ""]
    return "\n".join(lines)


def _html(comparison: Comparison, curves: Figure, overlays: Mapping[str, Any] | None) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("compare.html").render(
        title=f"{len(comparison.runs)} instance runs compared",
        created=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        columns=[(h, kind) for _, h, kind in COLUMNS], rows=_cells(comparison), note=TABLE_NOTE,
        data=comparison.data, n_test_images=comparison.n_test_images,
        runs=[{"name": r.name, "path": str(r.path), "method": r.method, "model": r.config.model.name,
               "thresholds": ", ".join(f"{k} {v:g}" for k, v in r.thresholds.items()) or "\u2013"}
              for r in comparison.runs],
        curves=png_data_uri(figure_png(curves)),
        overlays=None if overlays is None else png_data_uri(figure_png(overlays["figure"])),
        n_overlays=0 if overlays is None else len(overlays["images"]),
    )


def write_comparison(
    paths: Sequence[str | Path], out: str | Path, *, data_dir: Path | None = None, n_images: int = 4,
    overwrite: bool = False, log: Log = print,
) -> Comparison:
    """Compare instance runs and write ``compare.html``, ``compare.md``, ``compare.json``,
    ``matching_curves.png`` and ``overlays.png`` into ``out`` (created; every file written atomically).

    Parameters
    ----------
    paths : sequence of path-like
        Two or more run directories of ``stardist`` or ``flows`` runs trained on the same data set and split.
    out : path-like
        The folder to write into.
    data_dir : Path, optional
        Where the data set is (as ``convscope train --data``); only the overlays need it.
    n_images : int
        Test images shown as overlays, those where the runs differ most; 0 = no overlays (no data, no models).
    overwrite : bool
        Replace the files of an earlier comparison in ``out``; without it they are never touched.
    log : callable
        Receives progress messages.

    Returns
    -------
    Comparison

    Raises
    ------
    ConvscopeError
        Bad runs (see :func:`compare_runs`), ``n_images < 0``, or an output file that exists without ``overwrite``.
    """
    out = Path(out)
    if n_images < 0:
        raise ConvscopeError(f"--images {n_images}: give the number of overlay images, 0 or more")
    if out.exists() and not out.is_dir():
        raise ConvscopeError(f"{out}: exists and is not a folder; give a folder for --out")
    comparison = compare_runs(paths)
    files = [*_FILES, _OVERLAYS] if n_images else list(_FILES)
    existing = next((out / f for f in files if (out / f).exists()), None)
    if existing is not None and not overwrite:
        raise ConvscopeError(f"{existing}: already exists; pass --overwrite to replace it or choose a new --out")
    overlays = None
    if n_images:
        overlays = _overlays(comparison, n_images, data_dir, log)
        if comparison.n_test_images is None:
            comparison = Comparison(comparison.runs, comparison.data, overlays["n_test_images"])
    out.mkdir(parents=True, exist_ok=True)
    curves = plot_comparison_curves(comparison.runs, out / "matching_curves.png")
    if overlays is not None:
        save_figure(overlays["figure"], out / _OVERLAYS)
    write_json(out / "compare.json", {
        "data": comparison.data, "n_test_images": comparison.n_test_images,
        "columns": {key: header for key, header, _ in COLUMNS},
        "runs": [r.to_dict() for r in comparison.runs],
        "overlays": None if overlays is None else overlays["images"],
    })
    write_text(out / "compare.md", _markdown(comparison, overlays))
    write_text(out / "compare.html", _html(comparison, curves, overlays))
    return comparison

"""Will labelling more images help? Train on growing fractions of the training split and plot the test metric.

:func:`learning_curve` trains one run per fraction (``data.max_train_images``, drawn with the recipe's seed; the
validation and test splits stay whole and fixed), with the same budget for every point, and writes into ``out``::

    out/n<k>/            the run trained on k images (a normal run directory, report included)
    out/curve.csv        one row per point: fraction, n_train, epochs, test and validation metric, seconds
    out/curve.json       the same, with the recipe and the metric's name
    out/curve.png        test (and validation) metric against the number of training images

The table and the figure are rewritten atomically after every point, so an interrupted curve keeps what it has;
run it again with the same ``out`` and the finished points are read back, not retrained.

Budget: ``"steps"`` (default) gives every point the same number of optimisation steps and the same validation
cadence: the recipe's epochs, each of the same number of training samples. A classification run on a fraction of
the images draws ``data.images_per_epoch`` images per epoch (default: the full training split's size), reshuffling
its smaller training set as often as needed; patch-based segmentation runs draw ``data.patches_per_epoch`` patches
per epoch whatever the number of images. ``"epochs"`` keeps one pass per epoch (fewer steps for fewer images).
``train.time_limit`` and early stopping apply to every point. Each point records the steps it was allowed.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from convscope.config import RunConfig, dump_config
from convscope.datasets import load_task_data
from convscope.errors import ConvscopeError
from convscope.evaluation.run import finish_run
from convscope.io.atomic import atomic_path, write_json, write_text
from convscope.runs import load_run
from convscope.tasks import task_class
from convscope.training.fit import fit
from convscope.training.tensors import ShuffledBatches

Budget = Literal["steps", "epochs"]
Log = Callable[[str], None]


@dataclass(frozen=True)
class CurvePoint:
    """One trained point of the curve.

    Attributes
    ----------
    fraction : float
        Requested share of the training split.
    n_train : int
        Training images actually used.
    epochs : int
        Epochs the run was allowed.
    steps : int
        Optimisation steps the run was allowed (equal for every point under the ``"steps"`` budget).
    test, val : float
        The headline metric on the test and validation splits.
    seconds : float
        Wall time of training and evaluation.
    run : str
        The run directory.
    """

    fraction: float
    n_train: int
    epochs: int
    steps: int
    test: float
    val: float
    seconds: float
    run: str


def headline_metric(task: str) -> tuple[str, Callable[[dict[str, Any]], float]]:
    """The metric a curve plots for ``task``: (label, function of a metrics.json split entry)."""
    if task == "classification":
        return "accuracy", lambda m: float(m["accuracy"])
    if task == "semantic":
        return "Dice", lambda m: float(m["dice"])
    return "F1 at IoU 0.5", lambda m: float(m["matching"]["0.5"]["f1"])


def parse_fractions(text: str) -> list[float]:
    """``"0.1,0.25,0.5,1"`` -> sorted unique fractions in (0, 1]; a :class:`ConvscopeError` otherwise."""
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise ConvscopeError(f"--fractions {text}: expected comma-separated numbers such as 0.1,0.25,0.5,1") from None
    if not values or values[0] <= 0 or values[-1] > 1:
        raise ConvscopeError(f"--fractions {text}: every fraction must be in (0, 1]")
    return values


def count_train_images(config: RunConfig, data_dir: Path | None) -> int:
    """Training images of the recipe's data after the validation split (before ``max_train_images``)."""
    data_cfg = config.data.model_copy(update={"max_train_images": None})
    data = load_task_data(data_cfg, task_class(config.task).kind, data_dir=data_dir, seed=config.train.seed)
    return len(data.train)


def point_config(config: RunConfig, n: int, n_full: int, budget: Budget) -> RunConfig:
    """The recipe of the point trained on ``n`` of the ``n_full`` training images (see the module docstring)."""
    update: dict[str, Any] = {"max_train_images": n if n < n_full else None}
    if budget == "steps" and task_class(config.task).kind == "classification":
        per_epoch = config.data.images_per_epoch or n_full
        update["images_per_epoch"] = per_epoch if per_epoch != n else None
    return config.model_copy(update={"data": config.data.model_copy(update=update)})


def allowed_steps(config: RunConfig, n: int) -> int:
    """Optimisation steps a recipe allows on ``n`` training images: epochs x batches per epoch."""
    if task_class(config.task).kind == "classification":
        samples = config.data.images_per_epoch or n
    else:
        samples = config.data.patches_per_epoch
    return config.train.epochs * len(ShuffledBatches(n, config.train.batch_size, 0, samples=samples))


def learning_curve(config: RunConfig, fractions: Sequence[float], out: str | Path, *,
                   data_dir: Path | None = None, budget: Budget = "steps", log: Log = print) -> list[CurvePoint]:
    """Train the recipe on growing fractions of its training split and write the curve (see the module docstring).

    Parameters
    ----------
    config : RunConfig
        The recipe; ``data.max_train_images`` and ``train.epochs`` are set per point.
    fractions : sequence of float
        Shares of the training split, in (0, 1]; each becomes ``max(1, round(f * n))`` images.
    out : str or Path
        Folder of the curve (created); points already trained there are reused.
    data_dir : Path, optional
        The ``--data`` folder.
    budget : {"steps", "epochs"}
    log : callable
        Progress messages.

    Returns
    -------
    list of CurvePoint
        In order of growing training set.

    Raises
    ------
    ConvscopeError
        Bad fractions, or anything training raises (the points finished before stay written).
    """
    if budget not in ("steps", "epochs"):
        raise ConvscopeError(f"--budget {budget}: use steps or epochs")
    if not fractions or min(fractions) <= 0 or max(fractions) > 1:
        raise ConvscopeError(f"fractions {list(fractions)}: every fraction must be in (0, 1]")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConvscopeError(f"{out}: exists and is not a folder; pass a folder for the learning curve")
    label, metric = headline_metric(config.task)
    n_full = count_train_images(config, data_dir)
    sizes = sorted({max(1, round(f * n_full)): f for f in sorted(fractions)}.items())
    earlier = json.loads((out / "curve.json").read_text()).get("seconds", {}) if (out / "curve.json").is_file() \
        else {}
    points: list[CurvePoint] = []
    for n, fraction in sizes:
        point_cfg = point_config(config, n, n_full, budget)
        run = out / f"n{n}"
        metrics_file = run / "metrics.json"
        start = time.perf_counter()
        if metrics_file.is_file():
            log(f"learning curve: {run} already trained, read back")
            metrics = json.loads(metrics_file.read_text())
            seconds = float(earlier.get(str(n), float("nan")))
        else:
            log(f"learning curve: {n} of {n_full} training images ({fraction:g}), {point_cfg.train.epochs} epochs, "
                f"{allowed_steps(point_cfg, n):,} steps")
            metrics = _train(point_cfg, run, data_dir, log)
            seconds = time.perf_counter() - start
        if "test" not in metrics:
            raise ConvscopeError(f"{metrics_file}: no test metrics; the learning curve needs a test split")
        val = metric(metrics["val"]) if "val" in metrics else float("nan")
        points.append(CurvePoint(fraction, n, point_cfg.train.epochs, allowed_steps(point_cfg, n),
                                 metric(metrics["test"]), val, seconds, str(run)))
        write_curve(points, out, config=config, metric=label, n_full=n_full, budget=budget)
    return points


def write_curve(points: Sequence[CurvePoint], out: Path, *, config: RunConfig, metric: str, n_full: int,
                budget: Budget) -> None:
    """Write ``curve.csv``, ``curve.json`` and ``curve.png`` into ``out``, each atomically."""
    buffer = io.StringIO()
    fields = list(CurvePoint.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for p in points:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in asdict(p).items()})
    write_text(out / "curve.csv", buffer.getvalue())
    write_json(out / "curve.json", {
        "metric": metric, "task": config.task, "n_train_full": n_full, "budget": budget,
        "points": [asdict(p) for p in points], "seconds": {str(p.n_train): p.seconds for p in points},
        "recipe": dump_config(config)})
    fig = curve_figure(points, metric=metric)
    with atomic_path(out / "curve.png") as tmp:
        fig.savefig(tmp, format="png", dpi=120, facecolor="white", bbox_inches="tight")


def curve_figure(points: Sequence[CurvePoint], *, metric: str) -> Figure:
    """Test and validation metric against the number of training images (log x axis when it spans 10x)."""
    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.add_subplot()
    n = [p.n_train for p in points]
    ax.plot(n, [p.test for p in points], "o-", label="test")
    ax.plot(n, [p.val for p in points], "s--", alpha=0.7, label="validation")
    for p in points:
        ax.annotate(f"{p.test:.3f}", (p.n_train, p.test), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=8)
    if n and max(n) >= 10 * min(n):
        ax.set_xscale("log")
    ax.set_xticks(n, [f"{v:,}" for v in n])  # the points' sizes, not crowded log-scale minor labels
    ax.xaxis.set_minor_locator(NullLocator())
    ax.margins(y=0.15)  # room for the value labels above the points
    ax.set_xlabel("training images")
    ax.set_ylabel(metric)
    ax.set_title(f"Learning curve: {metric} vs training set size")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _train(config: RunConfig, out: Path, data_dir: Path | None, log: Log) -> dict[str, Any]:
    """Train one point's run and judge it (metrics.json; the report is not needed for a curve point)."""
    fitted = fit(config, out, data_dir=data_dir, log=log)
    return finish_run(load_run(out, device=config.train.device), fitted.data, fitted.history, log=log).metrics

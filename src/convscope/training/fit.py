"""The fit loop, on PyTorch-Ignite: in-memory batches, Adam, validation every epoch, best weights,
resumable checkpoints, early stopping, a time limit, cancellation and a progress bar.

:func:`fit` writes the run directory's ``config.yaml``, ``history.csv`` and ``model/`` (the weights of the lowest
validation loss); judging the model and writing ``metrics.json`` and the report is ``convscope.evaluation``'s and
``convscope.report``'s (:func:`convscope.train` does all three)."""

from __future__ import annotations

import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import EarlyStopping
from ignite.handlers.tqdm_logger import ProgressBar
from safetensors.torch import save_file
from torch import nn

from convscope.config import RunConfig, dump_config
from convscope.datasets import load_task_data
from convscope.datasets.base import ClassificationData
from convscope.datasets.check import DataCheck
from convscope.datasets.precheck import check_loaded
from convscope.datasets.record import data_record
from convscope.datasets.segmentation import SegmentationData
from convscope.errors import ConvscopeError
from convscope.io.atomic import atomic_path, write_json, write_text
from convscope.models import create_model, load_weights
from convscope.models.summary import count_params
from convscope.pretrained import get_pretrained, is_pretrained
from convscope.runs.layout import MODEL_FORMAT, RunDir, read_run_config
from convscope.runs.runtime import (
    bfloat16_native,
    provenance,
    resolve_device,
    seed_everything,
    set_threads,
    tune_allocator,
)
from convscope.tasks import Task, task_class, task_from_recipe
from convscope.training import distributed
from convscope.training.patches import PatchGrid, PatchSampler
from convscope.training.step import TrainData, adam, make_fit_step, make_train_step
from convscope.training.tensors import ShuffledBatches, TensorImages
from convscope.training.validation import evaluate_loss
from convscope.transforms import build_augmentation

Log = Callable[[str], None]
#: Called after every epoch with its history row (epoch, train_/val_ metrics, lr, seconds).
OnEpoch = Callable[[dict[str, float]], None]

@dataclass
class Setup:
    """Everything a run needs, built from its config."""

    config: RunConfig
    run: RunDir
    data: ClassificationData | SegmentationData
    task: Task
    model: nn.Module
    device: torch.device
    train: TrainData
    val: TrainData
    input_shape: tuple[int, int, int]  # (H, W, C) the model was built for (the patch size for segmentation)
    dtype: str  # of the stored images
    data_check: DataCheck | None = None  # the cheap checks of the loaded data (written to RUN/data_check.json)


@dataclass(frozen=True)
class Fitted:
    """A trained run directory (config, history, best weights) and the data it was trained on.

    ``completed`` is False when training was cancelled: the checkpoint is kept, ``convscope resume`` continues.
    """

    run: RunDir
    config: RunConfig
    data: ClassificationData | SegmentationData
    history: list[dict[str, float]]
    completed: bool


def fit(config: RunConfig, out: str | Path, *, data_dir: Path | None = None, log: Log = print,
        on_epoch: OnEpoch | None = None, cancel: threading.Event | None = None) -> Fitted:
    """Train a model as ``config`` says into the run directory ``out`` (config, history, best weights).

    ``out`` must not exist or be empty: nothing is overwritten. ``on_epoch`` is called after every epoch with its
    history row; setting ``cancel`` stops training within one batch (the checkpoint stays, resumable). In a
    process group (:mod:`convscope.training.distributed`) every rank trains its share and rank 0 alone writes.
    """
    run = RunDir(Path(out))
    if run.path.exists() and (not run.path.is_dir() or any(run.path.iterdir())):
        hint = f"`convscope resume {out}` continues it" if run.checkpoint.is_file() else "nothing is overwritten"
        raise ConvscopeError(f"{out}: already exists and is not empty; choose a new --out ({hint})")
    setup = prepare(config, run, data_dir, log)  # bad data or recipe fails here, before anything is written
    distributed.barrier()  # every rank found `out` new before rank 0 writes into it
    if distributed.context().is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        write_text(run.config, dump_config(config, {"provenance": provenance()}))
        write_json(run.data_record, data_record(config.data, data_dir))
        if setup.data_check is not None:
            write_json(run.data_check, setup.data_check.to_dict())
    return _fit(setup, checkpoint=None, log=log, on_epoch=on_epoch, cancel=cancel)


def resume_fit(out: str | Path, *, data_dir: Path | None = None, log: Log = print, on_epoch: OnEpoch | None = None,
               cancel: threading.Event | None = None) -> Fitted:
    """Continue an interrupted run from its last checkpoint (same config, same data split)."""
    run = RunDir(Path(out))
    config = resumable_config(out)
    checkpoint = read_checkpoint(run.checkpoint)
    log(f"resuming {out} after epoch {checkpoint['trainer']['epoch']}")
    return _fit(prepare(config, run, data_dir, log), checkpoint=checkpoint, log=log, on_epoch=on_epoch, cancel=cancel)


def resumable_config(out: str | Path) -> RunConfig:
    """The recipe of the interrupted run ``out``; a :class:`ConvscopeError` when it has no checkpoint."""
    run = RunDir(Path(out))
    if not run.checkpoint.is_file() or not run.config.is_file():
        raise ConvscopeError(f"{out}: no checkpoint to resume from (checkpoint/last.pt); start a new run instead")
    return read_run_config(run)


#: What :func:`_save_checkpoint` writes and resuming needs.
CHECKPOINT_KEYS = ("model", "optimizer", "trainer", "history", "best_val_loss", "rng")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A resumable checkpoint, loaded without executing code; a one-line error naming the file when it is
    truncated, foreign or incomplete."""
    fix = "the run cannot be resumed; start a new one"
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol warning says less than the error below
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a truncated or foreign file
        raise ConvscopeError(f"{path}: not a readable convscope checkpoint ({type(err).__name__}); {fix}") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing or not isinstance(checkpoint["trainer"], dict) or "epoch" not in checkpoint["trainer"]:
        raise ConvscopeError(f"{path}: not a convscope checkpoint (no {(missing or ['trainer.epoch'])[0]!r}); {fix}")
    return checkpoint


def build_model(config: RunConfig, task: Task, image_shape: tuple[int, int, int]) -> nn.Module:
    """The recipe's model for images of ``image_shape`` (H, W, C), with its starting weights."""
    h, w, c = image_shape
    derived = {"in_channels": c, "num_classes": task.num_outputs, "input_size": (h, w), **task.model_options}
    clash = sorted(set(derived) & set(config.model.options))
    if clash:
        where = f"{task.name}.{clash[0]}" if clash[0] in task.model_options else "the data"
        raise ConvscopeError(f"model.options.{clash[0]}: set from {where}; remove it from model.options")
    model = create_model(config.model.name, **derived, **config.model.options)
    if config.model.weights:
        load_weights(model, config.model.name, weights_file(config.model.weights))
    return model


def weights_file(weights: str) -> str:
    """The file of ``model.weights``: a path as it is, or a built-in model's name (``nuclei``) -> its weights file,
    checked against its recorded sha256."""
    if is_pretrained(weights):
        return str(get_pretrained(weights).weights)
    return weights


def model_config(s: Setup) -> dict[str, Any]:
    """``model/config.json``: everything needed to rebuild the model and preprocess new images."""
    config = s.config
    h, w, c = s.input_shape
    trainable, non_trainable = count_params(s.model)
    return {
        "format": MODEL_FORMAT,
        "task": config.task,
        "model": {"name": config.model.name, "options": {
            "in_channels": c, "num_classes": s.task.num_outputs, "input_size": [h, w], **s.task.model_options,
            **config.model.options}},
        "class_names": list(s.task.class_names),
        "input_shape": [h, w, c],
        "axes": "YXC",
        "dtype": s.dtype,
        **s.task.saved(),
        "normalize": config.data.normalize.model_dump(),
        "resize": list(config.data.resize) if config.data.resize else None,
        "color": config.data.color,
        "params": {"trainable": trainable, "non_trainable": non_trainable},
    }


def prepare(config: RunConfig, run: RunDir, data_dir: Path | None = None, log: Log = print) -> Setup:
    """Seeds, threads, device, the loaded and checked data, the task and the model of ``config``, for the run
    directory ``run`` (nothing is written)."""
    seed_everything(config.train.seed)
    threads = set_threads(config.train.num_threads or distributed.threads_per_rank())
    device = distributed.rank_device(resolve_device(config.train.device))
    if device.type == "cpu":
        tune_allocator()
    data = load_task_data(config.data, task_class(config.task).kind, data_dir=data_dir, seed=config.train.seed)
    checked = _check_data(config, data, log)
    task = task_from_recipe(config, data.class_names)
    if isinstance(data, ClassificationData):
        train_data, val_data, shape, dtype, what = _whole_images(config, data, device)
    else:
        train_data, val_data, shape, dtype, what = _patches(config, data, task, device)
    model = build_model(config, task, shape).to(device)
    if config.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    trainable, frozen = count_params(model)
    n_test = len(data.test) if data.test is not None else 0
    log(f"data: {len(data.train)} train / {len(data.val)} val / {n_test} test images{what}, "
        f"classes {', '.join(task.class_names)}")
    log(f"model: {config.model.name} ({trainable:,} trainable, {frozen:,} non-trainable params) "
        f"on {device}{f' with {threads} threads' if device.type == 'cpu' else ''}"
        f"{', training in bfloat16' if config.train.precision == 'bfloat16' else ''}")
    if config.train.precision == "bfloat16" and not bfloat16_native(device):
        log(f"note: {device} has no bfloat16 units (CPU: AVX-512 BF16 or AMX; GPU: compute capability 8+), so "
            "train.precision=bfloat16 is likely slower than float32 here")
    return Setup(config, run, data, task, model, device, train_data, val_data, shape, dtype, checked)


def _check_data(config: RunConfig, data: ClassificationData | SegmentationData, log: Log) -> DataCheck:
    """The cheap data checks (:func:`~convscope.datasets.precheck.check_loaded`): warnings logged, errors refused."""
    checked = check_loaded(data, config.task, target=str(config.data.path or config.data.dataset))
    if checked.errors:
        raise ConvscopeError(checked.verdict)
    for folder in checked.folders:
        for f in folder.findings:
            if f.severity == "warning":
                log(f"data check: {f.finding}" + (f" ({f.fix})" if f.fix else ""))
    return checked


def _whole_images(config: RunConfig, data: ClassificationData, device: torch.device) -> tuple:
    """Training and validation sets of whole images (a classifier's)."""
    norm = config.data.normalize
    train, val = TensorImages.from_set(data.train, norm, device), TensorImages.from_set(data.val, norm, device)
    return train, val, data.image_shape, str(data.train.images.dtype), f" of {'x'.join(map(str, data.image_shape))}"


def _patches(config: RunConfig, data: SegmentationData, task: Task, device: torch.device) -> tuple:
    """Random training patches and a fixed validation patch grid (a dense task's), with the task's cached
    targets when it has them."""
    cfg = config.data
    if cfg.patch_size % task.grid:
        raise ConvscopeError(f"data.patch_size: {cfg.patch_size} is not a multiple of {task.name}.grid={task.grid}")
    instances = task.kind == "instances"
    start = time.perf_counter()
    train_targets, val_targets = (cached_targets(task, split.masks, name)
                                  for split, name in ((data.train, "train"), (data.val, "val")))
    seconds = time.perf_counter() - start
    train = PatchSampler(data.train, cfg.normalize, patch=cfg.patch_size, samples=cfg.patches_per_epoch,
                         foreground_bias=cfg.foreground_bias, seed=config.train.seed, device=device,
                         instances=instances, targets=train_targets)
    val = PatchGrid(data.val, cfg.normalize, patch=cfg.patch_size, device=device, instances=instances,
                    targets=val_targets, encode=task.encode)
    shape = (cfg.patch_size, cfg.patch_size, data.channels)
    objects = f" with {sum(len(np.unique(m)) - 1 for m in data.train.masks):,} training objects" if instances else ""
    made = f", targets made in {seconds:.1f} s" if train_targets is not None else ""
    what = (f"{objects} (training on {cfg.patches_per_epoch} random {cfg.patch_size}x{cfg.patch_size} patches per "
            f"epoch, {task.describe()}{made})")
    return train, val, shape, str(data.train.images[0].dtype), what


def cached_targets(task: Task, masks: list[np.ndarray], what: str) -> list[np.ndarray] | None:
    """:meth:`Task.targets` of every label image (H, W), once per data set, with a progress bar; ``None`` when
    the task trains on the labels themselves."""
    from tqdm import tqdm

    bar = tqdm(masks, desc=f"{what} targets", unit="img", leave=False, disable=not sys.stderr.isatty())
    targets = []
    for mask in bar:
        target = task.targets(mask)
        if target is None:
            return None
        targets.append(target)
    return targets


def _fit(s: Setup, *, checkpoint: dict[str, Any] | None, log: Log, on_epoch: OnEpoch | None = None,
         cancel: threading.Event | None = None) -> Fitted:
    cfg = s.config.train
    trainable = [p for p in s.model.parameters() if p.requires_grad]
    optimizer = adam(trainable, cfg.learning_rate, s.device)
    plateau = cfg.lr_plateau
    scheduler = None
    if plateau.patience:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=plateau.factor, patience=plateau.patience, min_lr=plateau.min_lr)
    ctx = distributed.context()
    model = distributed.wrap(s.model, s.device)  # DistributedDataParallel on several ranks
    forward = torch.compile(model) if cfg.compile else model
    augment = build_augmentation(s.config.augment, with_mask=s.task.kind != "classification")
    per_epoch = s.config.data.images_per_epoch if s.task.kind == "classification" else None
    batches = ShuffledBatches(len(s.train), cfg.batch_size, cfg.seed, samples=per_epoch, rank=ctx.rank,
                              world=ctx.world_size)
    totals: dict[str, Any] = {}

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    train_step = make_train_step(forward, s.model, s.task, optimizer, augment, cfg)
    fit_step = make_fit_step(s.train, train_step, s.task, totals, channels_last=cfg.channels_last)

    def step(engine: Engine, index: torch.Tensor) -> torch.Tensor:
        if cancelled():
            engine.terminate()
            return torch.zeros(())
        return fit_step(index)

    trainer = Engine(step)
    history: list[dict[str, float]] = list(checkpoint["history"]) if checkpoint else []
    best = {"val_loss": checkpoint["best_val_loss"] if checkpoint else float("inf")}
    timer = {"start": 0.0}

    @trainer.on(Events.EPOCH_STARTED)
    def _start(engine: Engine) -> None:
        batches.set_epoch(engine.state.epoch)
        distributed.reseed(cfg.seed, engine.state.epoch)
        if hasattr(s.train, "set_epoch"):
            s.train.set_epoch(engine.state.epoch)
        totals.clear()
        timer["start"] = time.perf_counter()

    @trainer.on(Events.EPOCH_COMPLETED)
    def _end(engine: Engine) -> None:
        if cancelled():
            return
        seconds = round(time.perf_counter() - timer["start"], 3)
        summed = distributed.sum_over_ranks(dict(totals))  # every rank's share of the epoch
        n = max(summed.pop("n", 0), 1)
        sums = {k: float(v) for k, v in summed.items()}
        train = {"loss": sums.pop("loss") / n, **s.task.summarize(sums, n)}
        val_start = time.perf_counter()
        val = distributed.from_main(  # rank 0 validates the unwrapped model; every rank decides on its result
            evaluate_loss(s.model if ctx.active else forward, s.task, s.val, batch_size=cfg.batch_size,
                          channels_last=cfg.channels_last) if ctx.is_main else None)
        row: dict[str, float] = {"epoch": engine.state.epoch}
        for name in train:
            row[f"train_{name}"], row[f"val_{name}"] = train[name], val[name]
        row.update(lr=optimizer.param_groups[0]["lr"], seconds=seconds,
                   validation_seconds=round(time.perf_counter() - val_start, 3))
        history.append(row)
        val_loss = val["loss"]
        engine.state.metrics["val_loss"] = val_loss
        if scheduler is not None:
            scheduler.step(val_loss)
        improved = val_loss < best["val_loss"]
        if improved:
            best["val_loss"] = val_loss
            if ctx.is_main:
                _save_model(s)
        if not ctx.is_main:
            return
        s.run.write_history(history)
        if on_epoch is not None:
            on_epoch(dict(row))
        log(f"epoch {row['epoch']:>3}/{cfg.epochs}  {_fmt(train)}  | val {_fmt(val)}  ({seconds:.1f} s)"
            + ("  *" if improved else ""))

    stopper = None
    if cfg.early_stopping.patience:
        stopper = EarlyStopping(patience=cfg.early_stopping.patience, threshold=cfg.early_stopping.min_delta,
                                score_function=lambda e: -e.state.metrics["val_loss"], trainer=trainer)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, stopper)

    if cfg.time_limit:
        trainer.add_event_handler(Events.EPOCH_COMPLETED, _time_limit(cfg.time_limit * 60, history, log))

    if ctx.active:  # rank 0's decision to stop (time limit, early stopping) is every rank's
        trainer.add_event_handler(Events.EPOCH_COMPLETED, _stop_with_main)

    @trainer.on(Events.EPOCH_COMPLETED)  # after early stopping, so the checkpoint knows whether it stopped
    def _checkpoint(engine: Engine) -> None:
        if cancelled() or not ctx.is_main:  # the last checkpoint stays that of the last whole epoch
            return
        _save_checkpoint(s.run, s.model, optimizer, engine, history, best["val_loss"], stopper, scheduler)

    if cfg.progress and ctx.is_main:
        attach_progress_bar(trainer)

    if checkpoint:
        _restore(checkpoint, s.model, optimizer, trainer, stopper, len(batches), cfg.epochs, s.run.checkpoint)
        if scheduler is not None and checkpoint.get("scheduler") is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
    done = (checkpoint is not None and checkpoint["trainer"]["epoch"] >= cfg.epochs) or _stopped(checkpoint)
    if not done:
        trainer.run(batches, max_epochs=cfg.epochs)
    if cancelled():
        log(f"cancelled after epoch {len(history)}; `convscope resume {s.run.path}` continues the run")
        return Fitted(s.run, s.config, s.data, history, completed=False)
    distributed.write_report(s.run.path, s.model, s.device)
    if ctx.is_main:
        shutil.rmtree(s.run.checkpoint.parent, ignore_errors=True)
    return Fitted(s.run, s.config, s.data, history, completed=True)


def attach_progress_bar(trainer: Engine) -> None:
    """The terminal's progress bar over an epoch's batches, with the running loss; none without a terminal (a
    hidden bar would still cost its per-step bookkeeping)."""
    if not sys.stderr.isatty():
        return
    bar = ProgressBar(persist=False, desc="train", mininterval=0.5)
    bar.attach(trainer, output_transform=lambda loss: {"loss": loss.item()})


def _stop_with_main(engine: Engine) -> None:
    engine.should_terminate = bool(distributed.from_main(engine.should_terminate))


def _time_limit(seconds: float, history: list[dict[str, float]], log: Log) -> Callable[[Engine], None]:
    """An epoch-end handler that stops training before an epoch as long as the last would pass ``seconds`` of
    wall-clock time (validation included; epochs before a resume counted by their training time)."""
    before = sum(row["seconds"] for row in history)
    start = time.perf_counter()
    last = {"at": start}

    def check(engine: Engine) -> None:
        now = time.perf_counter()
        spent, epoch = before + now - start, now - last["at"]
        last["at"] = now
        if spent + epoch > seconds:
            log(f"time limit: {spent / 60:.1f} of {seconds / 60:g} min spent; stopping after epoch "
                f"{engine.state.epoch}")
            engine.terminate()

    return check


def _fmt(metrics: dict[str, float]) -> str:
    return "  ".join(f"{name} {value:.4f}" for name, value in metrics.items())


def _save_model(s: Setup) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in s.model.state_dict().items()}
    with atomic_path(s.run.weights) as tmp:
        save_file(state, tmp)
    write_json(s.run.model_config, model_config(s))


def _save_checkpoint(run: RunDir, model: nn.Module, optimizer: torch.optim.Optimizer, trainer: Engine,
                     history: list[dict[str, float]], best_val_loss: float, stopper: EarlyStopping | None,
                     scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None) -> None:
    state = {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "trainer": {"epoch": trainer.state.epoch, "iteration": trainer.state.iteration},
        "history": history, "best_val_loss": best_val_loss,
        "stopper": stopper.state_dict() if stopper is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "stopped": bool(trainer.should_terminate),
        "rng": torch.get_rng_state(),
    }
    with atomic_path(run.checkpoint) as tmp:
        torch.save(state, tmp)


def _restore(ckpt: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer, trainer: Engine,
             stopper: EarlyStopping | None, epoch_length: int, max_epochs: int, path: Path) -> None:
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ConvscopeError(f"{path}: the checkpoint does not fit the run's model ({first}); the run cannot be "
                             "resumed, start a new one") from None
    if stopper is not None and ckpt["stopper"] is not None:
        stopper.load_state_dict(ckpt["stopper"])
    torch.set_rng_state(ckpt["rng"])
    epoch = ckpt["trainer"]["epoch"]
    trainer.load_state_dict({"epoch": epoch, "epoch_length": epoch_length, "max_epochs": max(max_epochs, epoch)})


def _stopped(ckpt: dict[str, Any] | None) -> bool:
    return bool(ckpt and ckpt.get("stopped"))

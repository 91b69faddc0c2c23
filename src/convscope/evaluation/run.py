"""Judging a trained run on its splits: thresholds tuned on validation, the task's metrics on each split, the
overfitting diagnosis, and ``metrics.json``. Any task: the task says how (:meth:`Task.tune`,
:meth:`Task.evaluate_split`); drawing the report is :mod:`convscope.report`'s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convscope.datasets import load_task_data
from convscope.datasets.base import ClassificationData
from convscope.datasets.record import recorded_data
from convscope.datasets.segmentation import SegmentationData
from convscope.errors import ConvscopeError
from convscope.evaluation.baselines import baseline_summary, run_baseline
from convscope.inference import Predictor
from convscope.io.atomic import write_json
from convscope.metrics.overfitting import OverfittingDiagnosis, diagnose_overfitting
from convscope.models.summary import count_params
from convscope.runs import TrainedRun, load_run
from convscope.tasks import Kind
from convscope.tasks.instances import USELESS_SCORE

Log = Callable[[str], None]


@dataclass(frozen=True)
class RunEvaluation:
    """What a run's evaluation found, for ``metrics.json`` and the report.

    Attributes
    ----------
    trained : TrainedRun
        The run, its task with the thresholds used.
    metrics : dict
        ``metrics.json``: one entry per split (the task's layout), ``overfitting``, ``params``, the task's
        run-level entries (thresholds) and, for segmentation, ``baseline``: ``{"test": ...}``, a classical
        baseline scored on the test images with the same metrics (:func:`convscope.evaluation.baselines.run_baseline`).
    examples : dict
        Split -> the images the report shows (see :class:`convscope.tasks.SplitResult`).
    history : list of dict
        ``history.csv``.
    diagnosis : OverfittingDiagnosis or None
    """

    trained: TrainedRun
    metrics: dict[str, Any]
    examples: dict[str, list[dict[str, Any]]]
    history: list[dict[str, float]]
    diagnosis: OverfittingDiagnosis | None
    #: False for an interrupted run: nothing was written to its directory (no metrics.json, report, thresholds).
    saved: bool = True

    @property
    def kind(self) -> Kind:
        return self.trained.task.kind


def finish_run(trained: TrainedRun, data: ClassificationData | SegmentationData, history: list[dict[str, float]],
               *, splits: tuple[str, ...] = ("val", "test"), tune: bool = True, save: bool = True, log: Log = print
               ) -> RunEvaluation:
    """Evaluate the run's best weights on ``splits`` and write ``metrics.json``.

    With ``tune`` (at the end of training, or ``--retune``) the task's decoding thresholds are first tuned on the
    validation images and saved in ``model/config.json``; without it the saved ones are used. Without ``save``
    nothing is written (the thresholds tuned are used for this evaluation only).
    """
    predictor = Predictor(trained, batch_size=trained.config.train.batch_size)
    metrics = trained.run.read_metrics()
    needs_val = (tune and trained.task.thresholds) or "val" in splits
    val_preds = predictor.predict_many(data.val.images) if needs_val else []
    if tune and trained.task.thresholds:
        _tune(trained, predictor, val_preds, data.val.truths, log, save=save)
    examples: dict[str, list[dict[str, Any]]] = {}
    for split in splits:
        images = getattr(data, split)
        if images is None or not len(images):
            if split == "test":  # a fine-tuning run on every corrected image has none
                log("test: no test images (every image trained); score the run on other labelled images with "
                    "convscope.evaluate_labelled(RUN, DIR)")
            continue
        predictor.timings = type(predictor.timings)()
        preds = val_preds if split == "val" else predictor.predict_many(images.images)
        results = [predictor.decode(p, image.shape[:2]) for p, image in zip(preds, images.images, strict=True)]
        result = predictor.task.evaluate_split(images.images, images.truths, preds, list(images.paths), results)
        metrics[split] = result.metrics
        t = predictor.timings
        if split != "val" and t.megapixels:  # dense tasks: the cost of a megapixel
            metrics[split]["seconds_per_megapixel"] = {"network": t.network / t.megapixels,
                                                       "postprocess": t.postprocess / t.megapixels}
        examples[split] = result.examples
        log(f"{split}: {result.summary}")
    if "test" in examples and isinstance(data, SegmentationData):
        baseline = run_baseline(trained.task.kind, data.val, data.test, data.class_names)
        if baseline is not None:
            metrics["baseline"] = {"test": baseline}
            log(f"baseline on test: {baseline_summary(baseline)}")
    metrics.update(predictor.task.reported())
    diagnosis = diagnose_overfitting(history) if history else None
    if diagnosis is not None:
        metrics["overfitting"] = diagnosis.to_dict()
        log(f"overfitting: {diagnosis.summary}")
    trainable, non_trainable = count_params(trained.model)
    metrics["params"] = {"trainable": trainable, "non_trainable": non_trainable}
    if save:
        trained.run.write_metrics(metrics)
    return RunEvaluation(trained, metrics, examples, history, diagnosis, saved=save)


def _tune(trained: TrainedRun, predictor: Predictor, preds: list[Any], truths: Any, log: Log, *,
          save: bool = True) -> None:
    """Tune the task's thresholds on the validation predictions; save them with the model (with ``save``)."""
    log(f"tuning thresholds on {len(preds)} validation images ...")
    thresholds, score = trained.task.tune(preds, truths)
    trained.task = predictor.task = trained.task.with_thresholds(thresholds)
    model_cfg = trained.run.read_model_config()
    model_cfg.update(trained.task.saved())
    if save:
        write_json(trained.run.model_config, model_cfg)
    trained.model_config = model_cfg
    chosen = ", ".join(f"{name} {value:g}" for name, value in thresholds.items())
    log(f"thresholds tuned on validation: {chosen} (score {score:.4f})")
    if score < USELESS_SCORE:
        log(f"warning: the best validation score of the thresholds is {score:.4f}: the model finds (almost) nothing "
            "(of equal scores, the thresholds that predict the fewest objects are kept); train longer or check the "
            "data (`convscope data check`)")


def evaluate_run(path: str | Path, *, split: str = "test", data_dir: Path | None = None, tta: bool | None = None,
                 retune: bool = False, color: str | None = None, log: Log = print) -> RunEvaluation:
    """Re-evaluate a run on ``split`` ("test", "val" or "all") and update its ``metrics.json``.

    The data are loaded as in training (same recipe, seed and split) from the folder the run was trained on
    (``RUN/data.json``; a warning when its content changed), or from ``data_dir`` when given (for ``folder`` and
    ``paired`` data: the folder itself). ``color`` replaces the recipe's ``data.color``. An interrupted run is
    evaluated with a warning and nothing is written to its directory. ``tta``: switch
    test-time augmentation on or off (tasks that predict with flips); when that changes the run's setting, the
    decoding thresholds are tuned again on the validation images and both are saved with the model. ``retune``:
    tune the thresholds again in any case (tasks with thresholds).
    """
    if split not in ("test", "val", "all"):
        raise ConvscopeError(f"--split {split}: use test, val or all")
    trained = load_run(path)
    task = trained.task
    if retune and not task.thresholds:
        raise ConvscopeError(f"{path}: a {task.name} run has no decoding thresholds to tune (--retune)")
    if tta is not None and (task.section is None or "tta" not in task.section.model_fields):
        raise ConvscopeError(f"{path}: a {task.name} run cannot predict with flips (--tta is for stardist and flows)")
    note = trained.interruption()
    if note:
        log(note)
    config = trained.config
    data_cfg, data_dir = recorded_data(config.data, trained.run.read_data_record(), data_dir, run=Path(path), log=log)
    if color is not None:
        data_cfg = data_cfg.model_copy(update={"color": color})
    data = load_task_data(data_cfg, task.kind, data_dir=data_dir, seed=config.train.seed)
    if task.kind == "classification" and tuple(data.class_names) != task.class_names:
        raise ConvscopeError(f"{path}: the data's classes {data.class_names} differ from the model's "
                             f"{task.class_names}; pass the --data folder the run was trained on")
    if tta is not None and task.tta != tta:
        trained.task = task.model_copy(update={"tta": tta})  # a task with flips is its (pydantic) section
        model_cfg = trained.run.read_model_config()
        model_cfg[task.name]["tta"] = tta
        if trained.finished:
            write_json(trained.run.model_config, model_cfg)
        log(f"test-time augmentation {'on' if tta else 'off'}: tuning the thresholds again")
        retune = True
    splits = ("val", "test") if split == "all" else (split,)
    return finish_run(trained, data, trained.run.read_history(), splits=splits, tune=retune, save=trained.finished,
                      log=log)

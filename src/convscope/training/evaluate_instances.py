"""Evaluation of an instance run (star-convex or flows) on whole images: thresholds tuned on validation,
StarDist-compatible matching at IoU 0.1 ... 0.9, per-image scores, best/worst overlays, and the files that close
the run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convscope.config import RunConfig
from convscope.datasets.segmentation import SegmentationData, SegmentationSet
from convscope.io.atomic import write_json
from convscope.metrics.matching import DEFAULT_THRESHOLDS, evaluate_label_pairs, matching_dataset
from convscope.report.segmentation import select_best_worst
from convscope.runs.layout import RunDir
from convscope.tasks.instances import InstanceTask

Log = Callable[[str], None]

#: The IoU thresholds whose mean matching accuracy the tuning maximises.
TUNING_IOUS = (0.3, 0.5, 0.7)
#: IoU thresholds of the pooled matching table in metrics.json.
REPORTED_IOUS = tuple(sorted({*DEFAULT_THRESHOLDS, 0.75}))
#: Best and worst images of a split shown as outline overlays in the report (each).
N_OVERLAYS = 3


def tune_thresholds(task: InstanceTask, preds: Sequence[tuple[np.ndarray, ...]], labels: Sequence[np.ndarray],
                    ) -> tuple[dict[str, float], float]:
    """The decoding thresholds of ``task.threshold_grid()`` that maximise the mean matching accuracy at IoU 0.3,
    0.5 and 0.7 over the validation images.

    Parameters
    ----------
    task : StarDistTask or FlowTask
    preds : sequence of tuples of ndarray
        :meth:`split_output` of the network outputs of the validation images.
    labels : sequence of ndarray, each (H, W) integer
        Their true label images.

    Returns
    -------
    thresholds : dict
        For example ``{"prob": 0.5, "nms": 0.3}`` (star-convex) or ``{"prob": 0.5, "flow": 0.4}`` (flows).
    score : float
        The mean accuracy reached.
    """
    candidates = task.threshold_grid()
    decoded = task.decode_candidates(preds, [y.shape for y in labels], candidates)
    scores = [float(np.mean([m.accuracy for m in matching_dataset(labels, pred_labels, thresh=TUNING_IOUS)]))
              for pred_labels in decoded]
    best = int(np.argmax(scores))
    return candidates[best], scores[best]


def split_metrics(data: SegmentationSet, pred_labels: Sequence[np.ndarray]) -> dict[str, Any]:
    """Pooled matching at IoU 0.1 ... 0.9 and 0.75, and per-image scores at IoU 0.5 (metrics.json layout of
    :func:`convscope.metrics.evaluate_label_pairs`)."""
    return evaluate_label_pairs(data.masks, pred_labels, names=list(data.paths), thresholds=REPORTED_IOUS)


def overlay_examples(data: SegmentationSet, pred_labels: Sequence[np.ndarray], per_image: list[dict[str, Any]],
                     k: int = N_OVERLAYS) -> list[dict[str, Any]]:
    """The ``k`` images of lowest matching accuracy at IoU 0.5 (lowest first), then the ``k`` highest.

    Returns
    -------
    list of dict
        ``{"image": (H, W, C) raw, "true_labels": (H, W), "pred_labels": (H, W), "name", "accuracy", "f1",
        "group": "worst" | "best"}``.
    """
    worst, best = select_best_worst([row["accuracy@0.5"] for row in per_image], k)
    return [
        {"image": data.images[i], "true_labels": data.masks[i], "pred_labels": pred_labels[i],
         "name": per_image[i]["name"], "accuracy": per_image[i]["accuracy@0.5"], "f1": per_image[i]["f1@0.5"],
         "group": group}
        for group, indices in (("worst", worst), ("best", best))
        for i in indices
    ]


def finish_instance_run(run: RunDir, config: RunConfig, data: SegmentationData, history: list[dict[str, float]],
                        *, log: Log = print, splits: tuple[str, ...] = ("val", "test"), tune: bool = True
                        ) -> dict[str, Any]:
    """Evaluate whole images and write metrics.json, curves and report.

    The task (its options and thresholds) is the one saved in the run's ``model/config.json``. With ``tune`` (at
    the end of training) the decoding thresholds are first tuned on the validation images and saved there; without
    it (``convscope evaluate``) the saved ones are used.
    """
    from convscope.inference.instances import InstanceSegmenter
    from convscope.training.evaluate import close_run

    segmenter = InstanceSegmenter(run, config.train.device, batch_size=config.train.batch_size)
    metrics = run.read_metrics()
    val_preds = [segmenter.predict(image) for image in data.val.images] if tune or "val" in splits else []
    if tune:
        log(f"tuning thresholds on {len(data.val)} validation images ...")
        thresholds, score = tune_thresholds(segmenter.task, val_preds, data.val.masks)
        segmenter.task = segmenter.task.with_thresholds(thresholds)
        model_cfg = run.read_model_config()
        model_cfg["thresholds"] = thresholds
        write_json(run.model_config, model_cfg)
        chosen = ", ".join(f"{name} {value:g}" for name, value in thresholds.items())
        log(f"thresholds tuned on validation: {chosen} (mean accuracy at IoU {', '.join(map(str, TUNING_IOUS))}: "
            f"{score:.4f})")
    examples: dict[str, list[dict[str, Any]]] = {}
    for split in splits:
        images = getattr(data, split)
        if images is None:
            continue
        segmenter.timings = type(segmenter.timings)()
        preds = val_preds if split == "val" else [segmenter.predict(image) for image in images.images]
        pred_labels = [segmenter.decode(p, y.shape) for p, y in zip(preds, images.masks, strict=True)]
        m = metrics[split] = split_metrics(images, pred_labels)
        if split != "val":
            t = segmenter.timings
            m["seconds_per_megapixel"] = {"network": t.network / t.megapixels,
                                          "postprocess": t.postprocess / t.megapixels}
        examples[split] = overlay_examples(images, pred_labels, m["per_image"])
        at = m["matching"]["0.5"]
        log(f"{split}: at IoU 0.5 accuracy {at['accuracy']:.4f}  F1 {at['f1']:.4f}  precision {at['precision']:.4f}"
            f"  recall {at['recall']:.4f}  PQ {at['panoptic_quality']:.4f} ({len(images)} images, "
            f"{m['n_true']:,} true / {m['n_pred']:,} predicted objects)")
    metrics["thresholds"] = segmenter.task.thresholds
    return close_run(run, segmenter.model, metrics, history, examples, log=log)

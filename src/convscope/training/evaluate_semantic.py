"""Evaluation of a semantic-segmentation run on whole images (tiled), with the threshold tuned on
validation, and the files that close the run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from convscope.config import RunConfig
from convscope.datasets.segmentation import SegmentationData, SegmentationSet
from convscope.io.atomic import write_json
from convscope.metrics.pixel import segmentation_report, tune_threshold
from convscope.report.segmentation import select_best_worst
from convscope.runs.layout import RunDir
from convscope.tasks.semantic import SemanticTask

Log = Callable[[str], None]

#: Best and worst images of a split shown as error overlays in the report (each).
N_OVERLAYS = 3


def split_metrics(task: SemanticTask, data: SegmentationSet, preds: list[np.ndarray]) -> dict[str, Any]:
    """Micro/macro/per-image pixel metrics of one split; each per-image entry also has the fraction of
    foreground (non-zero) pixels in the true mask and in the prediction (``true_foreground_fraction``,
    ``predicted_foreground_fraction``)."""
    report = segmentation_report(data.masks, preds, class_names=task.class_names, image_names=list(data.paths))
    metrics = report.to_dict()
    for row, mask, pred in zip(metrics["per_image"], data.masks, preds, strict=True):
        row["true_foreground_fraction"] = float(np.count_nonzero(mask) / mask.size)
        row["predicted_foreground_fraction"] = float(np.count_nonzero(pred) / pred.size)
    return metrics


def overlay_examples(data: SegmentationSet, preds: list[np.ndarray], per_image: list[dict[str, Any]],
                     k: int = N_OVERLAYS) -> list[dict[str, Any]]:
    """The ``k`` lowest-Dice images (lowest first), then the ``k`` highest (highest first), for the report.

    Returns
    -------
    list of dict
        ``{"image": (H, W, C) raw, "true_mask": (H, W), "pred_mask": (H, W) uint8, "name", "dice", "iou",
        "group": "worst" | "best"}``.
    """
    worst, best = select_best_worst([row["dice"] for row in per_image], k)
    return [
        {"image": data.images[i], "true_mask": data.masks[i], "pred_mask": preds[i], "name": per_image[i]["name"],
         "dice": per_image[i]["dice"], "iou": per_image[i]["iou"], "group": group}
        for group, indices in (("worst", worst), ("best", best))
        for i in indices
    ]


def finish_semantic_run(run: RunDir, config: RunConfig, data: SegmentationData, task: SemanticTask,
                        history: list[dict[str, float]], *, log: Log = print,
                        splits: tuple[str, ...] = ("val", "test"), tune: bool = True) -> dict[str, Any]:
    """Evaluate whole images and write metrics.json, curves and report.

    With ``tune`` (at the end of training) the foreground threshold of a binary task is first tuned on
    the validation images (maximal Dice) and saved in ``model/config.json``; without it (``convscope
    evaluate``) the saved threshold is used.
    """
    from convscope.inference.segmenter import Segmenter
    from convscope.training.evaluate import close_run

    segmenter = Segmenter(run, config.train.device, batch_size=config.train.batch_size)
    segmenter.task = task
    metrics = run.read_metrics()

    def logits_of(images: SegmentationSet) -> list[np.ndarray]:
        return [segmenter.logits(image) for image in images.images]

    val_logits = logits_of(data.val) if tune or "val" in splits else []
    if tune and task.binary:
        best, _ = tune_threshold([1 / (1 + np.exp(-z[0])) for z in val_logits], data.val.masks, metric="dice")
        task = segmenter.task = replace(task, threshold=float(best))
        model_cfg = run.read_model_config()
        model_cfg["threshold"] = float(best)
        write_json(run.model_config, model_cfg)
        log(f"threshold tuned on validation (Dice): {best:.2f}")
    examples: dict[str, list[dict[str, Any]]] = {}
    for split in splits:
        images = getattr(data, split)
        if images is None:
            continue
        logits = val_logits if split == "val" else logits_of(images)
        preds = [segmenter.decode(z) for z in logits]
        metrics[split] = split_metrics(task, images, preds)
        m = metrics[split]
        examples[split] = overlay_examples(images, preds, m["per_image"])
        log(f"{split}: dice {m['dice']:.4f}  iou {m['iou']:.4f}  pixel accuracy {m['pixel_accuracy']:.4f} "
            f"(all-background: {m['all_background_accuracy']:.4f}; {len(images)} images)")
    metrics["threshold"] = task.threshold
    return close_run(run, segmenter.model, metrics, history, examples, log=log)

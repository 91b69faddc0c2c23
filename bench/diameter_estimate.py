"""The automatic object diameter of a built-in model on rescaled real nuclei: one pass versus one pass + refinement.

    PYTHONPATH=src .venv/bin/python bench/diameter_estimate.py [--model nuclei] [--data ../shared/data] \
        [--limit 12] [--factors 0.5 1 2] [--threads 1] [--out FILE.json]

The first ``--limit`` DSB 2018 fluorescence test images (each kind split on its own; none used for training or
threshold tuning) and their labels are resized by each factor (linear / nearest), so the nuclei are that many times
their size. Each image is then segmented three ways:

- ``given``: with the diameter of the resized truth (its median object diameter: the user knows the size);
- ``one pass``: the diameter estimated by one pass at scale 1 (the median diameter of the objects found), then
  segmented at the scale it asks for (convscope before 2026-12-06);
- ``refined``: :func:`convscope.inference.rescale.segment_at_diameter` without a diameter (that estimate measured
  again by a pass at its scale, as Cellpose refines its size model's guess).

Reported per factor and method: the median over images of estimated / true median diameter, the mean absolute log
of that ratio, and matching accuracy at IoU 0.5 pooled over the images (``matching_dataset``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from convscope.datasets.folders import load_image
from convscope.datasets.segmentation import dsb2018_split_ids, image_kinds
from convscope.inference import Predictor
from convscope.inference.rescale import (
    median_diameter,
    resize_image,
    resize_labels,
    segment_at_diameter,
)
from convscope.io.image import read_image
from convscope.metrics import matching_dataset

METHODS = ("given", "one pass", "refined")


def one_pass(segmenter: Predictor, image: np.ndarray, model_diameter: float) -> tuple[np.ndarray, float]:
    """Labels (H, W) at the scale a single pass at scale 1 asks for, and that pass's diameter estimate."""
    guess = median_diameter(segmenter.segment(image))
    if not np.isfinite(guess):
        guess = model_diameter
    found = segment_at_diameter(segmenter, image, model_diameter=model_diameter, diameter=guess)
    return found.labels, guess


def measure(segmenter: Predictor, images: list[np.ndarray], truths: list[np.ndarray], factor: float) -> dict:
    """Per-method diameter ratios and pooled accuracy@0.5 on ``images`` resized by ``factor``."""
    model_diameter = float(segmenter.run.diameter)
    labels: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    ratios: dict[str, list[float]] = {m: [] for m in METHODS}
    scaled_truths = []
    for image, truth in zip(images, truths, strict=True):
        shape = (round(image.shape[0] * factor), round(image.shape[1] * factor))
        x, y = (image, truth) if factor == 1 else (resize_image(image, shape), resize_labels(truth, shape))
        scaled_truths.append(y)
        true_d = median_diameter(y)
        given = segment_at_diameter(segmenter, x, model_diameter=model_diameter, diameter=true_d)
        first, guess = one_pass(segmenter, x, model_diameter)
        refined = segment_at_diameter(segmenter, x, model_diameter=model_diameter)
        for m, (lab, d) in zip(METHODS, [(given.labels, true_d), (first, guess), (refined.labels, refined.diameter)],
                               strict=True):
            labels[m].append(lab)
            ratios[m].append(d / true_d)
    return {m: {"median_ratio": float(np.median(ratios[m])),
                "mean_abs_log_ratio": float(np.mean(np.abs(np.log(ratios[m])))),
                "accuracy@0.5": float(matching_dataset(scaled_truths, labels[m], thresh=0.5).accuracy)}
            for m in METHODS}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="nuclei", help="built-in model or run directory recording a diameter")
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    p.add_argument("--limit", type=int, default=12, help="the first N fluorescence test images")
    p.add_argument("--factors", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="write the results as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = args.data / "dsb2018"
    ids = dsb2018_split_ids(image_kinds(folder), ["fluorescence_gray"])[2][: args.limit]
    images = [load_image(folder / "images" / f"{i}.png", color="gray") for i in ids]
    truths = [read_image(folder / "masks" / f"{i}.png") for i in ids]
    segmenter = Predictor.from_run(args.model, device="cpu")
    results = {}
    print("| factor | method | est / true diameter (median) | mean abs log ratio | accuracy@0.5 |")
    print("|---|---|---|---|---|")
    for factor in args.factors:
        results[str(factor)] = measure(segmenter, images, truths, factor)
        for m, r in results[str(factor)].items():
            print(f"| {factor:g} | {m} | {r['median_ratio']:.3f} | {r['mean_abs_log_ratio']:.3f} | "
                  f"{r['accuracy@0.5']:.3f} |", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "images": len(ids), "results": results}, indent=2))


if __name__ == "__main__":
    main()

"""A star-convex or flow model (a run directory or a built-in name) and an Otsu + watershed baseline on the DSB 2018
test split, by image kind (fluorescence_gray, brightfield_gray, color_stained).

    PYTHONPATH=src .venv/bin/python bench/pretrained_bykind.py MODEL [MODEL ...] --data ../shared/data \
        [--kinds fluorescence_gray,brightfield_gray,color_stained] [--baseline] [--threads 1] [--out FILE.json]

Each kind is split on its own by the fixed rule (``dsb2018_split_ids``: 70/15/15 %, seed 2018), so the
fluorescence test images are the 81 of every other dsb2018 result; none was used for training or threshold tuning.
Images are read as the model was trained (``color`` of its config: grey models read stained RGB images as grey).
Reported per kind: matching F1, accuracy and PQ at IoU 0.5 and 0.75 (``matching_dataset``, pooled over images) and
CPU seconds per megapixel (process CPU time of network + decoding, ``--threads`` torch threads), predicted as
``convscope predict`` does (tiles of up to ``PREDICT_TILE`` pixels, ONNX Runtime where the onnx extra is installed).

The baseline is the one of ``convscope evaluate`` (``convscope.evaluation.baselines.watershed_labels``): Otsu
threshold of the grey image, split by a watershed of its distance transform; its polarity (nuclei brighter or darker
than the background) is chosen on the kind's validation images (``choose_polarity``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from convscope.datasets.folders import load_image
from convscope.datasets.segmentation import dsb2018_split_ids, image_kinds
from convscope.evaluation.baselines import choose_polarity, watershed_labels
from convscope.io.image import read_image
from convscope.metrics import matching_dataset

KINDS = ("fluorescence_gray", "brightfield_gray", "color_stained")


def otsu_watershed(folder: Path, val_ids: list[str]):
    """``convscope evaluate``'s instance baseline, its polarity chosen on the images ``val_ids``: image -> labels."""
    images = [load_image(folder / "images" / f"{i}.png", color="gray") for i in val_ids]
    masks = [read_image(folder / "masks" / f"{i}.png") for i in val_ids]
    polarity = choose_polarity(images, masks)
    return lambda image: watershed_labels(image, polarity=polarity)


def _segmenter(source: str):
    from convscope.inference import Predictor
    from convscope.inference.predictor import PREDICT_TILE

    # a run directory or a built-in model's name, predicted as `convscope predict` does
    return Predictor.from_run(source, device="cpu", backend="auto", tile=PREDICT_TILE)


def _scores(truth: list[np.ndarray], pred: list[np.ndarray]) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in matching_dataset(truth, pred, thresh=(0.5, 0.75)):
        key = f"{m.thresh:g}"
        out.update({f"f1@{key}": round(m.f1, 4), f"accuracy@{key}": round(m.accuracy, 4),
                    f"pq@{key}": round(m.panoptic_quality, 4)})
    out["n_true"] = int(m.n_true)
    return out


def evaluate_kind(predict, folder: Path, ids: list[str], color: str) -> dict[str, float]:
    """Scores of ``predict(image) -> labels`` on the images ``ids`` plus CPU seconds per megapixel."""
    truth, pred, cpu, mpx = [], [], 0.0, 0.0
    for i in ids:
        image = load_image(folder / "images" / f"{i}.png", color=color)
        start = time.process_time()
        pred.append(predict(image))
        cpu += time.process_time() - start
        mpx += image.shape[0] * image.shape[1] / 1e6
        truth.append(read_image(folder / "masks" / f"{i}.png"))
    return {"images": len(ids), **_scores(truth, pred), "cpu_s_per_mpx": round(cpu / mpx, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="run directories or built-in model names")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--baseline", action="store_true", help="also score Otsu + watershed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.data / "dsb2018"
    table = image_kinds(folder)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for kind in args.kinds.split(","):
        _, val, test = dsb2018_split_ids(table, [kind])
        for source in args.models:
            seg = _segmenter(source)
            color = "rgb" if seg.run.channels == 3 else "gray"
            results.setdefault(source, {})[kind] = r = evaluate_kind(seg.segment, folder, test, color)
            print(source, kind, json.dumps(r), flush=True)
        if args.baseline:
            baseline = otsu_watershed(folder, val)
            results.setdefault("otsu_watershed", {})[kind] = r = evaluate_kind(baseline, folder, test, "gray")
            print("otsu_watershed", kind, json.dumps(r), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

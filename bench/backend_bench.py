"""Predictor backends side by side: torch eager vs ONNX Runtime on real DSB 2018 images, CPU seconds per megapixel
of the tiled network pass (the part the backend runs; decoding is the same for both).

    PYTHONPATH=src .venv/bin/python bench/backend_bench.py nuclei RUN [...] --data ../shared/data \
        [--images 20] [--threads 1] [--repeats 3] [--out FILE.json]

Images: the first ``--images`` fluorescence test images of DSB 2018 (``dsb2018_split_ids``, never used for training),
read as the model was trained. For every model the whole set is predicted ``--repeats`` times by each backend in
turn, after one warm-up image (the ONNX graph is traced on first use, outside the timing); reported: the median over
the repeats of wall seconds per megapixel, and the largest absolute difference between the backends' network outputs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from convscope.datasets.folders import load_image
from convscope.datasets.segmentation import dsb2018_split_ids, image_kinds
from convscope.inference import Predictor
from convscope.runs import load_run

BACKENDS = ("torch", "onnxruntime")


def time_backends(predictors: dict[str, Predictor], images: list[np.ndarray], repeats: int
                  ) -> tuple[dict[str, float], dict[str, list[np.ndarray]]]:
    """Median wall seconds per megapixel of each predictor's ``network`` over ``images`` (the backends take turns,
    repeat after repeat, so a change in the machine's load touches both), and their outputs."""
    for predictor in predictors.values():
        predictor.network(images[0])  # warm-up: the ONNX graph is traced and the session made here
    megapixels = sum(image.shape[0] * image.shape[1] for image in images) / 1e6
    runs: dict[str, list[float]] = {name: [] for name in predictors}
    outputs: dict[str, list[np.ndarray]] = {}
    for _ in range(repeats):
        for name, predictor in predictors.items():
            start = time.perf_counter()
            outputs[name] = [predictor.network(image) for image in images]
            runs[name].append((time.perf_counter() - start) / megapixels)
    return {name: statistics.median(r) for name, r in runs.items()}, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="run directories or built-in model names")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.data / "dsb2018"
    ids = dsb2018_split_ids(image_kinds(folder), ["fluorescence_gray"])[2][: args.images]
    results = {}
    for source in args.models:
        run = load_run(source, device="cpu")
        color = "rgb" if run.channels == 3 else "gray"
        images = [load_image(folder / "images" / f"{i}.png", color=color) for i in ids]
        row: dict[str, float | int | str] = {"task": run.task.name, "images": len(images),
                                              "megapixels": round(sum(i.shape[0] * i.shape[1] for i in images) / 1e6,
                                                                  3)}
        predictors = {b: Predictor(run, batch_size=args.batch_size, backend=b) for b in BACKENDS}
        seconds, outputs = time_backends(predictors, images, args.repeats)
        row.update({f"{b}_s_per_mpx": round(seconds[b], 3) for b in BACKENDS})
        row["max_abs_diff"] = float(max(np.abs(a - b).max() for a, b in zip(*outputs.values(), strict=True)))
        row["speedup"] = round(float(row["torch_s_per_mpx"]) / float(row["onnxruntime_s_per_mpx"]), 2)
        results[source] = row
        print(source, json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"threads": args.threads, "repeats": args.repeats, "results": results},
                                       indent=2) + "\n")


if __name__ == "__main__":
    main()

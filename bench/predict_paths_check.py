"""Every star-convex prediction path on the DSB 2018 fluorescence test images: accuracy, labels, seconds per megapixel.

    PYTHONPATH=src .venv/bin/python bench/predict_paths_check.py [--tiles 0 1024] [--backends onnxruntime] \
        [--threads 1] [--repeats 3] [--limit N] [--write]

The built-in ``nuclei`` model predicts the grey fluorescence test images of DSB 2018
(``dsb2018_split_ids(image_kinds(folder), ["fluorescence_gray"])[2]``, the images of the StarDist and speed
benchmarks) once per path: per backend (``--backends``) and largest tile side (``--tiles``; 0 = tiles of the
training patch, as before ``Predictor(tile=...)`` existed), decoded with the numpy reference (``CONVSCOPE_NUMBA=0``)
and with the default engine (numba when installed). For each path: F1, accuracy and panoptic quality at IoU 0.5
against the ground truth (``evaluate_label_pairs``), how many label images equal those of the reference path (the
first backend, training-patch tiles, numpy decode) exactly, the pooled F1 of its labels against the reference's at
IoU 0.5, and the median over ``--repeats`` passes of the network and decoding seconds per megapixel
(``Predictor.timings``; one untimed warm-up image first). ``--write`` replaces the ``predict-paths`` block of
BENCHMARKS.md. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from benchmd import cpu_name, update_block

from convscope.datasets.folders import load_image
from convscope.datasets.segmentation import dsb2018_split_ids, image_kinds
from convscope.inference import Predictor
from convscope.instances.engines import ENV_VAR, compiled
from convscope.io.image import read_image
from convscope.metrics import evaluate_label_pairs
from convscope.metrics.matching import matching_dataset
from convscope.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BEGIN, END = "<!-- predict-paths:begin -->", "<!-- predict-paths:end -->"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding dsb2018/")
    p.add_argument("--tiles", type=int, nargs="+", default=[0, 1024],
                   help="largest tile sides to try (0 = the training patch)")
    p.add_argument("--backends", nargs="+", default=["onnxruntime"], choices=["torch", "onnxruntime"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8, help="tiles per forward pass (the CLI's default)")
    p.add_argument("--limit", type=int, help="only the first N test images")
    p.add_argument("--write", action="store_true", help="replace the predict-paths block of BENCHMARKS.md")
    return p.parse_args(argv)


def test_images(data: Path, limit: int | None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    folder = data / "dsb2018"
    ids = dsb2018_split_ids(image_kinds(folder), ["fluorescence_gray"])[2][:limit]
    images = [load_image(folder / "images" / f"{i}.png", color="gray") for i in ids]
    return images, [read_image(folder / "masks" / f"{i}.png") for i in ids]


def timed_passes(predictor: Predictor, images: list[np.ndarray], repeats: int, numba: bool
                 ) -> tuple[list[np.ndarray], dict[str, float]]:
    """Labels of every image and the median network / decoding seconds per megapixel over ``repeats`` passes."""
    os.environ[ENV_VAR] = "1" if numba else "0"
    try:
        predictor.segment(images[0])  # warm-up
        passes, labels = [], []
        for _ in range(repeats):
            predictor.timings = type(predictor.timings)()
            labels = [predictor.segment(image) for image in images]
            t = predictor.timings
            passes.append((t.network / t.megapixels, t.postprocess / t.megapixels))
    finally:
        del os.environ[ENV_VAR]
    return labels, {"network": statistics.median(p[0] for p in passes),
                    "postprocess": statistics.median(p[1] for p in passes),
                    "total": statistics.median(p[0] + p[1] for p in passes)}


def scores(truth: list[np.ndarray], labels: list[np.ndarray], reference: list[np.ndarray]) -> dict[str, float]:
    table = evaluate_label_pairs(truth, labels, thresholds=(0.5,))["matching"]["0.5"]
    return {"f1": table["f1"], "accuracy": table["accuracy"], "pq": table["panoptic_quality"],
            "identical": sum(np.array_equal(a, b) for a, b in zip(labels, reference, strict=True)),
            "f1_vs_reference": matching_dataset(reference, labels, thresh=0.5, show_progress=False).f1}


def table(rows: list[dict], n: int) -> list[str]:
    lines = ["| backend | tiles | decode | F1 @0.5 | accuracy @0.5 | PQ @0.5 | identical labels | F1 vs reference "
             "| network s/MP | decode s/MP | total s/MP |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r["scores"]
        lines.append(f"| {r['backend']} | {r['tiles']} | {r['decode']} | {s['f1']:.4f} | {s['accuracy']:.4f} | "
                     f"{s['pq']:.4f} | {s['identical']} / {n} | {s['f1_vs_reference']:.4f} | "
                     f"{r['seconds']['network']:.3f} | {r['seconds']['postprocess']:.3f} | "
                     f"{r['seconds']['total']:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    run = load_run("nuclei", device="cpu")
    images, truth = test_images(args.data, args.limit)
    mpx = sum(i.shape[0] * i.shape[1] for i in images) / 1e6
    load_before = os.getloadavg()[0]
    engines = [False, True] if compiled("numba") is not None else [False]
    rows: list[dict] = []
    reference: list[np.ndarray] | None = None
    for backend in args.backends:
        for tile in args.tiles:
            predictor = Predictor(run, batch_size=args.batch_size, backend=backend, tile=tile or None)
            for numba in engines:
                labels, seconds = timed_passes(predictor, images, args.repeats, numba)
                reference = reference if reference is not None else labels
                rows.append({"backend": backend, "tiles": f"up to {tile}" if tile else f"{run.tile} (training patch)",
                             "decode": "numba" if numba else "numpy (reference)", "seconds": seconds,
                             "scores": scores(truth, labels, reference)})
                print(json.dumps(rows[-1]), flush=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"predict-paths-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(rows, indent=1))
    command = (f"PYTHONPATH=src .venv/bin/python bench/predict_paths_check.py --tiles {' '.join(map(str, args.tiles))} "
               f"--backends {' '.join(args.backends)} --threads {args.threads} --repeats {args.repeats}"
               + (f" --limit {args.limit}" if args.limit else "") + " --write")
    text = "\n".join([
        BEGIN, "## Star-convex prediction paths: same accuracy, labels and speed on DSB 2018 fluorescence test images",
        "",
        f"Measured {when} on {cpu_name()}, {args.threads} thread(s), load average {load_before:.1f} before and "
        f"{os.getloadavg()[0]:.1f} after. The built-in `nuclei` model on the {len(images)} grey fluorescence test "
        f"images ({mpx:.2f} MP), batches of {args.batch_size} training patches' worth of pixels; scores at IoU 0.5 "
        "against the ground truth; \"identical labels\" and \"F1 vs reference\" compare each path's label images "
        "with those of the first row; seconds per megapixel are medians of "
        f"{args.repeats} passes (`Predictor.timings`: network = normalisation + tiled network, decode = "
        "`task.decode`).", "", *table(rows, len(images)), "", f"Command: `{command}`", END])
    print(text)
    if args.write:
        update_block(ROOT / "BENCHMARKS.md", BEGIN, END, text)


if __name__ == "__main__":
    main()

"""Where the seconds of ``convscope predict nuclei IMG`` go: an end-to-end profile, stage by stage.

    PYTHONPATH=src .venv/bin/python bench/profile_predict.py [--sizes 1024 4096] [--backends torch onnxruntime] \
        [--threads 1] [--repeats 3] [--label after] [--write]

1. For each size, a real nucleus image: a mosaic of 256 x 256 crops of the grey fluorescence test images of DSB 2018
   (``bench/large_image.py``'s ``cell_pool``, each repeat of a crop rotated by another 90 degrees; the built-in
   ``nuclei`` model never trained on them), written as a uint8 TIFF to a temporary folder.
2. Per backend (``--backends``; ``convscope predict`` runs ONNX Runtime on a CPU when the onnx extra is installed),
   one untimed warm-up pass (ONNX Runtime traces or loads its graph there, numba loads its kernels), then
   ``--repeats`` timed passes of the stages ``convscope predict nuclei IMG --diameter D`` runs (D = the model's
   training diameter, so the image is segmented once at scale 1; without ``--diameter`` the CLI first segments the
   image once more to estimate the diameter):

   - read: the file into the model's input (``InputPreparation.load``, as ``predict_paths``);
   - normalise: percentile normalisation (``Predictor.normalized``);
   - network forward: the backend's calls on the batches of tiles;
   - tiling + blending: the rest of the tiled pass (cutting tiles, blending the outputs);
   - prediction: the network output into probability and distances (``task.split_output``);
   - candidates, NMS, rasterisation: ``convscope.instances.nms.candidates`` / ``polygon_nms`` /
     ``polygons_to_label`` at the task's thresholds and guards (``task.decode`` split in three);
   - label writing: the labels in their compact dtype written as a TIFF (``write_image``, atomic).

   Plus, per repeat, the whole thing end to end through ``predict_paths`` (what the CLI calls; ``--no-e2e`` skips
   it). The staged labels are checked to equal ``Predictor.segment``'s.
3. Prints one markdown table per size (median seconds of each stage over the repeats, its share of the median
   total, seconds per megapixel) and, with ``--write``, replaces the ``profile-predict-LABEL`` block of
   BENCHMARKS.md (``--label before`` / ``after`` keep two tables). Everything measured goes to
   ``bench/results/profile-predict-LABEL-*.json``.

Run the "before" profile against the code before a change with ``PYTHONPATH=<old checkout>/src``: the script uses
only what both have. Needs ``../shared/data/dsb2018`` (``--data``). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from benchmd import cpu_name, update_block
from large_image import CELL, cell_pool

import convscope
from convscope.inference import Predictor
from convscope.inference.outputs import compact_dtype, input_preparation, predict_paths
from convscope.instances import nms
from convscope.io.image import write_image
from convscope.runs import TrainedRun, load_run
from convscope.tasks.stardist import MAX_CANDIDATE_SHARE, MIN_RAY

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
STAGES = ("read", "normalise", "network forward", "tiling + blending", "prediction", "candidates", "NMS",
          "rasterisation", "label writing")


def log(msg: str) -> None:
    print(f"[profile-predict] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="folder holding dsb2018/")
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096], help="image sides (multiples of 256)")
    p.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"], choices=["torch", "onnxruntime"])
    p.add_argument("--threads", type=int, default=1, help="torch (and ONNX Runtime) threads")
    p.add_argument("--repeats", type=int, default=3, help="timed passes (the median is reported)")
    p.add_argument("--batch-size", type=int, default=8, help="tiles per forward pass (the CLI's default for tiles)")
    p.add_argument("--tile", type=int, help="the CLI's --tile (default: the CLI's default; 0 = the training patch)")
    p.add_argument("--label", default="after", help="names the block: profile-predict-LABEL (e.g. before, after)")
    p.add_argument("--no-e2e", action="store_true", help="skip the end-to-end predict_paths pass of each repeat")
    p.add_argument("--write", action="store_true", help="replace the profile-predict-LABEL block of BENCHMARKS.md")
    p.add_argument("--from-json", type=Path, help="no measuring: print (and --write) the block of a saved result")
    args = p.parse_args(argv)
    if any(s < CELL or s % CELL for s in args.sizes):
        p.error(f"--sizes must be multiples of {CELL}")
    if not args.label.replace("-", "").isalnum():
        p.error("--label: letters, digits and dashes only")
    return args


def mosaic(size: int, pool: list[np.ndarray]) -> np.ndarray:
    """(size, size) uint8 mosaic of the 256 x 256 crops, row by row, each repeat rotated by another 90 degrees."""
    cells = size // CELL
    image = np.empty((size, size), np.uint8)
    for k in range(cells * cells):
        cy, cx = divmod(k, cells)
        image[cy * CELL:(cy + 1) * CELL, cx * CELL:(cx + 1) * CELL] = np.rot90(pool[k % len(pool)],
                                                                               (k // len(pool)) % 4)
    return image


def cli_predictor(run: TrainedRun, backend: str, args: argparse.Namespace) -> Predictor:
    """The predictor ``convscope predict`` makes (with ``--tile`` where the code has it)."""
    try:
        from convscope.inference.predictor import predict_tile
    except ImportError:  # the code before --tile existed: tiles of the training patch
        if args.tile:
            raise SystemExit("--tile: this convscope has no Predictor(tile=...)") from None
        return Predictor(run, batch_size=args.batch_size, backend=backend)
    return Predictor(run, batch_size=args.batch_size, backend=backend, tile=predict_tile(args.tile))


def decode_engine() -> str:
    """What runs the NMS and the drawing of the labels with the default engine."""
    try:
        from convscope.instances.engines import compiled
    except ImportError:  # the code before the engines existed
        return "numpy"
    return "numba" if compiled("auto") is not None else "numpy"


class Clock:
    """Seconds per stage of one pass."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str, fn: Callable, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
        return result


def staged_pass(predictor: Predictor, path: Path, out: Path) -> tuple[dict[str, float], np.ndarray]:
    """One ``convscope predict`` pass over ``path``, stage by stage: (seconds per stage, labels)."""
    clock = Clock()
    task = predictor.task
    image = clock("read", input_preparation(predictor).load, path)
    x = clock("normalise", predictor.normalized, image)
    forward = predictor._forward
    predictor._forward = lambda batch: clock("network forward", forward, batch)  # type: ignore[method-assign]
    try:
        start = time.perf_counter()
        with torch.no_grad():
            raw = predictor._tiled(x)
        clock.seconds["tiling + blending"] = time.perf_counter() - start - clock.seconds["network forward"]
    finally:
        del predictor._forward
    prob, dist = clock("prediction", task.split_output, raw)
    cands = clock("candidates", nms.candidates, prob, dist, prob_thresh=task.prob_thresh, grid=task.grid,
                  border=task.border, max_candidates=max(1, prob.size // MAX_CANDIDATE_SHARE), min_ray=MIN_RAY)
    keep = clock("NMS", nms.polygon_nms, cands.dist, cands.points, cands.scores, nms_thresh=task.nms_thresh)
    kept = cands.subset(keep)
    labels = clock("rasterisation", lambda: nms.polygons_to_label(kept.coord, kept.scores, image.shape[:2]))
    clock("label writing", lambda: write_image(out / f"{path.stem}_labels.tif", compact_dtype(labels)))
    return clock.seconds, labels


def e2e_pass(predictor: Predictor, path: Path, out: Path, diameter: float) -> float:
    start = time.perf_counter()
    predict_paths(predictor, [path], out, overwrite=True, diameter=diameter, progress=lambda *_: None)
    return time.perf_counter() - start


def profile(predictor: Predictor, path: Path, work: Path, args: argparse.Namespace) -> dict:
    """Warm-up, then ``args.repeats`` staged (and end-to-end) passes; medians and the raw passes."""
    diameter = float(predictor.run.diameter)
    start = time.perf_counter()
    _, labels = staged_pass(predictor, path, work)
    warm_up = time.perf_counter() - start
    image = input_preparation(predictor).load(path)
    if not np.array_equal(labels, predictor.segment(image)):
        raise SystemExit("the staged pass does not reproduce Predictor.segment: fix this script")
    passes, e2e = [], []
    for _ in range(args.repeats):
        passes.append(staged_pass(predictor, path, work)[0])
        if not args.no_e2e:
            e2e.append(e2e_pass(predictor, path, work / "e2e", diameter))
    median = {s: statistics.median(p[s] for p in passes) for s in STAGES}
    return {"backend": predictor.backend, "warm_up_seconds": warm_up, "passes": passes, "median": median,
            "total": statistics.median(sum(p.values()) for p in passes),
            "end_to_end": statistics.median(e2e) if e2e else None, "end_to_end_passes": e2e,
            "objects": int(len(np.unique(labels)) - 1)}


def table(size: int, rows: dict[str, dict]) -> list[str]:
    mpx = size * size / 1e6
    head = "| stage | " + " | ".join(f"{b} s | {b} share" for b in rows) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(rows)]
    for stage in STAGES:
        cells = [f"{r['median'][stage]:.3f} | {100 * r['median'][stage] / r['total']:.1f} %" for r in rows.values()]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **total** (median of the passes' sums) | "
                 + " | ".join(f"**{r['total']:.3f}** | 100 %" for r in rows.values()) + " |")
    lines.append("| total s / MP | " + " | ".join(f"{r['total'] / mpx:.3f} | " for r in rows.values()) + " |")
    if all(r["end_to_end"] is not None for r in rows.values()):
        lines.append("| end to end, `predict_paths` (s) | "
                     + " | ".join(f"{r['end_to_end']:.3f} | " for r in rows.values()) + " |")
    lines.append("| warm-up pass (s) | "
                 + " | ".join(f"{r['warm_up_seconds']:.3f} | " for r in rows.values()) + " |")
    return lines


def block(results: dict, args: argparse.Namespace) -> str:
    begin, end = f"<!-- profile-predict-{args.label}:begin -->", f"<!-- profile-predict-{args.label}:end -->"
    meta = results["meta"]
    source = "src" if Path(meta["source"]) == REPO / "src" else "<checkout of the code before the change>/src"
    command = (f"PYTHONPATH={source} .venv/bin/python bench/profile_predict.py "
               f"--sizes {' '.join(map(str, args.sizes))} "
               + (f"--tile {args.tile} " if args.tile is not None else "")
               + f"--backends {' '.join(args.backends)} --threads {args.threads} --repeats {args.repeats}"
               + (" --no-e2e" if args.no_e2e else "") + f" --label {args.label} --write")
    parts = [begin, f"## End-to-end prediction profile ({args.label}): `convscope predict nuclei IMG`", "",
             f"Measured {meta['when']} on {meta['cpu']}, {args.threads} thread(s), load average {meta['load'][0]} "
             f"before and {meta['load'][1]} after; convscope {meta['convscope']} ({meta['source']}), torch "
             f"{meta['torch']}, numpy {meta['numpy']}; decode engine: {meta['engine']}. Median wall seconds of "
             f"{args.repeats} passes after a warm-up pass, per stage (`bench/profile_predict.py` says what each "
             f"stage is), on mosaics of 256 x 256 crops of the DSB 2018 grey fluorescence test images (uint8 TIFF), "
             f"the built-in `nuclei` model (tiles of {meta['tile'][0]} x {meta['tile'][1]} px at the largest size, "
             f"batches of {args.batch_size} training patches' worth of pixels) at its training "
             "diameter (`--diameter`; without it the CLI segments each image once more first, to estimate the "
             "diameter)." + (" The warm-up pass of the first backend also loads numba and its compiled kernels (from "
                             "its cache), once per process." if meta["engine"] == "numba" else ""), ""]
    for size, rows in results["sizes"].items():
        found = ", ".join(f"{b}: {r['objects']}" for b, r in rows.items())
        parts += [f"**{size} x {size}** ({int(size) ** 2 / 1e6:.2f} MP; objects found {found})", "",
                  *table(int(size), rows), ""]
    parts += [f"Command: `{command}`", end]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json:  # the options it was measured with, when saved (else give them again)
        results = json.loads(args.from_json.read_text())
        measured = {k: v for k, v in results["meta"].get("args", {}).items() if k not in ("write", "from_json")}
        finish(results, argparse.Namespace(**{**vars(args), **measured}))
        return
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    run = load_run("nuclei", device="cpu")
    pool = cell_pool(args.data)
    load_before = os.getloadavg()[0]
    results: dict = {"sizes": {}}
    with tempfile.TemporaryDirectory(prefix="profile-predict-") as tmp:
        work = Path(tmp)
        for size in args.sizes:
            path = work / f"mosaic_{size}.tif"
            write_image(path, mosaic(size, pool))
            rows = {}
            for backend in args.backends:
                log(f"{size} x {size}, {backend}: warm-up and {args.repeats} passes")
                predictor = cli_predictor(run, backend, args)
                rows[backend] = profile(predictor, path, work, args)
                r = rows[backend]
                log(f"{size}, {backend}: total {r['total']:.3f} s, end to end {r['end_to_end']}, "
                    f"{r['objects']} objects")
            results["sizes"][str(size)] = rows
            tile = predictor.tile_sides((size, size)) if hasattr(predictor, "tile_sides") else (run.tile, run.tile)
    results["meta"] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_name(),
        "load": (f"{load_before:.1f}", f"{os.getloadavg()[0]:.1f}"), "label": args.label,
        "convscope": convscope.__version__, "source": str(Path(convscope.__file__).parent.parent),
        "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "engine": decode_engine(), "tile": tile, "threads": args.threads, "repeats": args.repeats,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"profile-predict-{args.label}-{stamp}.json").write_text(json.dumps(results, indent=1))
    finish(results, args)


def finish(results: dict, args: argparse.Namespace) -> None:
    """Print the block of ``results`` (measured with ``args``) and write it with ``--write``."""
    text = block(results, args)
    print(text)
    if args.write:
        update_block(REPO / "BENCHMARKS.md", f"<!-- profile-predict-{args.label}:begin -->",
                     f"<!-- profile-predict-{args.label}:end -->", text)


if __name__ == "__main__":
    main()

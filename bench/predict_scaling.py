"""Whole-image prediction: time per megapixel and peak memory from 512x512 to 8192x8192 on this CPU.

    .venv/bin/python bench/predict_scaling.py                  # print the table
    .venv/bin/python bench/predict_scaling.py --write          # ... and update BENCHMARKS.md

Each size runs in a fresh subprocess (so its peak RSS is its own). The child builds a U-Net (default: depth 4,
base filters 16, batch norm, eval mode, random weights; or the trained model of ``--run RUN``), makes a
synthetic uint16 image of the size (a 512x512 synthetic-bacteria image repeated, or ``--image noise``), warms
the network up on one batch of tiles, and then times ``Segmenter.segment(image)``: percentile normalisation,
tiled prediction (tile 256, overlap tile // 8 = 32, batches of 4 tiles, cosine blending), sigmoid and
threshold to a uint8 mask; the median of one or more runs. Random weights cost the same time as trained
ones; the mask is meaningless then.

Memory: the child records its RSS just before the first timed run (baseline: Python, torch, the model and
the input image), resets the kernel's peak-RSS mark (``/proc/self/clear_refs``) and reads the peak (VmHWM)
after the timed runs, so the peak is that of prediction, not of generating the image; the peak before the
reset (``ru_maxrss``, including generation) is reported too. Where the reset is not allowed, the peak is the
process lifetime ``ru_maxrss`` and the output says so.

Run it on a quiet machine: anything else on the CPU inflates the times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from benchmd import cpu_name, update_block

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BEGIN, END = "<!-- predict-scaling:begin -->", "<!-- predict-scaling:end -->"
DEFAULT_SIZES = [512, 1024, 2048, 4096, 8192]
MEMORY_LIMIT_MIB = 2048  # the "under 2 GB" at 8192x8192, read as 2 GiB
LINEAR_MAX_RATIO = 1.2  # s/MP at the largest size at most 20 % above the smallest
LINEAR_MIN_R2 = 0.99


def log(msg: str) -> None:
    print(f"[predict-scaling] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- child: one size in its own process


def current_rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def vm_hwm_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); whether it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return vm_hwm_kib() <= current_rss_kib() + 1024  # the mark now sits at the current RSS


def synthetic_image(size: int, kind: str, channels: int, seed: int) -> np.ndarray:
    """A (size, size) uint16 image, or (size, size, channels) for a multi-channel model."""
    if kind == "bacteria":
        from convscope.datasets.bacteria import make_synthetic_bacteria

        block = make_synthetic_bacteria(1, size=(512, 512), density=0.3, seed=seed)[0][0]
        reps = math.ceil(size / 512)
        image = np.tile(block, (reps, reps))
        if image.shape[0] != size:
            image = np.ascontiguousarray(image[:size, :size])
    else:
        image = np.random.default_rng(seed).integers(100, 4000, (size, size), dtype=np.uint16)
    if channels > 1:
        image = np.repeat(image[:, :, None], channels, axis=2)
    return image


def build_segmenter(args: argparse.Namespace):  # -> Segmenter
    import torch

    from convscope.config import NormalizeConfig
    from convscope.inference.segmenter import Segmenter
    from convscope.models import create_model
    from convscope.tasks.semantic import SemanticTask

    if args.run is not None:
        return Segmenter.from_run(args.run, device="cpu", batch_size=args.batch_size)

    class RandomUNetSegmenter(Segmenter):
        """Segmenter's prediction code (normalise, tile, decode) around an untrained U-Net: no run directory.

        Sets the attributes ``Segmenter.__init__`` sets from a run; ``probabilities``/``segment`` are inherited.
        """

        def __init__(self) -> None:
            torch.manual_seed(0)
            self.model = create_model("unet", in_channels=1, num_classes=1, depth=args.depth,
                                      base_filters=args.base_filters, batch_norm=True).eval()
            self.config = {"task": "semantic", "input_shape": [args.tile, args.tile, 1]}
            self.device = torch.device("cpu")
            self.task = SemanticTask(("background", "foreground"), loss_name="bce_dice", threshold=0.5)
            self.normalize = NormalizeConfig(mode="percentile", low=1.0, high=99.8)
            self.tile = args.tile
            self.channels = 1
            self.batch_size = args.batch_size

    return RandomUNetSegmenter()


def run_child(args: argparse.Namespace) -> dict:
    import torch

    from convscope.inference.tiling import tile_grid
    from convscope.runs.runtime import set_threads

    size = args.child
    threads = set_threads(args.threads)
    rss_start = current_rss_kib()
    seg = build_segmenter(args)
    image = synthetic_image(size, args.image, seg.channels, args.seed)
    n_tiles = len(tile_grid((max(size, seg.tile),) * 2, seg.tile, seg.tile // 8))
    with torch.no_grad():  # warm-up: one full batch of tiles (allocator, oneDNN kernels)
        seg.model(torch.zeros(seg.batch_size, seg.channels, seg.tile, seg.tile))

    setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    baseline = current_rss_kib()
    reset = reset_peak_rss()
    seconds: list[float] = []
    foreground = None
    while True:
        t0 = time.perf_counter()
        mask = seg.segment(image)
        seconds.append(time.perf_counter() - t0)
        if foreground is None:
            foreground = float(mask.mean())
            assert mask.shape == (size, size) and mask.dtype == np.uint8, (mask.shape, mask.dtype)
        del mask
        if len(seconds) >= args.max_runs or sum(seconds) >= args.min_seconds:
            break
    peak = vm_hwm_kib() if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    params = sum(p.numel() for p in seg.model.parameters())
    return {
        "size": size, "megapixels": size * size / 1e6, "tiles": n_tiles, "tile": seg.tile,
        "overlap": seg.tile // 8, "batch_size": seg.batch_size, "threads": threads,
        "seconds": statistics.median(seconds), "all_seconds": seconds,
        "peak_rss_mib": peak / 1024, "peak_method": "VmHWM after reset" if reset else "ru_maxrss (lifetime)",
        "baseline_rss_mib": baseline / 1024, "setup_peak_mib": setup_peak / 1024,
        "start_rss_mib": rss_start / 1024, "image_mib": image.nbytes / 2**20, "foreground_fraction": foreground,
        "model_params": params, "normalize": seg.normalize.model_dump(), "torch": torch.__version__,
        "numpy": np.__version__,
    }


# ---------------------------------------------------------------- parent: drive the sizes, report


def child_command(size: int, args: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(size), "--image", args.image,
           "--batch-size", str(args.batch_size), "--seed", str(args.seed),
           "--min-seconds", str(args.min_seconds), "--max-runs", str(args.max_runs)]
    if args.run is not None:
        cmd += ["--run", str(args.run)]
    else:
        cmd += ["--tile", str(args.tile), "--depth", str(args.depth), "--base-filters", str(args.base_filters)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    return cmd


def measure(size: int, args: argparse.Namespace) -> dict:
    proc = subprocess.run(child_command(size, args), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"size {size}: child failed (exit {proc.returncode})")
    return json.loads([line for line in proc.stdout.splitlines() if line.strip()][-1])


def linearity(rows: list[dict]) -> dict:
    """s/MP ratio (largest / smallest size), least-squares time = a + b * MP with R^2, log-log exponent."""
    mp = np.array([r["megapixels"] for r in rows])
    t = np.array([r["seconds"] for r in rows])
    out: dict = {"ratio": float((t[-1] / mp[-1]) / (t[0] / mp[0])) if len(rows) >= 2 else None,
                 "a": None, "b": None, "r2": None, "exponent": None}
    if len(rows) >= 3:
        b, a = np.polyfit(mp, t, 1)
        resid = t - (a + b * mp)
        ss_tot = float(((t - t.mean()) ** 2).sum())
        out.update(a=float(a), b=float(b), r2=1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else None,
                   exponent=float(np.polyfit(np.log(mp), np.log(t), 1)[0]))
    return out


def table(rows: list[dict]) -> str:
    lines = ["| size | megapixels | tiles | runs | seconds | s / MP | ms / tile | peak RSS MiB | baseline RSS MiB "
             "| setup peak MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['size']}x{r['size']} | {r['megapixels']:.2f} | {r['tiles']} | {len(r['all_seconds'])} "
            f"| {r['seconds']:.2f} | {r['seconds'] / r['megapixels']:.3f} | {1000 * r['seconds'] / r['tiles']:.0f} "
            f"| {r['peak_rss_mib']:.0f} | {r['baseline_rss_mib']:.0f} | {r['setup_peak_mib']:.0f} |")
    return "\n".join(lines)


def verdicts(rows: list[dict], lin: dict) -> list[str]:
    out = []
    small, large = rows[0], rows[-1]
    if lin["ratio"] is not None:
        fit = ("" if lin["r2"] is None else
               f"; least squares time = {lin['a']:.2f} s + {lin['b']:.3f} s/MP x MP, R^2 = {lin['r2']:.4f}; "
               f"log-log slope (time ~ MP^k) k = {lin['exponent']:.3f}")
        out.append(f"Linearity: s/MP at {large['size']}x{large['size']} / s/MP at {small['size']}x{small['size']} "
                   f"= {lin['ratio']:.2f}{fit}.")
        if lin["r2"] is not None:
            ok = lin["ratio"] <= LINEAR_MAX_RATIO and lin["r2"] >= LINEAR_MIN_R2
            out.append(f"Time grows linearly with pixels (ratio <= {LINEAR_MAX_RATIO} and R^2 >= {LINEAR_MIN_R2}): "
                       f"{'yes' if ok else 'NO'}.")
    at = next((r for r in rows if r["size"] == 8192), None)
    if at is not None:
        ok = at["peak_rss_mib"] < MEMORY_LIMIT_MIB
        out.append(f"Peak RSS at 8192x8192: {at['peak_rss_mib']:.0f} MiB; under 2 GiB ({MEMORY_LIMIT_MIB} MiB): "
                   f"{'yes' if ok else 'NO'}.")
    else:
        out.append("8192x8192 not measured: no verdict on the 2 GiB memory limit.")
    return out


def results_block(rows: list[dict], lin: dict, meta: dict) -> str:
    r0 = rows[0]
    model = (f"the trained model of `{meta['run']}`" if meta["run"] else
             f"a U-Net (depth {meta['depth']}, base filters {meta['base_filters']}, batch norm, eval mode) "
             "with random weights (prediction time does not depend on the weights)")
    norm = r0["normalize"]
    norm_text = (f"percentile normalisation ({norm['low']:g}-{norm['high']:g})" if norm["mode"] == "percentile"
                 else f"normalisation mode {norm['mode']!r}")
    image = ("a 512x512 synthetic-bacteria image (uint16) repeated to the size" if meta["image"] == "bacteria"
             else "uniform uint16 noise")
    return "\n".join([
        BEGIN,
        "## Whole-image prediction: time per megapixel and peak memory",
        "",
        f"Measured {meta['date']} on {meta['cpu']} ({meta['cores']} usable cores, {r0['threads']} torch threads, "
        f"no GPU), Python {meta['python']}, torch {r0['torch']}, numpy {r0['numpy']}; load average "
        f"{meta['load']} just before the run.",
        "",
        table(rows),
        "",
        *verdicts(rows, lin),
        "",
        f"What was measured: {model} ({r0['model_params']:,} parameters) segments {image}. Seconds = wall time "
        f"of `Segmenter.segment(image)`: {norm_text}, tiled prediction "
        f"(tile {r0['tile']}, overlap {r0['overlap']}, {r0['batch_size']} tiles per batch, cosine blending), "
        "sigmoid and threshold to a uint8 mask; after a warm-up batch, the median of `runs` runs (repeated "
        f"until {meta['min_seconds']} s, at most {meta['max_runs']} runs); reading and writing files is not "
        "included. Each size runs in its own process. Peak RSS = the process's peak resident memory during the "
        f"timed runs ({r0['peak_method']}): Python, torch, the model, the input image and everything prediction "
        "allocates; baseline RSS = resident memory just before; setup peak = the peak before that, including "
        "generating the image. Tiles: U-Net calls; small images pay more tile overlap per pixel (s / MP "
        "includes it).",
        "",
        "Command:",
        "",
        "```",
        meta["command"],
        "```",
        END,
    ])


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="square image sizes (pixels)")
    parser.add_argument("--run", type=Path, default=None,
                        help="a trained segmentation run (its model, tile size and normalisation) instead of a "
                             "random-weight U-Net")
    parser.add_argument("--depth", type=int, default=4, help="U-Net depth (random-weight model)")
    parser.add_argument("--base-filters", type=int, default=16, help="U-Net base filters (random-weight model)")
    parser.add_argument("--tile", type=int, default=None,
                        help="tile size, overlap = tile // 8 as in Segmenter (default 256; a run uses its own)")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all usable cores)")
    parser.add_argument("--image", choices=["bacteria", "noise"], default="bacteria")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="repeat a size until its runs add up to this many seconds ...")
    parser.add_argument("--max-runs", type=int, default=5, help="... or this many runs; the median is reported")
    parser.add_argument("--write", action="store_true",
                        help="update the predict-scaling block of BENCHMARKS.md and keep raw results in "
                             "bench/results/")
    parser.add_argument("--benchmarks-md", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run is not None and args.tile is not None:
        parser.error("--tile comes from the run with --run (the training patch size)")
    if args.run is not None and (args.depth, args.base_filters) != (4, 16):
        parser.error("--depth and --base-filters describe the random-weight U-Net; --run brings its own model")
    if args.run is not None and not args.run.is_dir():
        parser.error(f"--run {args.run}: not a folder")
    if args.tile is None and args.run is None:
        args.tile = 256
    if min(args.sizes) < 32 or args.batch_size < 1 or args.max_runs < 1:
        parser.error("need sizes >= 32, --batch-size >= 1 and --max-runs >= 1")
    args.sizes = sorted(set(args.sizes))
    return parser, args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _parser, args = parse_args(argv)
    if args.child is not None:
        print(json.dumps(run_child(args)), flush=True)
        return 0

    load = os.getloadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if load[0] > 0.5:
        log(f"load average {load[0]:.2f}: the machine is not quiet, times will be inflated")
    rows = []
    for size in args.sizes:
        log(f"{size}x{size} ...")
        row = measure(size, args)
        log(f"{size}x{size}: {row['seconds']:.2f} s ({row['seconds'] / row['megapixels']:.3f} s/MP), "
            f"peak RSS {row['peak_rss_mib']:.0f} MiB")
        rows.append(row)
    lin = linearity(rows)
    print(table(rows))
    print()
    print("\n".join(verdicts(rows, lin)))

    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_name(), "cores": cores,
        "python": platform.python_version(), "load": " / ".join(f"{v:.2f}" for v in load),
        "run": str(args.run) if args.run else None, "depth": args.depth, "base_filters": args.base_filters,
        "image": args.image, "min_seconds": args.min_seconds, "max_runs": args.max_runs,
        "command": shlex.join([".venv/bin/python", "bench/predict_scaling.py", *argv]),
    }
    if not args.write:
        return 0
    results_dir = BENCH / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = {"meta": meta, "linearity": lin, "rows": rows}
    (results_dir / f"predict-scaling-{stamp}.json").write_text(json.dumps(raw, indent=2))
    update_block(args.benchmarks_md, BEGIN, END, results_block(rows, lin, meta))
    log(f"updated {args.benchmarks_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

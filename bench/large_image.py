"""Images larger than memory: block-wise prediction of real-nuclei mosaics up to 32768 x 32768 on Dask.

    .venv/bin/python bench/large_image.py                                # 8192, 16384, 32768; print the table
    .venv/bin/python bench/large_image.py --sizes 8192 16384 --write     # ... and update BENCHMARKS.md

For every size, one subprocess writes the input, an OME-Zarr image (uint8, 1024 x 1024 chunks) tiled with 256 x 256
crops of the grey fluorescence test images of DSB 2018 (each repeat rotated by another 90 degrees; the built-in
``nuclei`` model never trained on them), written chunk by chunk through Dask so that the writer never holds the
image. Another subprocess then runs ``convscope.predict_large("nuclei", image, labels.ome.zarr)`` (blocks of
``--block-size``, the local threaded scheduler with ``--threads`` threads and as many torch threads) and reports its
wall time per pass and its peak resident memory (``ru_maxrss`` of the process: Python, torch, the model and
everything prediction allocates). The images and labels are removed afterwards unless ``--keep``.

Needs the dask extra and ``../shared/data/dsb2018`` (``--data``). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from benchmd import cpu_name, run_json, update_block

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BEGIN, END = "<!-- large-image:begin -->", "<!-- large-image:end -->"
CELL, CHUNK = 256, 1024
MEMORY_LIMIT_MIB = 4096  # the "peak RSS < 4 GB" at 32768 x 32768, read as 4 GiB


def log(msg: str) -> None:
    print(f"[large-image] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- child: write one input image


def cell_pool(data: Path) -> list[np.ndarray]:
    """The 256 x 256 top-left crops (uint8) of the grey fluorescence test images of DSB 2018."""
    from convscope.datasets.folders import load_image
    from convscope.datasets.segmentation import dsb2018_split_ids, image_kinds

    folder = data / "dsb2018"
    ids = dsb2018_split_ids(image_kinds(folder), ["fluorescence_gray"])[2]
    return [load_image(folder / "images" / f"{i}.png", color="gray")[:CELL, :CELL, 0] for i in ids]


def make_image(size: int, out: Path, data: Path) -> dict:
    import dask.array as da
    import zarr
    from ome_zarr.writer import write_image

    pool = cell_pool(data)
    cells = size // CELL

    def chunk(block_info: dict | None = None) -> np.ndarray:
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        part = np.empty((y1 - y0, x1 - x0), np.uint8)
        for cy in range(y0 // CELL, y1 // CELL):
            for cx in range(x0 // CELL, x1 // CELL):
                k = cy * cells + cx
                cell = np.rot90(pool[k % len(pool)], (k // len(pool)) % 4)
                part[cy * CELL - y0:(cy + 1) * CELL - y0, cx * CELL - x0:(cx + 1) * CELL - x0] = cell
        return part

    image = da.map_blocks(chunk, dtype=np.uint8, chunks=((CHUNK,) * (size // CHUNK),) * 2)
    start = time.perf_counter()
    write_image(image, zarr.open_group(str(out), mode="w"), axes="yx", scale_factors=[],
                storage_options={"chunks": (CHUNK, CHUNK)})
    return {"seconds": round(time.perf_counter() - start, 1), "cells": len(pool)}


# ---------------------------------------------------------------- child: predict one image


def current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def predict(image: Path, out: Path, block: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from convscope import load_run
    from convscope.inference.large import predict_large

    run = load_run("nuclei", device="cpu")
    baseline = current_rss_mib()
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    start = time.perf_counter()
    result = predict_large(run, image, out, block_size=block, threads=threads, progress=False,
                           log=lambda m: print(m, file=sys.stderr))
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": round(seconds, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime - cpu_before, 1),
            "passes": result.seconds, "objects": result.objects,
            "blocks": result.blocks, "baseline_rss_mib": round(baseline),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "torch": torch.__version__, "numpy": np.__version__}


# ---------------------------------------------------------------- parent


def measure(size: int, args: argparse.Namespace) -> dict:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    image, labels = work / f"mosaic_{size}.ome.zarr", work / f"labels_{size}.ome.zarr"
    me = [sys.executable, str(Path(__file__).resolve())]
    if not image.exists():
        log(f"{size}: writing {image}")
        made = run_json([*me, "--make", str(size), "--out", str(image), "--data", str(args.data)], "make")
        log(f"{size}: input written in {made['seconds']} s")
    shutil.rmtree(labels, ignore_errors=True)
    log(f"{size}: predicting (blocks of {args.block_size}, {args.threads} threads)")
    row = run_json([*me, "--predict", str(image), "--out", str(labels), "--block-size", str(args.block_size),
                    "--threads", str(args.threads)], "predict")
    row.update(size=size, megapixels=size * size / 1e6)
    log(f"{size}: {json.dumps(row)}")
    if not args.keep:
        shutil.rmtree(labels, ignore_errors=True)
        shutil.rmtree(image, ignore_errors=True)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| size | megapixels | blocks | objects | seconds | s / MP | CPU s | CPU s / MP | normalisation s "
             "| blocks s | write s | peak RSS MiB | baseline RSS MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = r["passes"]
        lines.append(f"| {r['size']}x{r['size']} | {r['megapixels']:.0f} | {r['blocks']} | {r['objects']:,} "
                     f"| {r['seconds']:.0f} | {r['seconds'] / r['megapixels']:.2f} | {r['cpu_seconds']:.0f} "
                     f"| {r['cpu_seconds'] / r['megapixels']:.2f} | {p['normalisation']:.0f} "
                     f"| {p['blocks']:.0f} | {p['write']:.0f} | {r['peak_rss_mib']} | {r['baseline_rss_mib']} |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    out = []
    if len(rows) >= 2:
        small, large = rows[0], rows[-1]
        ratio = (large["seconds"] / large["megapixels"]) / (small["seconds"] / small["megapixels"])
        cpu = (large["cpu_seconds"] / large["megapixels"]) / (small["cpu_seconds"] / small["megapixels"])
        times = large["megapixels"] / small["megapixels"]
        out.append(f"Per megapixel, {large['size']}^2 / {small['size']}^2 ({times:.0f} x the pixels): wall time "
                   f"{ratio:.2f}, CPU time {cpu:.2f} (1.00 = linear in pixels; CPU time "
                   "is the steadier measure on a shared machine).")
    top = max(rows, key=lambda r: r["size"])
    ok = top["peak_rss_mib"] < MEMORY_LIMIT_MIB
    out.append(f"Peak RSS at {top['size']}^2: {top['peak_rss_mib']} MiB; under 4 GiB: {'yes' if ok else 'NO'}"
               + ("." if top["size"] >= 32768 else " (32768^2 not measured in this run)."))
    return out


def results_block(rows: list[dict], args: argparse.Namespace, meta: dict) -> str:
    sizes = " ".join(str(r["size"]) for r in rows)
    return "\n".join([
        BEGIN,
        "## Images larger than memory: block-wise prediction on Dask",
        "",
        f"Measured {meta['date']} on {meta['cpu']} ({meta['cores']} usable cores; {args.threads} Dask thread(s) and "
        f"{args.threads} torch thread(s)), Python {meta['python']}, torch {rows[0]['torch']}, numpy "
        f"{rows[0]['numpy']}; load average {meta['load']} just before the run (other jobs shared the machine).",
        "",
        table(rows),
        "",
        *verdicts(rows),
        "",
        "What was measured: `convscope.predict_large(\"nuclei\", mosaic.ome.zarr, labels.ome.zarr, block_size="
        f"{args.block_size})`, the built-in star-convex model on an OME-Zarr mosaic (uint8, 1024 px chunks) of "
        "256 x 256 crops of the grey fluorescence test images of DSB 2018, each repeat rotated by 90 degrees. "
        "Seconds = wall time of the call: normalisation bounds (a histogram per block), the blocks (network on each "
        "block grown by the 64 px halo through the whole image's tiles, decoding, staging), the merge of the ids "
        "and writing the OME-Zarr label pyramid; CPU s = user + system time of the call. Peak RSS = `ru_maxrss` "
        "of the predicting process; baseline = its "
        "resident memory after loading torch and the model. Writing the input is not timed.",
        "",
        "Command:",
        "",
        "```",
        f".venv/bin/python bench/large_image.py --sizes {sizes} --block-size {args.block_size} --threads "
        f"{args.threads} --write",
        "```",
        END,
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8192, 16384, 32768])
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--workdir", type=Path, default=BENCH / "results" / "large")
    parser.add_argument("--keep", action="store_true", help="keep the images and labels")
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--make", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--predict", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        print(json.dumps(make_image(args.make, args.out, args.data)))
        return
    if args.predict:
        print(json.dumps(predict(args.predict, args.out, args.block_size, args.threads)))
        return
    if any(s % CHUNK for s in args.sizes):
        raise SystemExit(f"--sizes: multiples of {CHUNK}")
    meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_name(),
            "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "load": " / ".join(f"{x:.2f}" for x in os.getloadavg())}
    rows = []
    for size in sorted(args.sizes):
        rows.append(measure(size, args))
        (BENCH / "results").mkdir(exist_ok=True)
        (BENCH / "results" / "large-image.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    block = results_block(rows, args, meta)
    print(block)
    if args.write:
        update_block(REPO / "BENCHMARKS.md", BEGIN, END, block)


if __name__ == "__main__":
    main()

"""Roofline of the training-throughput benchmark: how much of this CPU's matrix-multiply peak each framework's
training step reaches, and how much 1.5x the faster Keras would need.

    .venv/bin/python bench/throughput.py ...     # first: the measurement (bench/results/throughput-*.json)
    .venv/bin/python bench/roofline.py           # the newest throughput result; writes BENCHMARKS.md

Floating-point operations per training image are counted on the convscope model (bench/throughput.py checks that
the Keras model has the same parameter count): 2 x the multiply-adds of every convolution and dense layer in the
forward pass, the same again for the weight gradients, and again for the input gradients of every layer but the
first (its input needs none). ReLU, pooling, the loss and Adam are not counted: they are memory-bound and would only
lower the fractions. The peak is the best of 5 square matrix products (4096 x 4096, torch/oneDNN) in float32 and in
bfloat16 on the threads the throughput run used, measured here; run this on the machine that ran throughput.py (the
CPU names are compared) and on a quiet one.

It also times convscope's own training step (``make_train_step``, batch 32 of random images, channels_last) in a
child process and, over the same number of steps run with oneDNN's verbose mode on, adds up the execution times
oneDNN reports for its primitives (convolutions, reorders; pooling and ReLU are PyTorch's own kernels): the share of
the step spent in oneDNN's kernels, the rest being PyTorch's other kernels and its per-operation overhead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from benchmd import cpu_name, update_block
from classifier_step import classifier, classifier_step
from throughput import best_keras
from torch import nn

BENCH = Path(__file__).resolve().parent
BEGIN, END = "<!-- roofline:begin -->", "<!-- roofline:end -->"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
BATCH = 32  # the throughput benchmark's batch size


def training_flops(model: nn.Module, shape: tuple[int, int, int]) -> int:
    """Floating-point operations of one training image through ``model``'s convolutions and dense layers.

    Parameters
    ----------
    shape : (C, H, W)

    Returns
    -------
    int
        2 x multiply-adds x (forward + weight gradients + input gradients), without the first layer's input
        gradients.
    """
    macs: list[int] = []

    def count(module: nn.Module, _inp: object, out: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            k = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            macs.append(out.numel() * k)
        elif isinstance(module, nn.Linear):
            macs.append(out.numel() * module.in_features)

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *shape))
    finally:
        for h in hooks:
            h.remove()
    return 2 * (3 * sum(macs) - macs[0])


def matmul_peak(dtype: torch.dtype, threads: int, n: int = 4096, repeats: int = 5) -> float:
    """The best GFLOP/s of ``repeats`` n x n matrix products in ``dtype`` on ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up: oneDNN / MKL kernel selection
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def probe_step(model_name: str, precision: str, threads: int, steps: int = 30, warmup: int = 20) -> None:
    """(Child process.) Time ``steps`` training steps, then run as many with oneDNN verbose on (its lines go to
    stdout) and print the mean step in ms as the last line, JSON."""
    torch.set_num_threads(threads)
    step = classifier_step(model_name, batch=BATCH, precision=precision).step()
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    sys.stdout.flush()
    with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
        for _ in range(steps):
            step()
    print(json.dumps({"step_ms": 1e3 * seconds, "steps": steps}), flush=True)


def kernel_share(model_name: str, precision: str, threads: int) -> dict:
    """convscope's training step in ms and the ms of it in oneDNN's kernels (a child process)."""
    cmd = [sys.executable, __file__, "--probe", model_name, precision, str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()
    result = json.loads(out[-1])
    kernels = sum(float(line.rsplit(",", 1)[1]) for line in out
                  if line.startswith("onednn_verbose") and ",exec,cpu," in line)
    return {"step_ms": result["step_ms"], "onednn_ms": kernels / result["steps"]}


def newest_result() -> Path:
    found = sorted((BENCH / "results").glob("throughput-*.json"))
    if not found:
        raise SystemExit("no bench/results/throughput-*.json: run bench/throughput.py first")
    return found[-1]


def rows_for(result: dict, peaks: dict[str, float], threads: int) -> list[dict]:
    """Per measured (model, precision): GFLOP per image, GFLOP/s and fraction of the peak of each side, and
    convscope's step with its oneDNN kernel time."""
    out = []
    for r in result["rows"]:
        model, _, shape = classifier(r["model"])
        flops = training_flops(model, shape)
        keras = best_keras(r)
        sides = {"convscope": r.get("convscope", {}).get("images_per_s"), "faster Keras": keras,
                 "1.5x the faster Keras": 1.5 * keras if keras else None}
        peak = peaks[r["precision"]]
        out.append({"model": r["model"], "precision": r["precision"], "gflop_per_image": flops / 1e9,
                    "peak": peak, **{k: (v, v * flops / 1e9, v * flops / 1e9 / peak) if v else None
                                     for k, v in sides.items()},
                    **kernel_share(r["model"], r["precision"], threads)})
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    sides = ("convscope", "faster Keras", "1.5x the faster Keras")
    lines = [
        BEGIN,
        "### Roofline: how much of the CPU the training step uses",
        "",
        f"Throughput from the block above ({meta['source']}); matrix-multiply peak measured {meta['date']} on "
        f"{meta['cpu']}, {meta['threads']} threads: float32 {meta['peaks']['float32']:,.0f} GFLOP/s, bfloat16 "
        f"{meta['peaks']['bfloat16']:,.0f} GFLOP/s (best of 5 4096 x 4096 products). GFLOP per training image: "
        "the convolutions and dense layers, forward, weight gradients and input gradients (2 flops per "
        "multiply-add; ReLU, pooling, loss and Adam not counted).",
        "",
        "| model | precision | GFLOP per training image | " + " | ".join(
            f"{s}: images/s, GFLOP/s (% of peak)" for s in sides) + " | convscope step (batch 32): ms, of it in "
        "oneDNN kernels | images/s if the step were only its oneDNN kernels (x the faster Keras) |",
        "|---|---|---:|" + "---:|" * (len(sides) + 2),
    ]
    for r in rows:
        cells = []
        for s in sides:
            got = r[s]
            cells.append("n/a" if got is None else f"{got[0]:,.0f}, {got[1]:,.0f} ({100 * got[2]:.0f} %)")
        share = f"{r['step_ms']:.1f}, {r['onednn_ms']:.1f} ({100 * r['onednn_ms'] / r['step_ms']:.0f} %)"
        bound = BATCH * 1e3 / r["onednn_ms"]
        keras = r["faster Keras"]
        bound_cell = f"{bound:,.0f}" + (f" ({bound / keras[0]:.2f}x)" if keras else "")
        lines.append(f"| {r['model']} | {r['precision']} | {r['gflop_per_image']:.4f} | " + " | ".join(cells)
                     + f" | {share} | {bound_cell} |")
    lines += ["", "Command:", "", "```", meta["command"], "```", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=None, help="a bench/results/throughput-*.json (newest)")
    parser.add_argument("--benchmarks-md", type=Path, default=BENCH.parent / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    parser.add_argument("--probe", nargs=3, metavar=("MODEL", "PRECISION", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe_step(args.probe[0], args.probe[1], int(args.probe[2]))
        return 0
    path = args.results or newest_result()
    result = json.loads(path.read_text())
    meta = result["meta"]
    if meta["cpu"] != cpu_name():
        raise SystemExit(f"{path.name} was measured on {meta['cpu']!r}, this is {cpu_name()!r}: the peak would "
                         "not be the same machine's")
    if meta["batch_size"] != BATCH:
        raise SystemExit(f"{path.name} used batch {meta['batch_size']}; the step probe uses {BATCH}")
    threads = meta["threads"] or meta["cores"]
    peaks = {name: matmul_peak(dtype, threads) for name, dtype in DTYPES.items()}
    command = ".venv/bin/python bench/roofline.py" + (f" --results {path}" if args.results else "")
    block = markdown(rows_for(result, peaks, threads), {
        "date": dt.date.today().isoformat(), "cpu": meta["cpu"], "threads": threads, "peaks": peaks,
        "source": f"bench/results/{path.name}, {meta['date']}", "command": command})
    print(block)
    if not args.no_write:
        update_block(args.benchmarks_md, BEGIN, END, block)
    return 0


if __name__ == "__main__":
    sys.exit(main())

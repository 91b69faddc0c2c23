"""Ways to use a CPU's cores for mnist_cnn's small training step, timed side by side (each in its own process).

    .venv/bin/python bench/step_variants.py [--model mnist_cnn] [--steps 600] [--threads 2]

- ``eager``: convscope's step (``make_train_step``), batch 32, torch using all ``--threads`` threads;
- ``trace``: the same with the model as a TorchScript trace;
- ``halves``: ``--threads`` Python threads of 1 torch thread each, every one training the same model on its share
  of each batch of 32 (gradients accumulate in the shared parameters, weighted by the share), then one Adam step;
- ``ddp``: ``--threads`` DistributedDataParallel processes (gloo, as ``convscope train --nproc`` runs them) of 1
  thread each, batch 32 / ``--threads`` each.

Prints ms per batch of 32 images (the median of 5 rounds of ``--steps`` / 5 steps after 50 warm-up steps) and
images/s; random images, channels_last. A probe for BENCHMARKS.md's reading of the throughput numbers, not a feature.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import torch
from classifier_step import classifier_step

BATCH = 32
VARIANTS = ("eager", "trace", "halves", "ddp")


def timed(step, steps: int) -> float:
    """Median ms per call of ``step()`` over 5 rounds, after 50 warm-up calls."""
    for _ in range(50):
        step()
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(steps // 5):
            step()
        rounds.append(1e3 * (time.perf_counter() - start) / (steps // 5))
    return statistics.median(rounds)


def run_variant(variant: str, model_name: str, steps: int, threads: int) -> float:
    """ms per batch of :data:`BATCH` images in ``variant`` (this process)."""
    if variant in ("eager", "trace"):
        torch.set_num_threads(threads)
        run = classifier_step(model_name, batch=BATCH)
        forward = torch.jit.trace(run.model, run.x) if variant == "trace" else run.model
        return timed(run.step_with(forward), steps)
    if variant == "halves":
        torch.set_num_threads(1)
        run = classifier_step(model_name, batch=BATCH)
        pool = ThreadPoolExecutor(threads)
        shares = list(zip(run.x.chunk(threads), run.y.chunk(threads), strict=True))

        def share(xs: torch.Tensor, ys: torch.Tensor) -> None:
            (run.task.loss(run.model(xs), ys) * (len(ys) / BATCH)).backward()

        def step() -> None:
            run.optimizer.zero_grad(set_to_none=True)
            for f in [pool.submit(share, xs, ys) for xs, ys in shares]:
                f.result()
            run.optimizer.step()

        return timed(step, steps)
    raise ValueError(variant)


def ddp_rank(rank: int, world: int, port: int, model_name: str, steps: int) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    try:
        run = classifier_step(model_name, batch=BATCH // world)
        ms = timed(run.step_with(torch.nn.parallel.DistributedDataParallel(run.model)), steps)
        if rank == 0:
            print(f"RESULT {ms}", flush=True)
    finally:
        dist.destroy_process_group()


def run_ddp(model_name: str, steps: int, threads: int) -> None:
    """``threads`` DDP processes of 1 thread; rank 0 prints the result."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(ddp_rank, args=(threads, port, model_name, steps), nprocs=threads, start_method="spawn")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mnist_cnn", choices=["mnist_cnn"])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one variant, in this process
    args = parser.parse_args(argv)
    if args.variant == "ddp":
        run_ddp(args.model, args.steps, args.threads)
        return 0
    if args.variant:
        print(f"RESULT {run_variant(args.variant, args.model, args.steps, args.threads)}", flush=True)
        return 0
    print(f"| variant ({args.threads} threads) | ms per batch of {BATCH} | images/s |\n|---|---:|---:|")
    for variant in VARIANTS:
        cmd = [sys.executable, __file__, "--variant", variant, "--model", args.model, "--steps", str(args.steps),
               "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        ms = float(next(line for line in out.splitlines() if line.startswith("RESULT")).split()[1])
        print(f"| {variant} | {ms:.2f} | {BATCH * 1e3 / ms:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

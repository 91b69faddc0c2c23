"""convscope side of the throughput benchmark, one measurement per process (allocator tuning is process-wide).

    .venv/bin/python bench/convscope_throughput.py --model vgg1 --data rbc.npz --batch-size 32 --epochs 3 \
        [--nchw] [--compile] [--no-allocator] [--threads N] [--precision bfloat16]

Prints one JSON line (see ``convscope.training.throughput.measure_throughput``).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from convscope.training.throughput import measure_throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--nchw", action="store_true", help="keep NCHW instead of channels_last")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-allocator", action="store_true", help="leave glibc's allocator settings alone")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()
    with np.load(args.data, allow_pickle=False) as d:
        x, y = d["x"], d["y"]
    result = measure_throughput(args.model, x, y, batch_size=args.batch_size, epochs=args.epochs,
                                channels_last=not args.nchw, compile=args.compile,
                                num_threads=args.threads, allocator=not args.no_allocator,
                                precision=args.precision)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Keras 3 (TensorFlow backend) side of the training-throughput benchmark.

Runs inside the venv made by ``bench/setup_keras_env.sh``, never in convscope's own:

    bench/.envs/keras/bin/python bench/keras_throughput.py \
        --model mnist_cnn --data mnist.npz --batch-size 32 --epochs 3 [--threads N]

``--data`` is an .npz from ``bench/make_bench_data.py`` holding ``x`` (N, H, W, C) uint8 and
``y`` (N,) int64. The pixels are scaled to float32 in [0, 1] once, in memory; then
``model.fit(x, y, batch_size, epochs, shuffle=True, verbose=0)`` trains the model (no metrics,
no validation: only the loss, like the convscope side) while a callback times every epoch with
``time.perf_counter``. The last batch of an epoch may be partial (as in Keras by default).

Prints exactly one JSON line on stdout (all logging goes to stderr):

    {"framework": "keras", "keras": ..., "tensorflow": ..., "model": ..., "batch_size": ...,
     "n_images": ..., "epochs": ..., "epoch_seconds": [...], "images_per_s": ...,
     "params": ..., "threads": ..., "jit_compile": ..., "loss": [...]}

``images_per_s`` covers the epochs after the first (the first includes tracing the
``tf.function`` and warming up): ``n_images / median(epoch_seconds[1:])`` (the median, so that one slow
epoch, seen in Keras's second vgg1 epoch, does not decide the ratio).

Threads: without ``--threads`` TensorFlow keeps its defaults (intra- and inter-op pools sized
by TensorFlow from the CPUs it sees, i.e. all logical cores available to the process;
reported as ``"threads": null``). ``--threads N`` sets both
``tf.config.threading.set_intra_op_parallelism_threads(N)`` and ``..._inter_op_...(N)``.
XLA: ``model.compile`` keeps Keras's default ``jit_compile="auto"``, which Keras resolves to
no XLA on a CPU-only machine; the value in effect is reported as ``jit_compile``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from tf_info import onednn_enabled

# Expected trainable parameter counts: the models must be the same as convscope's.
EXPECTED_PARAMS = {"mnist_cnn": 7_135, "vgg1": 1_925_921}
INPUT_SHAPES = {"mnist_cnn": (28, 28, 1), "vgg1": (85, 85, 3)}


def build_model(name: str):
    """The Keras definition of the benchmark model ``name``, compiled with Adam(1e-3)."""
    import keras
    from keras import layers

    if name == "mnist_cnn":
        model = keras.Sequential(
            [
                keras.Input(shape=INPUT_SHAPES[name]),
                layers.Conv2D(16, 3, activation="relu"),
                layers.MaxPooling2D(2),
                layers.Conv2D(16, 3, activation="relu"),
                layers.MaxPooling2D(2),
                layers.Conv2D(16, 3, activation="relu"),
                layers.Flatten(),
                layers.Dense(15, activation="relu"),
                layers.Dense(10, activation="softmax"),
            ],
            name=name,
        )
        loss = "sparse_categorical_crossentropy"
    elif name == "vgg1":
        stack = [keras.Input(shape=INPUT_SHAPES[name])]
        for filters in (32, 64, 128):
            stack += [
                layers.Conv2D(filters, 3, activation="relu"),
                layers.Conv2D(filters, 3, activation="relu"),
                layers.MaxPooling2D(2),
            ]
        stack += [
            layers.Flatten(),
            layers.Dense(256, activation="relu"),
            layers.Dense(128, activation="relu"),
            layers.Dense(1, activation="sigmoid"),
        ]
        model = keras.Sequential(stack, name=name)
        loss = "binary_crossentropy"
    else:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(EXPECTED_PARAMS)}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=loss)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Keras 3 / TensorFlow training throughput")
    parser.add_argument("--model", choices=sorted(EXPECTED_PARAMS), required=True)
    parser.add_argument("--data", required=True, help=".npz with x (N,H,W,C) uint8 and y (N,) int64")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="intra- and inter-op threads (default: TF's)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--precision", choices=("float32", "mixed_bfloat16"), default="float32",
        help="Keras dtype policy: float32 (its default) or mixed_bfloat16 (bfloat16 compute, float32 weights)",
    )
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not counted)")

    import tensorflow as tf

    if args.threads is not None:
        # Must happen before TensorFlow runs any op.
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import keras

    with np.load(args.data, allow_pickle=False) as data:
        x_u8, y = data["x"], data["y"]
    if x_u8.dtype != np.uint8 or x_u8.ndim != 4:
        raise SystemExit(f"{args.data}: x must be (N,H,W,C) uint8, got {x_u8.shape} {x_u8.dtype}")
    if x_u8.shape[1:] != INPUT_SHAPES[args.model]:
        raise SystemExit(
            f"{args.data}: images {x_u8.shape[1:]}, {args.model} takes {INPUT_SHAPES[args.model]}"
        )
    if y.shape != (len(x_u8),):
        raise SystemExit(f"{args.data}: y must have shape ({len(x_u8)},), got {y.shape}")
    x = x_u8.astype(np.float32) / np.float32(255.0)
    del x_u8
    # binary crossentropy wants float targets shaped like the (N, 1) sigmoid output
    y = y.astype(np.float32).reshape(-1, 1) if args.model == "vgg1" else y.astype(np.int64)

    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)
    model = build_model(args.model)
    params = int(model.count_params())
    if params != EXPECTED_PARAMS[args.model]:
        raise SystemExit(f"{args.model}: {params} parameters, expected {EXPECTED_PARAMS[args.model]}")

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    timer = EpochTimer()
    history = model.fit(
        x, y, batch_size=args.batch_size, epochs=args.epochs, shuffle=True, verbose=0, callbacks=[timer]
    )
    later = timer.seconds[1:]
    result = {
        "framework": "keras",
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "model": args.model,
        "batch_size": args.batch_size,
        "n_images": len(x),
        "epochs": args.epochs,
        "epoch_seconds": [round(s, 4) for s in timer.seconds],
        "images_per_s": round(len(x) / float(np.median(later)), 2),
        "params": params,
        "threads": args.threads,
        "jit_compile": bool(model.jit_compile),
        "precision": args.precision,
        "onednn": onednn_enabled(),
        "loss": [round(float(v), 5) for v in history.history["loss"]],
    }
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

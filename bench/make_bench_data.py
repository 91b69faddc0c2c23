"""Write the in-memory data set both sides of the throughput benchmark train on.

    python bench/make_bench_data.py --kind mnist --n 60000 --out /tmp/mnist.npz
    python bench/make_bench_data.py --kind rbc --n 2048 --out /tmp/rbc.npz

The .npz holds ``x`` (N, H, W, C) uint8, ``y`` (N,) int64 and ``source`` (a short text saying
where the pixels came from). Real data is used when it is found under ``--data-root``
(default: the ``shared/data`` folder beside the repository, i.e. ``/work/shared/data``):

* ``mnist``: the first N images of the MNIST training set (``mnist/train-*-idx?-ubyte.gz``),
  28x28x1, labels 0-9.
* ``rbc``: 85x85x3 red-blood-cell crops from ``rbc/train/{normal,abnormal}/*.jpg``, label
  0 = normal, 1 = abnormal, taken alternately from the two sorted class folders.

When the real files are absent, random uint8 pixels and random labels of the same shape are
written instead, and the script says so. Throughput does not depend on the pixel values, so
either is fine for timing; the real data only makes the loss curves meaningful. When N is
larger than the real set, the images are repeated (and the script says so).

Dependencies: numpy, plus Pillow (or imageio) for the RBC JPEGs.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np

SHAPES = {"mnist": (28, 28, 1), "rbc": (85, 85, 3)}
N_CLASSES = {"mnist": 10, "rbc": 2}
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"


def _read_idx(path: Path) -> np.ndarray:
    """Read a gzip'ed IDX file (the MNIST format) as a uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0] * 256 + data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _load_mnist(root: Path, n: int) -> tuple[np.ndarray, np.ndarray, str] | None:
    images = root / "mnist" / "train-images-idx3-ubyte.gz"
    labels = root / "mnist" / "train-labels-idx1-ubyte.gz"
    if not (images.is_file() and labels.is_file()):
        return None
    x = _read_idx(images)[:n, :, :, None]
    y = _read_idx(labels)[:n].astype(np.int64)
    return x, y, f"real MNIST train images (first {len(x)})"


def _read_rgb(path: Path) -> np.ndarray:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except ImportError:
        import imageio.v3 as iio

        a = np.asarray(iio.imread(path), dtype=np.uint8)
        return np.repeat(a[..., None], 3, axis=-1) if a.ndim == 2 else a[..., :3]


def _load_rbc(root: Path, n: int) -> tuple[np.ndarray, np.ndarray, str] | None:
    folder = root / "rbc" / "train"
    per_class = [sorted((folder / name).glob("*.jpg")) for name in ("normal", "abnormal")]
    if not all(per_class):
        return None
    # Alternate the classes so any prefix is balanced: normal, abnormal, normal, ...
    files: list[tuple[Path, int]] = []
    for pair in zip(*per_class, strict=False):  # stops at the smaller class
        files.extend((p, label) for label, p in enumerate(pair))
    files = files[:n]
    x = np.empty((len(files), *SHAPES["rbc"]), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        img = _read_rgb(path)
        if img.shape != SHAPES["rbc"]:
            raise ValueError(f"{path}: shape {img.shape}, expected {SHAPES['rbc']}")
        x[i] = img
    y = np.array([label for _, label in files], dtype=np.int64)
    return x, y, f"real RBC train crops ({len(x)}, normal/abnormal alternating)"


def make_data(kind: str, n: int, data_root: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Return ``(x uint8 NHWC, y int64, source)`` with exactly ``n`` images."""
    loaded = (_load_mnist if kind == "mnist" else _load_rbc)(data_root, n)
    if loaded is None:
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 256, size=(n, *SHAPES[kind]), dtype=np.uint8)
        y = rng.integers(0, N_CLASSES[kind], size=n).astype(np.int64)
        return x, y, f"random uint8 pixels and labels (no real {kind} data found)"
    x, y, source = loaded
    if len(x) < n:
        reps = -(-n // len(x))
        x, y = np.tile(x, (reps, 1, 1, 1))[:n], np.tile(y, reps)[:n]
        source += f", repeated to {n} images"
    return np.ascontiguousarray(x), y, source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=sorted(SHAPES), required=True)
    parser.add_argument("--n", type=int, required=True, help="number of images")
    parser.add_argument("--out", type=Path, required=True, help="output .npz file")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--seed", type=int, default=0, help="seed for the random fallback")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be positive")

    x, y, source = make_data(args.kind, args.n, args.data_root, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez(tmp, x=x, y=y, source=np.array(source))
    tmp.replace(args.out)
    print(
        f"wrote {args.out}: x {x.shape} {x.dtype}, y {y.shape} {y.dtype}; {source}"
        f" (data root {args.data_root})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

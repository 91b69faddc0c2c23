"""StarDist side of the star-convex benchmark: train the real StarDist 2D under a CPU time budget, predict a test set.

Runs inside the venv made by ``bench/setup_stardist_env.sh``, never in convscope's own:

    bench/.envs/stardist/bin/python bench/stardist_peer.py --split SPLIT.json --minutes M --out DIR \
        [--n-rays 32] [--grid 2] [--patch 256] [--threads N] [--seed 0] [--steps-per-epoch 100] [--border 2]
    bench/.envs/stardist/bin/python bench/stardist_peer.py --split SPLIT.json --trained PEER_DIR --out DIR \
        --border 0      # no training: steps 5-7 again with the model of a finished run, at another border
    bench/.envs/stardist/bin/python bench/stardist_peer.py --split SPLIT.json --trained PEER_DIR --out DIR \
        --keep-thresholds --repeats 3 [--limit N]   # speed only: its saved thresholds, 3 timed passes

``SPLIT.json`` is ``{"train": [[image, mask], ...], "val": [...], "test": [...]}`` (paths absolute or relative
to the JSON file; a mask is an instance label image, PNG or TIFF, 0 = background).

What it does, following StarDist's 2D training example notebook (``examples/2D/2_training.ipynb``):

1. Reads every image as a 2-D float32 gray image: (H, W) as is; (H, W, 3|4) RGB(A) -> mean of R, G, B (alpha
   ignored; the DSB 2018 fluorescence PNGs are gray stored as RGBA, so this is the gray value); (H, W, 2) gray +
   alpha -> the first channel. Each image is normalised on its own with ``csbdeep.utils.normalize(x, 1, 99.8)``
   (percentiles 1 and 99.8 -> 0 and 1). Masks go through ``stardist.fill_label_holes``.
2. Images smaller than the training patch (StarDist samples patches of exactly ``--patch`` pixels and refuses
   smaller images) are reflect-padded to the patch size for training and validation patches only, with label
   -1 in the padding, which StarDist's data generator treats as "ignore" (no loss there). The DSB 2018
   fluorescence images are all at least 256x256, so with the default patch nothing is padded; the JSON
   reports ``n_padded``. Threshold optimisation and test prediction use the unpadded images.
3. Builds ``StarDist2D(Config2D(n_rays, grid=(g, g), n_channel_in=1, train_patch_size=(p, p),
   train_tensorboard=False, train_epochs=100000, train_steps_per_epoch=S))``; everything else is
   StarDist's default (U-Net backbone, batch 4, Adam lr 3e-4, ReduceLROnPlateau, best weights on the
   validation loss). Augmentation is the notebook's: random rot90/transpose + flips, intensity
   ``x * U(0.6, 2) + U(-0.2, 0.2)`` and Gaussian noise with sigma ``0.02 * U(0, 1)``.
4. Trains with ``model.train`` plus a Keras callback that sets ``stop_training`` after the first training step
   that ends when ``--minutes`` of wall-clock time have passed since training began. Keras then finishes that
   epoch early: it still runs the validation pass, StarDist's checkpoint callback keeps the weights if the
   validation loss is the best so far, and ``model.train`` reloads the best weights. ``train_seconds`` is the
   wall-clock time of the whole ``model.train`` call (data sampling, steps, validation, checkpoints, reloading
   the best weights), so it is slightly more than the budget. Nothing else is counted in it.
5. ``model.optimize_thresholds(X_val, Y_val)`` (StarDist's defaults: NMS 0.3/0.4/0.5, IoU 0.3/0.5/0.7);
   its time is ``optimize_seconds``. ``--border B`` sets StarDist's ``b`` (prediction pixels ignored at each
   image edge when picking candidates; its default 2) both here and in step 6.
6. Predicts every test image with ``predict_instances`` (no tiling, the optimised thresholds) through
   StarDist's own generator ``_predict_instances_generator``, which is what ``predict_instances`` runs:
   it yields ``"predict"`` before the network runs and ``"nms"`` before ``_instances_from_prediction``.
   ``predict_seconds`` sums, over the test images, the time from ``"predict"`` to ``"nms"`` (the network and
   the sparse extraction of candidate rays above the probability threshold); ``postprocess_seconds`` sums the
   time from ``"nms"`` to the label image (non-maximum suppression and polygons to labels). Normalisation and
   file I/O count in neither. The network was already run on the validation images by step 5, so the test
   timings exclude graph tracing for the first shapes (new image shapes may still retrace).
7. Writes ``DIR/labels/<image stem>.tif`` (uint16, uint32 when more than 65,535 objects), the model folder
   ``DIR/model/stardist`` (config, best weights, thresholds.json) and ``DIR/per_image.json``
   (per test image: name, height, width, n_objects, predict_seconds, postprocess_seconds).

``--trained PEER_DIR`` skips steps 2-4: it loads ``PEER_DIR/model/stardist`` (weights and config, never
rewritten) and copies the training fields from ``PEER_DIR/result.json``; steps 5-7 then write to ``--out``.
With ``--keep-thresholds`` step 5 is skipped: the thresholds saved with the model are used (``optimize_seconds`` 0).
``--repeats R`` predicts the test images R times (``bench/speed_peers.py``): ``predict_seconds`` and
``postprocess_seconds`` are then the medians over the passes of their sums, ``passes`` lists every pass and
``per_image.json`` holds the last; the first pass already follows the network's first call on the validation
images (step 5) or, with ``--keep-thresholds``, one untimed warm-up prediction of the first test image.
``--limit N`` predicts only the first N test images.

Prints exactly one JSON line on stdout, with the keys below, and writes it to ``DIR/result.json`` too (what
``--trained DIR`` reads back); what Keras and StarDist print (progress bars,
messages) goes to ``DIR/stdout.log``, this script's progress (one line per epoch) to stderr.

    framework ("stardist"), stardist, csbdeep, tensorflow, keras, python, threads, seed,
    n_train, n_val, n_test, n_padded, n_rays, grid, patch, steps_per_epoch,
    budget_seconds, train_seconds, stopped_by_budget, epochs, steps, best_epoch, val_loss,
    optimize_seconds, border, thresholds {prob, nms},
    predict_seconds, postprocess_seconds, test_megapixels, n_objects,
    labels_dir, per_image, model_dir, stdout_log

``epochs`` counts epochs started (the last one usually partial); ``steps`` counts training steps (batches of
4 patches) done; ``val_loss`` has one value per epoch; ``best_epoch`` is 1-based; ``test_megapixels`` is the sum
of H * W / 1e6 over the test images. Threads: TensorFlow's defaults unless ``--threads N``, which sets the
intra- and inter-op pools to N and ``OMP_NUM_THREADS=N`` (StarDist's C++ NMS uses OpenMP) before anything
is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path

from tf_info import onednn_enabled


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--split", type=Path, required=True, help="JSON with train/val/test lists of [image, mask]")
    p.add_argument("--minutes", type=float, help="wall-clock budget for training, in minutes")
    p.add_argument("--trained", type=Path, help="a finished peer folder (result.json, model/): no training")
    p.add_argument("--border", type=int, default=2, help="StarDist's b: prediction pixels ignored at the image edges")
    p.add_argument("--out", type=Path, required=True, help="output folder (labels/, model/, per_image.json)")
    p.add_argument("--n-rays", type=int, default=32)
    p.add_argument("--grid", type=int, default=2, help="subsampling grid (g, g)")
    p.add_argument("--patch", type=int, default=256, help="training patch size (p, p); divisible by 8 * grid")
    p.add_argument("--steps-per-epoch", type=int, default=100)
    p.add_argument("--threads", type=int, default=None, help="TF intra/inter-op threads and OMP_NUM_THREADS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-thresholds", action="store_true", help="with --trained: its saved thresholds, no tuning")
    p.add_argument("--repeats", type=int, default=1, help="timed passes over the test images (medians reported)")
    p.add_argument("--limit", type=int, help="only the first N test images")
    args = p.parse_args(argv)
    if args.keep_thresholds and args.trained is None:
        p.error("--keep-thresholds needs --trained PEER_DIR")
    if args.repeats < 1 or (args.limit is not None and args.limit < 1):
        p.error("--repeats and --limit must be >= 1")
    if (args.minutes is None) == (args.trained is None):
        p.error("give --minutes (train) or --trained PEER_DIR (reuse a trained model)")
    if args.minutes is not None and args.minutes <= 0:
        p.error("--minutes must be > 0")
    if args.border < 0:
        p.error("--border must be >= 0")
    if args.patch % (8 * args.grid):
        p.error(f"--patch must be divisible by 8 * grid = {8 * args.grid} (StarDist's U-Net of depth 3 on the grid)")
    return args


def log(msg: str) -> None:
    print(f"[stardist-peer] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ data


def read_split(path: Path) -> dict[str, list[tuple[Path, Path]]]:
    spec = json.loads(path.read_text())
    out: dict[str, list[tuple[Path, Path]]] = {}
    for part in ("train", "val", "test"):
        items = spec.get(part)
        if not items:
            raise SystemExit(f"{path}: '{part}' is missing or empty")
        out[part] = [(path.parent / image, path.parent / mask) for image, mask in items]  # absolute paths stay
    stems = [image.stem for image, _ in out["test"]]
    if len(set(stems)) != len(stems):
        raise SystemExit(f"{path}: test images share file names; labels/<image stem>.tif would collide")
    return out


def read_any(path: Path):
    import numpy as np

    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return np.asarray(tifffile.imread(path))
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def to_gray(image, path: Path):
    """(H, W) float32 from (H, W), (H, W, 1), (H, W, 2) gray + alpha or (H, W, 3|4) RGB(A) (mean of R, G, B)."""
    import numpy as np

    if image.ndim == 3 and image.shape[-1] in (1, 2):
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[-1] in (3, 4):
        image = image[..., :3].astype(np.float32).mean(axis=-1)
    if image.ndim != 2:
        raise SystemExit(f"{path}: cannot read shape {image.shape} as a 2-D gray image")
    return image.astype(np.float32)


def to_labels(mask, path: Path):
    """(H, W) int32 instance labels; a mask saved with equal colour channels is collapsed."""
    import numpy as np

    if mask.ndim == 3:
        if not (mask[..., : min(3, mask.shape[-1])] == mask[..., :1]).all():
            raise SystemExit(f"{path}: mask channels differ; expected a single-channel instance label image")
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.dtype.kind not in "iu":
        raise SystemExit(f"{path}: expected an (H, W) integer label image, got {mask.shape} {mask.dtype}")
    return mask.astype(np.int32)


def load_pairs(pairs: list[tuple[Path, Path]]):
    from csbdeep.utils import normalize
    from stardist import fill_label_holes

    xs, ys = [], []
    for image_path, mask_path in pairs:
        x = to_gray(read_any(image_path), image_path)
        y = to_labels(read_any(mask_path), mask_path)
        if x.shape != y.shape:
            raise SystemExit(f"{mask_path}: shape {y.shape} differs from its image {image_path} {x.shape}")
        xs.append(normalize(x, 1, 99.8, axis=(0, 1)).astype("float32"))
        ys.append(fill_label_holes(y))
    return xs, ys


def pad_to_patch(xs, ys, patch: int):
    """Reflect-pad images smaller than the patch; label -1 (ignored by StarDist's losses) in the padding."""
    import numpy as np

    out_x, out_y, n_padded = [], [], 0
    for x, y in zip(xs, ys, strict=True):
        need = [(0, max(0, patch - s)) for s in x.shape]
        if any(after for _, after in need):
            n_padded += 1
            # reflect needs the pad to be smaller than the size; np.pad's "symmetric" repeats as needed
            mode = "reflect" if all(after < s for (_, after), s in zip(need, x.shape, strict=True)) else "symmetric"
            x = np.pad(x, need, mode=mode)
            y = np.pad(y, need, mode="constant", constant_values=-1)
        out_x.append(x)
        out_y.append(y)
    return out_x, out_y, n_padded


# ------------------------------------------------------------------------------------- augmentation


def make_augmenter(seed: int):
    """The StarDist 2D example's augmenter: random axis permutation and flips, intensity scale and shift, a little
    Gaussian noise (drawn from its own generator; StarDist's patch sampling uses ``np.random``, seeded by
    ``model.train(seed=...)``)."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def augmenter(x, y):
        axes = tuple(range(y.ndim))
        perm = tuple(rng.permutation(axes))
        x = x.transpose(perm + tuple(range(y.ndim, x.ndim)))
        y = y.transpose(perm)
        for ax in axes:
            if rng.random() > 0.5:
                x = np.flip(x, axis=ax)
                y = np.flip(y, axis=ax)
        x = x * rng.uniform(0.6, 2) + rng.uniform(-0.2, 0.2)
        sig = 0.02 * rng.uniform(0, 1)
        x = x + sig * rng.normal(0, 1, x.shape)
        return x, y

    return augmenter


# ----------------------------------------------------------------------------------------- training


def make_budget_callback(budget_seconds: float):
    from csbdeep.utils.tf import keras_import

    callback_base = keras_import("callbacks", "Callback")

    class TimeBudget(callback_base):
        """Stop training after the first step that ends once ``budget_seconds`` have passed since training began."""

        def __init__(self) -> None:
            super().__init__()
            self.start = None
            self.steps = 0
            self.epochs = 0
            self.stopped = False

        def on_train_begin(self, logs=None) -> None:
            self.start = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.epochs += 1

        def on_epoch_end(self, epoch, logs=None) -> None:
            logs = logs or {}
            log(f"epoch {epoch + 1}: {self.steps} steps, {time.perf_counter() - self.start:.0f} s, "
                f"loss {logs.get('loss', float('nan')):.4f}, val_loss {logs.get('val_loss', float('nan')):.4f}")

        def on_train_batch_end(self, batch, logs=None) -> None:
            self.steps += 1
            if time.perf_counter() - self.start >= budget_seconds:
                self.stopped = True
                self.model.stop_training = True

    return TimeBudget()


def build_model(args: argparse.Namespace, basedir: Path):
    from stardist.models import Config2D, StarDist2D

    conf = Config2D(
        n_rays=args.n_rays,
        grid=(args.grid, args.grid),
        n_channel_in=1,
        train_patch_size=(args.patch, args.patch),
        train_tensorboard=False,
        train_epochs=100_000,  # the time budget stops training
        train_steps_per_epoch=args.steps_per_epoch,
    )
    return StarDist2D(conf, name="stardist", basedir=str(basedir))


# --------------------------------------------------------------------------------------- prediction


def use_border(model, border: int) -> None:
    """Make the threshold optimisation pick candidates with StarDist's ``b = border`` (its dense
    ``_instances_from_prediction`` passes keyword arguments on to ``non_maximum_suppression``)."""
    dense = model._instances_from_prediction

    def instances(*args, **kwargs):
        if kwargs.get("points") is None:
            kwargs.setdefault("b", border)
        return dense(*args, **kwargs)

    model._instances_from_prediction = instances


def predict_timed(model, x, border: int = 2):
    """``predict_instances`` on one normalised image, timing the network part and the post-processing part."""
    t_predict = t_nms = None
    result = None
    for item in model._predict_instances_generator(x, show_tile_progress=False,
                                                   predict_kwargs={"verbose": 0, "b": border}):
        now = time.perf_counter()
        if isinstance(item, str):
            if item == "predict":
                t_predict = now
            elif item == "nms":
                t_nms = now
        else:
            result = item
            t_end = now
    if result is None or t_predict is None or t_nms is None:
        raise SystemExit("stardist's _predict_instances_generator did not yield 'predict', 'nms' and a result; "
                         "its API changed, update bench/stardist_peer.py")
    labels, _details = result
    return labels, t_nms - t_predict, t_end - t_nms


def keras_version() -> str | None:
    """The installed Keras distribution that tf.keras / csbdeep use (tf_keras when TF_USE_LEGACY_KERAS=1)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ("tf_keras", "keras") if os.environ.get("TF_USE_LEGACY_KERAS") == "1" else ("keras", "tf_keras")
    for name in names:
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def write_per_image(per_image: list[dict], out: Path) -> dict:
    """Write ``out/per_image.json``; the test-set totals of the result (times, megapixels, objects, paths)."""
    (out / "per_image.json").write_text(json.dumps(per_image, indent=1) + "\n")
    return {
        "predict_seconds": sum(r["predict_seconds"] for r in per_image),
        "postprocess_seconds": sum(r["postprocess_seconds"] for r in per_image),
        "test_megapixels": sum(r["height"] * r["width"] for r in per_image) / 1e6,
        "n_objects": sum(r["n_objects"] for r in per_image),
        "labels_dir": str(out / "labels"),
        "per_image": str(out / "per_image.json"),
    }


def write_labels(path: Path, labels) -> None:
    import numpy as np
    import tifffile

    dtype = np.uint16 if labels.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32
    tifffile.imwrite(path, labels.astype(dtype))


def predict_test(model, test: list[tuple[Path, Path]], x_test, out: Path, border: int) -> list[dict]:
    """Step 6-7 once: every test image predicted and timed, its labels written; one record per image."""
    import numpy as np

    per_image = []
    for (image_path, _mask_path), x in zip(test, x_test, strict=True):
        labels, t_net, t_post = predict_timed(model, x, border)
        write_labels(out / "labels" / f"{image_path.stem}.tif", labels)
        per_image.append({"name": image_path.stem, "height": int(x.shape[0]), "width": int(x.shape[1]),
                          "n_objects": len(np.unique(labels[labels > 0])),
                          "predict_seconds": t_net, "postprocess_seconds": t_post})
    return per_image


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args.out.mkdir(parents=True, exist_ok=True)
    real_stdout = sys.stdout
    # Keras progress bars and StarDist's messages go to DIR/stdout.log; stdout carries only the JSON line
    with open(args.out / "stdout.log", "w") as sink, contextlib.redirect_stdout(sink):
        result = run(args)
    line = json.dumps(result)
    partial = args.out / "result.json.partial"
    partial.write_text(line + "\n")
    partial.replace(args.out / "result.json")
    print(line, file=real_stdout, flush=True)


def run(args: argparse.Namespace) -> dict:
    import tensorflow as tf

    if args.threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    import csbdeep
    import stardist

    tf.random.set_seed(args.seed)

    split = read_split(args.split)
    out = args.out.resolve()
    (out / "labels").mkdir(parents=True, exist_ok=True)
    log(f"reading {', '.join(f'{len(v)} {k}' for k, v in split.items())} images")
    x_val, y_val = ([], []) if args.keep_thresholds else load_pairs(split["val"])
    split["test"] = split["test"][: args.limit]
    x_test, _ = load_pairs(split["test"])
    if args.trained is None:
        model, trained = train(args, split, x_val, y_val, out)
    else:
        from stardist.models import StarDist2D

        model = StarDist2D(None, name="stardist", basedir=str(args.trained.resolve() / "model"))
        trained = {k: v for k, v in json.loads((args.trained / "result.json").read_text()).items() if k in TRAINING}
        log(f"loaded the model trained in {args.trained}")
    use_border(model, args.border)

    if args.keep_thresholds:
        thresholds, optimize_seconds = model.thresholds._asdict(), 0.0
        predict_timed(model, x_test[0], args.border)  # warm-up: graph tracing, as step 5 does otherwise
    else:
        t0 = time.perf_counter()
        thresholds = model.optimize_thresholds(x_val, y_val, save_to_json=args.trained is None)
        optimize_seconds = time.perf_counter() - t0

    passes = [predict_test(model, split["test"], x_test, out, args.border) for _ in range(args.repeats)]
    totals = write_per_image(passes[-1], out)
    if args.repeats > 1:
        import statistics

        sums = [{k: sum(r[k] for r in p) for k in ("predict_seconds", "postprocess_seconds")} for p in passes]
        totals |= {k: statistics.median(s[k] for s in sums) for k in ("predict_seconds", "postprocess_seconds")}
        totals["passes"] = sums
        totals["total_seconds_median"] = statistics.median(s["predict_seconds"] + s["postprocess_seconds"]
                                                           for s in sums)
    per_image = passes[-1]
    log(f"predicted {len(per_image)} test images into {out / 'labels'}")

    return {
        "framework": "stardist",
        "stardist": stardist.__version__,
        "csbdeep": csbdeep.__version__,
        "tensorflow": tf.__version__,
        "keras": keras_version(),
        "onednn": onednn_enabled(),
        "python": platform.python_version(),
        "threads": args.threads,
        "seed": args.seed,
        "n_val": len(x_val),
        "n_test": len(x_test),
        **trained,
        "optimize_seconds": optimize_seconds,
        "border": args.border,
        "repeats": args.repeats,
        "thresholds": {"prob": float(thresholds["prob"]), "nms": float(thresholds["nms"])},
        **totals,
        "model_dir": str(Path(model.logdir)),
        "stdout_log": str(out / "stdout.log"),
    }


#: Fields of result.json that describe the training (copied by ``--trained``).
TRAINING = ("n_train", "n_padded", "n_rays", "grid", "patch", "steps_per_epoch", "budget_seconds", "train_seconds",
            "stopped_by_budget", "epochs", "steps", "best_epoch", "val_loss")


def train(args: argparse.Namespace, split: dict, x_val, y_val, out: Path) -> tuple[object, dict]:
    """Steps 2-4: train StarDist under the time budget; the model (best weights) and the training fields."""
    import numpy as np

    x_train, y_train = load_pairs(split["train"])
    x_train_p, y_train_p, pad_train = pad_to_patch(x_train, y_train, args.patch)
    x_val_p, y_val_p, pad_val = pad_to_patch(x_val, y_val, args.patch)

    model = build_model(args, out / "model")
    model.prepare_for_training()
    budget = make_budget_callback(60.0 * args.minutes)
    model.callbacks.append(budget)
    log(f"training for {args.minutes:g} min of wall-clock time")
    t0 = time.perf_counter()
    history = model.train(x_train_p, y_train_p, validation_data=(x_val_p, y_val_p), augmenter=make_augmenter(args.seed),
                          seed=args.seed)
    train_seconds = time.perf_counter() - t0
    val_loss = [float(v) for v in history.history.get("val_loss", [])]
    best_epoch = int(np.argmin(val_loss)) + 1 if val_loss else None
    log(f"trained {budget.steps} steps in {train_seconds:.1f} s; optimizing thresholds")
    return model, {
        "n_train": len(x_train),
        "n_padded": pad_train + pad_val,
        "n_rays": args.n_rays,
        "grid": args.grid,
        "patch": args.patch,
        "steps_per_epoch": args.steps_per_epoch,
        "budget_seconds": 60.0 * args.minutes,
        "train_seconds": train_seconds,
        "stopped_by_budget": budget.stopped,
        "epochs": budget.epochs,
        "steps": budget.steps,
        "best_epoch": best_epoch,
        "val_loss": val_loss,
    }


if __name__ == "__main__":
    main()

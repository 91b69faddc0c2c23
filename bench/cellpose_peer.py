"""Cellpose side of the flow-field benchmark: train Cellpose 3 from scratch under a CPU time budget, predict a test set.

Runs inside the venv made by ``bench/setup_cellpose_env.sh`` (cellpose 3.1.1.3, torch 2.13.0 CPU), never in
convscope's own, and imports nothing of convscope:

    bench/.envs/cellpose/bin/python bench/cellpose_peer.py --split SPLIT.json --minutes M --out DIR \
        [--threads N] [--seed 0] [--n-epochs 2000] [--eval-rescale labels|none] \
        [--cellprob-grid -1 0 1] [--flow-grid 0.4 0.6 0.8] [--limit N]

``SPLIT.json`` is the one ``bench/stardist_peer.py`` reads (``{"train": [[image, mask], ...], "val": [...],
"test": [...]}``, written by ``bench/stardist_bench.py``'s ``write_split``: convscope's dsb2018 split), and the
images and masks are read by the same functions (``read_split``, ``read_any``, ``to_gray``, ``to_labels``).

What it does, following Cellpose's own command line (``python -m cellpose --train`` from scratch on gray images,
``--chan 0 --chan2 0``, then ``--diameter 0`` with the trained model) and its defaults:

1. Reads every image as a 2-D float32 gray image (RGB(A) -> mean of R, G, B; the DSB 2018 fluorescence PNGs are
   gray stored as RGBA) and every mask as int32 labels. Normalisation is Cellpose's own (``normalize=True``:
   percentiles 1 and 99 per image), inside ``train_seg`` and ``eval``.
2. ``models.CellposeModel(gpu=False, pretrained_model=False, model_type=None, diam_mean=30.0, nchan=2)``: the
   default residual U-Net (nbase 32/64/128/256, style vectors), random weights, the CLI's 2 input channels
   (``channels=[0, 0]``: the gray image and a zero channel).
3. Flow targets: ``dynamics.labels_to_flows(train_labels, device=cpu)`` up front (what ``train_seg`` would do
   itself first; it skips the step for labels that already hold flows): ``flows_seconds``, not in the budget.
4. ``train.train_seg(net, train_data, train_flows, channels=[0, 0], normalize=True, n_epochs=2000,
   save_path=DIR/model, model_name="cellpose_dsb2018")`` and every other argument at its default: AdamW,
   learning rate 0.005 (linear warm-up from 0 over the first 10 epochs, then constant; the halvings at the
   end of its 2000-epoch schedule are never reached in a CPU budget), weight decay 1e-5, batch 8, every
   training image once per epoch, ``random_rotate_and_resize`` crops of 224x224 with random rotation, flips and
   scale in [0.5, 1.5] x (30 / the image's mean object diameter) (``rescale=True``), ``min_train_masks=5``
   (images with fewer objects are dropped). No validation data is passed: Cellpose only logs a validation loss
   and keeps the last weights anyway, so it would cost budget for nothing.
5. **Budget**: ``train_seg`` has none. A forward pre-hook on the network raises an exception before the first
   training batch that would start once ``--minutes`` of wall-clock time have passed since ``train_seg`` was
   called, so the last step starts within the budget and ends a little after it. The weights after the last
   optimizer step are saved with ``net.save_model`` (what ``train_seg`` does at its end). ``train_seconds`` is
   the wall-clock time of the ``train_seg`` call (its normalisation of the images, diameters, every step).
   Steps and per-step losses are recorded by wrapping ``train._loss_fn_seg``.
6. Reloads the saved model as a user would, ``models.CellposeModel(gpu=False, pretrained_model=PATH, nchan=2)``,
   which restores ``diam_mean`` (30) and ``diam_labels`` (the mean object diameter of the training masks). With
   ``--eval-rescale labels`` (the default, what Cellpose's CLI does for a model without a size model:
   ``--diameter 0`` -> ``diameter = model.diam_labels``), ``eval(diameter=None)`` resizes every image by
   ``diam_mean / diam_labels`` before the network (the scale the training crops were brought to) and the
   outputs back; ``--eval-rescale none`` runs the network at the native size (``rescale=1.0``). Dynamics run
   for ``200 / rescale`` iterations, as ``eval`` sets them (``resample=True``).
7. Thresholds: the validation images go through the network once; then every ``cellprob_threshold`` x
   ``flow_threshold`` of the grids is scored by the mean, over IoU 0.3, 0.5 and 0.7, of the pooled matching
   accuracy TP / (TP + FP + FN) (``cellpose.metrics.average_precision`` counts, summed over the images: the
   criterion convscope tunes its own thresholds with). The post-processing is Cellpose's
   ``dynamics.compute_masks`` and ``fill_holes_and_remove_small_masks``; for speed, the dynamics run once per
   cellprob threshold and ``metrics.flow_error`` once per mask set, then each flow threshold drops the masks
   above it (what ``remove_bad_flow_masks`` does); the first validation images are checked to give exactly
   ``dynamics.resize_and_compute_masks``' labels. ``tune_seconds`` (network + grid) is not in the budget.
8. Test prediction, one image at a time: ``predict_seconds`` sums ``model.eval(x, channels=[0, 0],
   diameter=None, rescale=R, compute_masks=False)`` (Cellpose's input conversion, percentile normalisation,
   resizing, tiled network on 224x224 tiles with overlap 0.1 in batches of 8, resizing back, its flow
   colour image), ``postprocess_seconds`` sums ``dynamics.resize_and_compute_masks(dP, cellprob, niter,
   cellprob_threshold, flow_threshold, interp=True, min_size=15, max_size_fraction=0.4)`` (flow dynamics,
   mask assembly, flow-error check, hole filling, small masks removed): together exactly what ``eval`` does
   with ``compute_masks=True``. File I/O counts in neither.
9. Writes ``DIR/labels/<image stem>.tif`` (uint16, uint32 when more than 65,535 objects), the model file
   ``DIR/model/models/cellpose_dsb2018``, ``DIR/per_image.json`` (per test image: name, height, width,
   n_objects, predict_seconds, postprocess_seconds), ``DIR/cellpose.log`` (Cellpose's log messages).

Prints exactly one JSON line on stdout (anything else printed to stdout goes to ``DIR/stdout.log``); the
script's own progress goes to stderr. Keys:

    framework ("cellpose"), cellpose, torch, numpy, python, threads, seed, limit,
    n_train, n_train_used, n_val, n_test, nchan, diam_mean, diam_labels, n_epochs_schedule, learning_rate,
    weight_decay, batch_size, bsize,
    flows_seconds, budget_seconds, train_seconds, stopped_by_budget, steps, steps_per_epoch, epochs,
    epochs_completed, epoch_loss,
    eval_rescale, rescale, niter, tune_seconds, tune_grid, thresholds {cellprob, flow}, tune_score,
    predict_seconds, postprocess_seconds, test_megapixels, n_objects,
    labels_dir, per_image, model_path, log

``epochs`` is steps / steps per epoch (the last epoch usually partial); ``epoch_loss`` is the mean training loss
of every epoch started. Threads: torch's defaults unless ``--threads N``, which sets ``torch.set_num_threads(N)``
and ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``NUMBA_NUM_THREADS`` before anything is imported.
``--limit N`` keeps the first N images of every split (smoke tests only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path

from stardist_peer import read_any, read_split, to_gray, to_labels, write_labels, write_per_image

CHANNELS = [0, 0]  # gray image, no second channel (Cellpose's CLI: --chan 0 --chan2 0)
NCHAN = 2          # Cellpose's CLI default number of network input channels
DIAM_MEAN = 30.0   # Cellpose's default object diameter the training crops are scaled to
MODEL_NAME = "cellpose_dsb2018"
TUNING_IOUS = (0.3, 0.5, 0.7)
MIN_SIZE = 15             # CellposeModel.eval's default
MAX_SIZE_FRACTION = 0.4   # CellposeModel.eval's default
N_SELF_CHECK = 3          # validation images whose fast threshold search is checked against Cellpose's own call


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--split", type=Path, required=True, help="JSON with train/val/test lists of [image, mask]")
    p.add_argument("--minutes", type=float, required=True, help="wall-clock budget for training, in minutes")
    p.add_argument("--out", type=Path, required=True, help="output folder (labels/, model/, per_image.json)")
    p.add_argument("--threads", type=int, default=None, help="torch threads and OMP/MKL/NUMBA_NUM_THREADS")
    p.add_argument("--seed", type=int, default=0, help="torch seed (network initialisation)")
    p.add_argument("--n-epochs", type=int, default=2000,
                   help="train_seg's n_epochs (its learning-rate schedule); the budget stops training first")
    p.add_argument("--eval-rescale", choices=("labels", "none"), default="labels",
                   help="labels: resize by diam_mean / diam_labels (Cellpose's CLI); none: native size")
    p.add_argument("--cellprob-grid", type=float, nargs="+", default=[-1.0, 0.0, 1.0])
    p.add_argument("--flow-grid", type=float, nargs="+", default=[0.4, 0.6, 0.8])
    p.add_argument("--limit", type=int, default=None, help="keep the first N images of each split (smoke tests)")
    args = p.parse_args(argv)
    if args.minutes <= 0:
        p.error("--minutes must be > 0")
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be >= 1")
    if any(f <= 0 for f in args.flow_grid):
        p.error("--flow-grid: thresholds must be > 0 (0 switches Cellpose's flow check off)")
    return args


def log(msg: str) -> None:
    print(f"[cellpose-peer] {msg}", file=sys.stderr, flush=True)


class BudgetExceeded(Exception):
    """Raised by the network's forward pre-hook to leave ``train_seg`` once the budget is spent."""


# ------------------------------------------------------------------------------------------------ data


def load(pairs):
    """Gray float32 images and int32 label images of ``[(image, mask), ...]``."""
    xs, ys = [], []
    for image_path, mask_path in pairs:
        x = to_gray(read_any(image_path), image_path)
        y = to_labels(read_any(mask_path), mask_path)
        if x.shape != y.shape:
            raise SystemExit(f"{mask_path}: shape {y.shape} differs from its image {image_path} {x.shape}")
        xs.append(x)
        ys.append(y)
    return xs, ys


# ----------------------------------------------------------------------------------------- training


def train_budgeted(model, x_train, flows_train, args, save_path: Path) -> dict:
    """``train.train_seg`` with its defaults, stopped by a forward pre-hook once the budget is spent."""
    import numpy as np
    from cellpose import train

    budget = 60.0 * args.minutes
    state = {"start": None, "steps": 0, "stopped": False, "losses": []}

    def pre_hook(module, inputs):
        if module.training and time.perf_counter() - state["start"] >= budget:
            state["stopped"] = True
            raise BudgetExceeded

    loss_fn = train._loss_fn_seg

    def recording_loss(lbl, y, device):
        loss = loss_fn(lbl, y, device)
        state["steps"] += 1
        state["losses"].append(float(loss.item()))
        return loss

    handle = model.net.register_forward_pre_hook(pre_hook)
    train._loss_fn_seg = recording_loss
    save_path.mkdir(parents=True, exist_ok=True)
    model_path = save_path / "models" / MODEL_NAME
    state["start"] = time.perf_counter()
    try:
        train.train_seg(model.net, train_data=x_train, train_labels=flows_train, channels=CHANNELS,
                        normalize=True, n_epochs=args.n_epochs, save_path=str(save_path), model_name=MODEL_NAME)
    except BudgetExceeded:
        model.net.save_model(str(model_path))  # the last weights, as train_seg saves them at its end
    finally:
        train_seconds = time.perf_counter() - state["start"]
        handle.remove()
        train._loss_fn_seg = loss_fn

    n_used = sum(1 for f in flows_train if len(np.unique(f[0])) - 1 >= 5)  # train_seg's min_train_masks=5
    per_epoch = math.ceil(n_used / 8)  # batch_size=8, every image once per epoch (nimg_per_epoch=None)
    losses = state["losses"]
    epoch_loss = [float(np.mean(losses[i:i + per_epoch])) for i in range(0, len(losses), per_epoch)]
    return {"train_seconds": train_seconds, "stopped_by_budget": state["stopped"], "steps": state["steps"],
            "steps_per_epoch": per_epoch, "n_train_used": n_used, "epochs": round(state["steps"] / per_epoch, 3),
            "epochs_completed": state["steps"] // per_epoch, "epoch_loss": epoch_loss, "model_path": model_path}


# --------------------------------------------------------------------------------------- prediction


def run_network(model, x, rescale: float):
    """dP (2, H, W) and cellprob (H, W) of one gray image: ``eval`` without the masks (see step 8)."""
    _masks, flows, _styles = model.eval(x, channels=CHANNELS, diameter=None, rescale=rescale, compute_masks=False)
    return flows[1], flows[2]


def postprocess(model, dP, cellprob, niter: float, cellprob_threshold: float, flow_threshold: float):
    from cellpose import dynamics

    return dynamics.resize_and_compute_masks(dP, cellprob, niter=niter, cellprob_threshold=cellprob_threshold,
                                             flow_threshold=flow_threshold, interp=True, min_size=MIN_SIZE,
                                             max_size_fraction=MAX_SIZE_FRACTION, resize=None, device=model.device)


def masks_for_grid(model, dP, cellprob, niter: float, cellprob_grid, flow_grid) -> dict:
    """{(cellprob, flow): labels} for every pair, equal to ``postprocess`` with those thresholds, but running the
    dynamics once per cellprob threshold and the flow-error computation once per mask set."""
    import numpy as np
    from cellpose import dynamics, metrics, utils

    out = {}
    for cp in cellprob_grid:
        # flow_threshold=0 skips remove_bad_flow_masks; min_size=-1 (compute_masks' default) skips the filling
        base = dynamics.compute_masks(dP, cellprob, niter=niter, cellprob_threshold=cp, flow_threshold=0.0,
                                      interp=True, max_size_fraction=MAX_SIZE_FRACTION, device=model.device)
        errors = metrics.flow_error(base, dP, model.device)[0] if base.max() > 0 else np.zeros(0)
        for ft in flow_grid:
            masks = base.copy()
            if masks.max() > 0:
                masks[np.isin(masks, 1 + (errors > ft).nonzero()[0])] = 0  # remove_bad_flow_masks
                if masks.max() < 2**16 and masks.dtype != "uint16":
                    masks = masks.astype("uint16")
            out[(cp, ft)] = utils.fill_holes_and_remove_small_masks(masks, min_size=MIN_SIZE)
    return out


def pooled_score(truth, preds) -> float:
    """Mean over IoU 0.3, 0.5, 0.7 of TP / (TP + FP + FN), counts summed over the images."""
    from cellpose import metrics

    _ap, tp, fp, fn = metrics.average_precision(list(truth), list(preds), threshold=list(TUNING_IOUS))
    tp, fp, fn = tp.sum(0), fp.sum(0), fn.sum(0)
    denom = tp + fp + fn
    return float(sum(t / d if d else 0.0 for t, d in zip(tp, denom, strict=True)) / len(TUNING_IOUS))


def tune(model, x_val, y_val, rescale: float, niter: float, args) -> tuple[dict, float]:
    import numpy as np

    per_pair = {(cp, ft): [] for cp in args.cellprob_grid for ft in args.flow_grid}
    for i, x in enumerate(x_val):
        dP, cellprob = run_network(model, x, rescale)
        grid = masks_for_grid(model, dP, cellprob, niter, args.cellprob_grid, args.flow_grid)
        if i < N_SELF_CHECK:  # the shortcut gives Cellpose's own labels
            for (cp, ft), masks in grid.items():
                if not np.array_equal(masks, postprocess(model, dP, cellprob, niter, cp, ft)):
                    raise SystemExit(f"threshold search differs from dynamics.resize_and_compute_masks at "
                                     f"cellprob {cp}, flow {ft}; update masks_for_grid for this Cellpose")
        for key, masks in grid.items():
            per_pair[key].append(masks)
    scores = {key: pooled_score(y_val, preds) for key, preds in per_pair.items()}
    (cp, ft), best = max(scores.items(), key=lambda kv: kv[1])  # first best in grid order on ties
    for (c, f), s in scores.items():
        log(f"  cellprob {c:+.1f} flow {f:.1f}: mean accuracy {s:.4f}")
    return {"cellprob": cp, "flow": ft}, best


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(args.out / "cellpose.log", mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    cellpose_logger = logging.getLogger("cellpose")
    cellpose_logger.setLevel(logging.INFO)
    cellpose_logger.addHandler(handler)
    cellpose_logger.propagate = False
    real_stdout = sys.stdout
    with open(args.out / "stdout.log", "w") as sink, contextlib.redirect_stdout(sink):
        result = run(args)
    print(json.dumps(result), file=real_stdout, flush=True)


def run(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    import cellpose
    from cellpose import dynamics, models

    torch.manual_seed(args.seed)  # network initialisation; train_seg seeds numpy itself (np.random.seed(epoch))

    split = read_split(args.split)
    if args.limit is not None:
        split = {k: v[: args.limit] for k, v in split.items()}
    out = args.out.resolve()
    (out / "labels").mkdir(parents=True, exist_ok=True)
    log(f"reading {', '.join(f'{len(v)} {k}' for k, v in split.items())} images")
    x_train, y_train = load(split["train"])
    x_val, y_val = load(split["val"])
    x_test, _ = load(split["test"])

    model = models.CellposeModel(gpu=False, pretrained_model=False, model_type=None, diam_mean=DIAM_MEAN,
                                 nchan=NCHAN)
    log("computing flow targets of the training masks (dynamics.labels_to_flows)")
    t0 = time.perf_counter()
    flows_train = dynamics.labels_to_flows([y.copy() for y in y_train], device=model.device)
    flows_seconds = time.perf_counter() - t0

    log(f"training for {args.minutes:g} min of wall-clock time (flow targets took {flows_seconds:.0f} s)")
    trained = train_budgeted(model, x_train, flows_train, args, out / "model")
    log(f"trained {trained['steps']} steps ({trained['epochs']:.2f} epochs) in {trained['train_seconds']:.1f} s; "
        f"epoch losses {', '.join(f'{v:.3f}' for v in trained['epoch_loss'])}")

    model = models.CellposeModel(gpu=False, pretrained_model=str(trained["model_path"]), nchan=NCHAN)
    diam_mean, diam_labels = float(model.diam_mean), float(model.diam_labels)
    rescale = diam_mean / diam_labels if args.eval_rescale == "labels" else 1.0
    niter = 200 / rescale  # eval's niter with resample=True
    log(f"diam_mean {diam_mean:g}, diam_labels {diam_labels:.2f}: rescale {rescale:.3f}; tuning thresholds on "
        f"{len(x_val)} validation images")
    t0 = time.perf_counter()
    thresholds, tune_score = tune(model, x_val, y_val, rescale, niter, args)
    tune_seconds = time.perf_counter() - t0
    log(f"thresholds: cellprob {thresholds['cellprob']}, flow {thresholds['flow']} (mean accuracy {tune_score:.4f}, "
        f"{tune_seconds:.0f} s)")

    per_image = []
    for (image_path, _mask_path), x in zip(split["test"], x_test, strict=True):
        t0 = time.perf_counter()
        dP, cellprob = run_network(model, x, rescale)
        t1 = time.perf_counter()
        labels = postprocess(model, dP, cellprob, niter, thresholds["cellprob"], thresholds["flow"])
        t2 = time.perf_counter()
        write_labels(out / "labels" / f"{image_path.stem}.tif", np.asarray(labels))
        per_image.append({"name": image_path.stem, "height": int(x.shape[0]), "width": int(x.shape[1]),
                          "n_objects": len(np.unique(labels[labels > 0])),
                          "predict_seconds": t1 - t0, "postprocess_seconds": t2 - t1})
    totals = write_per_image(per_image, out)
    log(f"predicted {len(per_image)} test images into {out / 'labels'}")

    return {
        "framework": "cellpose",
        "cellpose": cellpose.version,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": args.threads,
        "seed": args.seed,
        "limit": args.limit,
        "n_train": len(x_train),
        "n_train_used": trained["n_train_used"],
        "n_val": len(x_val),
        "n_test": len(x_test),
        "nchan": NCHAN,
        "diam_mean": diam_mean,
        "diam_labels": diam_labels,
        "n_epochs_schedule": args.n_epochs,
        "learning_rate": 0.005,
        "weight_decay": 1e-5,
        "batch_size": 8,
        "bsize": 224,
        "flows_seconds": flows_seconds,
        "budget_seconds": 60.0 * args.minutes,
        "train_seconds": trained["train_seconds"],
        "stopped_by_budget": trained["stopped_by_budget"],
        "steps": trained["steps"],
        "steps_per_epoch": trained["steps_per_epoch"],
        "epochs": trained["epochs"],
        "epochs_completed": trained["epochs_completed"],
        "epoch_loss": trained["epoch_loss"],
        "eval_rescale": args.eval_rescale,
        "rescale": rescale,
        "niter": niter,
        "tune_seconds": tune_seconds,
        "tune_grid": {"cellprob": args.cellprob_grid, "flow": args.flow_grid},
        "thresholds": thresholds,
        "tune_score": tune_score,
        **totals,
        "model_path": str(trained["model_path"]),
        "log": str(out / "cellpose.log"),
    }


if __name__ == "__main__":
    main()

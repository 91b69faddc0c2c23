"""Flow-field post-processing speed: ``compute_masks`` of a 2048x2048 prediction with thousands of cells, by stage,
and ``cellpose_flows`` of a 1024x1024 image with about 1,000 objects.

    .venv/bin/python bench/flows_postprocess.py                       # print the table, write bench/results/*.json
    .venv/bin/python bench/flows_postprocess.py --baseline-ref HEAD   # ... and time cellpose_flows of a git revision
    .venv/bin/python bench/flows_postprocess.py --size 512 --no-peer  # small, ours only

The peer: Cellpose 3's own ``dynamics.compute_masks`` (``bench/cellpose_dynamics_peer.py``, run in the venv of
``bash bench/setup_cellpose_env.sh``; skipped, saying so, where that venv is missing, or with ``--no-peer``) gets
the same Cellpose-variant prediction in Cellpose's conventions (5 x the flows, the probability as a logit, cell
probability threshold 0.0, the same as ours at 0.5), with the same settings (200 steps, flow threshold 0.4,
min_size 15, objects over 40 % of the image dropped) and the same torch threads (``--threads``, default 2; our
``follow_flows`` runs on one torch thread whatever that is). Both label images are scored against the truth, and
a side-by-side table gives the ratio Cellpose time / ours per stage and for ``compute_masks`` as a whole.

Label images are tiles of synthetic data (256x256 each, label ids offset per tile, so cells touch across tile
borders too): nuclei (``make_synthetic_nuclei``, the densest of a seeded pool of tiles) for Cellpose, bacteria
(``make_synthetic_bacteria``) for Omnipose. A realistic prediction is made from their exact flows: blurred
(gaussian, sigma 1 px: flows shrink where they turn, at centres and cell borders, as a network's do) plus smooth
noise (gaussian noise of standard deviation ``--noise`` per component, blurred with sigma 1 px and rescaled to that
standard deviation); the cell probability is the blurred mask plus noise. Each stage of ``compute_masks`` is timed
separately (warm, best of ``--repeats``), then ``compute_masks`` as a whole. The synthetic labels are recovered
from the prediction (accuracy at IoU 0.5 is reported), so the timed work is the real work.

Run it on a quiet machine: anything else on the CPU inflates the times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from benchmd import cpu_name, run_json
from scipy import ndimage

from convscope.datasets.bacteria import make_synthetic_bacteria
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.instances.dynamics import (
    cluster_endpoints,
    compute_masks,
    fill_holes_and_remove_small,
    follow_flows,
    group_endpoints,
    omnipose_n_iter,
    relabel_sequential,
    remove_bad_flow_masks,
)
from convscope.instances.flows import cellpose_flows, omnipose_flows
from convscope.metrics import matching

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TILE = 256
PEER_PYTHON = ROOT / "bench" / ".envs" / "cellpose" / "bin" / "python"
PEER_SCRIPT = ROOT / "bench" / "cellpose_dynamics_peer.py"
#: our stage -> the Cellpose stage it is compared with (cellpose_dynamics_peer.py's names)
PEER_STAGES = {"follow_flows": "follow_flows", "group": "get_masks", "flow_error": "flow_error",
               "fill_holes": "fill_holes", "compute_masks": "compute_masks"}


def tiled_labels(make: Callable, tiles: int, seed: int, pool: int) -> np.ndarray:
    """(tiles * 256, tiles * 256) uint32 labels: the ``tiles**2`` most crowded of ``pool`` generated tiles."""
    labels = make(max(pool, tiles * tiles), size=(TILE, TILE), seed=seed)[1]
    counts = np.array([len(np.unique(y)) - 1 for y in labels])
    chosen = labels[np.argsort(-counts, kind="stable")[: tiles * tiles]]
    out = np.zeros((tiles * TILE, tiles * TILE), np.uint32)
    offset = 0
    for i, y in enumerate(chosen):
        r, c = divmod(i, tiles)
        out[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = np.where(y > 0, y.astype(np.uint32) + offset, 0)
        offset += int(y.max())
    return out


def noisy_prediction(flows: np.ndarray, labels: np.ndarray, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flows (2, H, W) float32 and probability (H, W) float32 as a trained network might predict them."""
    rng = np.random.default_rng(seed)

    def smooth_noise(shape: tuple[int, ...]) -> np.ndarray:
        n = ndimage.gaussian_filter(rng.standard_normal(shape), (0,) * (len(shape) - 2) + (1, 1))
        return n / n.std()

    pred = ndimage.gaussian_filter(flows, (0, 1, 1)) + noise * smooth_noise(flows.shape)
    prob = ndimage.gaussian_filter((labels > 0).astype(np.float32), 1) + 0.1 * smooth_noise(labels.shape)
    return pred.astype(np.float32), np.clip(prob, 0, 1).astype(np.float32)


def best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, object]:
    """Warm (one untimed call) best-of-``repeats`` seconds of ``fn()`` and its last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def time_stages(flows: np.ndarray, prob: np.ndarray, variant: str, repeats: int, dist: np.ndarray | None
                ) -> tuple[dict[str, float], np.ndarray]:
    """Seconds per stage of ``compute_masks`` (defaults: thresholds 0.5 / 0.4, min_size 15) and its labels."""
    mask = prob > 0.5
    omni = variant == "omnipose"
    n_iter = omnipose_n_iter(np.where(mask, dist, 0)) if omni else 200
    times: dict[str, float] = {}
    times["follow_flows"], ends = best_of(repeats, lambda: follow_flows(flows * mask, mask, n_iter=n_iter))
    group = cluster_endpoints if omni else group_endpoints
    times["group"], ids = best_of(repeats, lambda: group(ends, mask.shape))
    labels = np.zeros(mask.shape, np.int64)
    labels[mask] = ids
    labels = relabel_sequential(labels)
    recompute = (lambda y: omnipose_flows(y)[0]) if omni else cellpose_flows
    times["flow_error"], kept = best_of(repeats, lambda: remove_bad_flow_masks(labels, flows, threshold=0.4,
                                                                              recompute=recompute))
    times["fill_holes"], _ = best_of(repeats, lambda: fill_holes_and_remove_small(kept, min_size=15))
    times["compute_masks"], out = best_of(repeats, lambda: compute_masks(flows, prob, variant=variant, dist=dist))
    return times, out


def postprocess(variant: str, tiles: int, noise: float, repeats: int, seed: int
                ) -> tuple[dict, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Time ``compute_masks`` of a noisy prediction of a tiled synthetic label image; also returns the problem
    (flows, probability, true labels) for the peer."""
    make = make_synthetic_bacteria if variant == "omnipose" else make_synthetic_nuclei
    labels = tiled_labels(make, tiles, seed, pool=int(1.5 * tiles * tiles))
    dist = None
    if variant == "omnipose":
        exact, dist = omnipose_flows(labels)
    else:
        exact = cellpose_flows(labels)
    flows, prob = noisy_prediction(exact, labels, noise, seed)
    times, pred = time_stages(flows, prob, variant, repeats, dist)
    m = matching(labels, pred, thresh=0.5)
    return ({"variant": variant, "size": list(labels.shape), "n_objects": int(len(np.unique(labels)) - 1),
             "n_found": int(pred.max()), "accuracy_iou50": float(m.accuracy), "seconds": times},
            (flows, prob, labels))


def run_peer(problem: tuple[np.ndarray, np.ndarray, np.ndarray], ours: dict, repeats: int, threads: int) -> dict:
    """Cellpose 3's ``compute_masks`` on the same prediction (``cellpose_dynamics_peer.py`` in its venv), scored
    against the same truth, with the ratios Cellpose time / ours."""
    flows, prob, truth = problem
    with tempfile.TemporaryDirectory() as tmp:
        given, labels_path = Path(tmp) / "prediction.npz", Path(tmp) / "cellpose_labels.npz"
        np.savez(given, flows=flows, prob=prob)
        cmd = [str(PEER_PYTHON), str(PEER_SCRIPT), "--input", str(given), "--labels", str(labels_path),
               "--threads", str(threads), "--repeats", str(repeats), "--niter", "200", "--cellprob-threshold", "0.0",
               "--flow-threshold", "0.4", "--min-size", "15", "--max-size-fraction", "0.4"]
        peer = run_json(cmd, "Cellpose peer")  # torch.set_num_threads(threads) there too; same environment
        pred = np.load(labels_path)["labels"]
    m = matching(truth, pred, thresh=0.5)
    peer.pop("labels", None)  # the temporary path
    peer.update(n_objects=int(len(np.unique(truth)) - 1), accuracy_iou50=float(m.accuracy),
                same_pixels=peer["n_pixels"] == int((prob > 0.5).sum()),
                ratio_cellpose_over_ours={ours_name: peer["seconds"][name] / ours["seconds"][ours_name]
                                          for ours_name, name in PEER_STAGES.items()})
    return peer


def load_flows_module(ref: str):
    """``convscope.instances.flows`` as of git revision ``ref`` (read with ``git show``), as a module."""
    source = subprocess.run(["git", "show", f"{ref}:src/convscope/instances/flows.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "flows_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("flows_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flows_speed(repeats: int, seed: int, baseline_ref: str | None) -> dict:
    """Time ``cellpose_flows`` of a 1024x1024 label image of about 1,000 nuclei (optionally also at a git ref)."""
    labels = tiled_labels(make_synthetic_nuclei, 4, seed, pool=48)
    result = {"size": list(labels.shape), "n_objects": int(len(np.unique(labels)) - 1)}
    result["seconds"], flows = best_of(repeats, lambda: cellpose_flows(labels))
    if baseline_ref:
        old = load_flows_module(baseline_ref)
        result["baseline_ref"] = baseline_ref
        result["baseline_seconds"], old_flows = best_of(repeats, lambda: old.cellpose_flows(labels))
        inner = np.zeros(labels.shape, bool)
        inner[1:-1, 1:-1] = True
        cos = (flows * old_flows).sum(0)[(labels > 0) & inner]
        result["cosine_to_baseline"] = {"mean": float(cos.mean()), "fraction_below_0.9": float((cos < 0.9).mean())}
    return result


def print_peer_table(ours: dict, peer: dict, threads: int) -> None:
    size = "x".join(map(str, ours["size"]))
    print(f"\nCellpose {peer['cellpose']} dynamics.compute_masks vs ours, cellpose variant, {size}, "
          f"{ours['n_objects']} cells; torch threads {threads} on both sides (ours: follow_flows on 1 thread; "
          f"Cellpose on the CPU: numba steps, 1 thread)")
    print(f"{'stage (ours / Cellpose)':<28} {'ours':>9} {'Cellpose':>9} {'Cellpose/ours':>14}")
    for ours_name, name in PEER_STAGES.items():
        label = ours_name if ours_name == name else f"{ours_name} / {name}"
        print(f"{label:<28} {ours['seconds'][ours_name]:>8.3f}s {peer['seconds'][name]:>8.3f}s "
              f"{peer['ratio_cellpose_over_ours'][ours_name]:>13.2f}x")
    print(f"{'cells found':<28} {ours['n_found']:>9} {peer['n_found']:>9}")
    print(f"{'accuracy at IoU 0.5':<28} {ours['accuracy_iou50']:>9.3f} {peer['accuracy_iou50']:>9.3f}")
    if not peer["same_pixels"]:
        print("warning: the two sides did not threshold the same pixels", file=sys.stderr)
    if not peer["stages_match"]:
        print("warning: Cellpose's staged run did not reproduce its compute_masks labels", file=sys.stderr)


def print_table(post: list[dict], speed: dict) -> None:
    stages = ["follow_flows", "group", "flow_error", "fill_holes", "compute_masks"]
    header = f"{'variant':<10} {'size':>10} {'cells':>6} {'found':>6} {'acc@0.5':>8} "
    print(header + " ".join(f"{s:>13}" for s in stages))
    for r in post:
        size = "x".join(map(str, r["size"]))
        print(f"{r['variant']:<10} {size:>10} {r['n_objects']:>6} {r['n_found']:>6} {r['accuracy_iou50']:>8.3f} "
              + " ".join(f"{r['seconds'][s]:>12.3f}s" for s in stages))
    line = f"cellpose_flows {'x'.join(map(str, speed['size']))}, {speed['n_objects']} objects: {speed['seconds']:.3f} s"
    if "baseline_seconds" in speed:
        line += (f"; {speed['baseline_ref']}: {speed['baseline_seconds']:.3f} s "
                 f"(x{speed['baseline_seconds'] / speed['seconds']:.1f}), mean cosine of the flows "
                 f"{speed['cosine_to_baseline']['mean']:.5f}")
    print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=8, help="tiles per side for compute_masks (8: 2048x2048)")
    parser.add_argument("--size", type=int, default=None,
                        help="image side for compute_masks, a multiple of 256 (overrides --tiles)")
    parser.add_argument("--noise", type=float, default=0.3, help="flow noise standard deviation per component")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", default=["cellpose", "omnipose"], choices=["cellpose", "omnipose"])
    parser.add_argument("--baseline-ref", default=None, help="also time cellpose_flows of this git revision")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, both sides")
    parser.add_argument("--no-peer", action="store_true", help="skip Cellpose's compute_masks")
    args = parser.parse_args(argv)
    if args.size is not None:
        if args.size < TILE or args.size % TILE:
            parser.error(f"--size must be a positive multiple of {TILE}")
        args.tiles = args.size // TILE
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    peer: dict | None = None
    peer_note = None  # why the peer is skipped
    if "cellpose" not in args.variants:
        peer_note = "no cellpose variant"
    elif args.no_peer:
        peer_note = "--no-peer"
    elif not PEER_PYTHON.exists():
        peer_note = f"{PEER_PYTHON.relative_to(ROOT)} missing (make it: bash bench/setup_cellpose_env.sh)"
        print(f"Cellpose peer skipped: {peer_note}", file=sys.stderr)
    post = []
    for v in args.variants:
        record, problem = postprocess(v, args.tiles, args.noise, args.repeats, args.seed)
        post.append(record)
        if v == "cellpose" and peer_note is None:  # right after ours, on the same input
            ours, peer = record, run_peer(problem, record, args.repeats, args.threads)
    speed = flows_speed(args.repeats, args.seed, args.baseline_ref)
    print_table(post, speed)
    if peer is not None:
        print_peer_table(ours, peer, args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"flows-postprocess-{stamp}.json"
    record = {"date": stamp, "cpu": cpu_name(), "load_average_start": load_start, "load_average_end": os.getloadavg(),
              "python": platform.python_version(), "numpy": np.__version__,
              "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "thread_env": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")},
              "args": vars(args),
              "compute_masks": post, "cellpose_flows": speed,
              "cellpose_peer": peer if peer is not None else {"skipped": peer_note}}
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Cellpose side of the flow post-processing benchmark: time Cellpose 3's own ``dynamics.compute_masks``.

Runs inside the venv made by ``bench/setup_cellpose_env.sh`` (cellpose 3.1.1.3, torch 2.13.0 CPU), never in
convscope's own, and imports nothing of convscope; ``bench/flows_postprocess.py`` calls it on its synthetic
Cellpose-style prediction:

    bench/.envs/cellpose/bin/python bench/cellpose_dynamics_peer.py --input IN.npz --labels OUT.npz \
        [--json OUT.json] [--threads 2] [--repeats 3] [--niter 200] [--cellprob-threshold 0.0] \
        [--flow-threshold 0.4] [--min-size 15] [--max-size-fraction 0.4]

``IN.npz`` holds ``flows`` (2, H, W) float32 at unit scale ((dy, dx), unit vectors inside objects, as convscope's
``compute_masks`` takes them) and ``prob`` (H, W), the cell probability in [0, 1]. Cellpose's network outputs
are on another scale, and its ``compute_masks`` expects them as they are (``CellposeModel.eval`` ->
``_compute_masks`` -> ``resize_and_compute_masks`` passes the raw output on): the flows as trained, 5 x the unit
flows (``train._loss_fn_seg``: ``veci = 5. * flows``; ``compute_masks`` divides ``dP`` by 5 before following it and
``metrics.flow_error`` divides it by 5 before comparing), and the cell probability as a logit (trained with
``BCEWithLogitsLoss``; the default ``cellprob_threshold`` 0.0 is probability 0.5). So, untimed, before anything
else: ``dP = 5 * flows`` (float32) and ``cellprob = log(p) - log(1 - p)`` with ``p`` clipped to [1e-6, 1 - 1e-6]
(float64, then float32; the sign is kept exactly, so ``cellprob > 0`` selects the same pixels as ``prob > 0.5``).

Timed (warm: one untimed call first, so numba's JIT and caches are done), on ``device=torch.device("cpu")``:

- ``compute_masks``: ``dynamics.compute_masks(dP, cellprob, niter=200, cellprob_threshold=0.0,
  flow_threshold=0.4, interp=True, min_size=15, max_size_fraction=0.4, device=cpu)``, best of ``--repeats``.
  (That is ``resize_and_compute_masks`` without a resize: it calls ``compute_masks`` with ``min_size=-1`` and then
  ``utils.fill_holes_and_remove_small_masks(min_size)``, which ``compute_masks`` does itself when given
  ``min_size > 0``.)
- Its stages, ``--repeats`` runs of the same steps in the same order as ``compute_masks``' body, timed one by
  one, the best per stage: ``follow_flows`` (``cellprob > threshold``, ``np.nonzero``, ``dP * mask / 5.`` and
  ``dynamics.follow_flows(..., interp=True)``, on the CPU a numba bilinear interpolation, all points for all
  ``niter`` steps, then the int tensor), ``get_masks`` (``dynamics.get_masks_torch``: histogram, seeds, growth,
  masks larger than ``max_size_fraction`` of the image dropped, renumbering), ``flow_error``
  (``dynamics.remove_bad_flow_masks``: ``metrics.flow_error`` recomputes the flows of every mask with
  ``masks_to_flows_cpu`` and drops masks above ``flow_threshold``; then the uint16 cast) and ``fill_holes``
  (``utils.fill_holes_and_remove_small_masks``). The staged labels are checked to equal ``compute_masks``'.

Threads: ``--threads N`` calls ``torch.set_num_threads(N)``, exactly what the driver does on its own side; the
environment (``OMP_NUM_THREADS`` etc.) is left as inherited, so both sides see the same. On the CPU only
``get_masks_torch`` (and small torch parts of the other steps) runs in torch; the Euler steps are numba without
``parallel``, the flow recomputation numba / numpy per mask, hole filling ``fill_voids``: one thread whatever N is.
``get_masks_torch`` is many small torch ops (a few per seed), which wait at OpenMP barriers for a descheduled
thread when the CPU is shared: at 512x512 with two training jobs on both cores of this machine it took 0.28 s
with 2 threads and 0.015 s with 1.

Writes the labels (``labels``, uint16 or uint32) to ``--labels`` and prints one JSON line (also written to
``--json`` if given): versions, settings, ``n_pixels`` (pixels above the threshold), ``n_found``, ``seconds``
(best per stage and of ``compute_masks``), ``all_seconds`` (every timed run) and ``stages_match``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

STAGES = ("follow_flows", "get_masks", "flow_error", "fill_holes")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", type=Path, required=True, help="npz with flows (2, H, W) at unit scale and prob (H, W)")
    p.add_argument("--labels", type=Path, required=True, help="output npz (key: labels)")
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (the environment is left alone)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--niter", type=int, default=200)
    p.add_argument("--cellprob-threshold", type=float, default=0.0, help="on the logit (0.0: probability 0.5)")
    p.add_argument("--flow-threshold", type=float, default=0.4)
    p.add_argument("--min-size", type=int, default=15)
    p.add_argument("--max-size-fraction", type=float, default=0.4)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    line = json.dumps(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(line, flush=True)


def run(args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from cellpose import dynamics, utils

    device = torch.device("cpu")
    data = np.load(args.input)
    flows = np.asarray(data["flows"], np.float32)
    prob = np.asarray(data["prob"], np.float64)
    if flows.ndim != 3 or flows.shape[0] != 2 or flows.shape[1:] != prob.shape:
        raise SystemExit(f"expected flows (2, H, W) and prob (H, W), got {flows.shape} and {prob.shape}")
    # Cellpose's network output conventions (see the module docstring); not timed
    dP = (np.float32(5.0) * flows).astype(np.float32)
    p = np.clip(prob, 1e-6, 1 - 1e-6)
    cellprob = (np.log(p) - np.log1p(-p)).astype(np.float32)

    kwargs = dict(niter=args.niter, cellprob_threshold=args.cellprob_threshold, flow_threshold=args.flow_threshold,
                  interp=True, min_size=args.min_size, max_size_fraction=args.max_size_fraction, device=device)

    def whole():
        return dynamics.compute_masks(dP, cellprob, **kwargs)

    def staged() -> tuple[dict[str, float], np.ndarray]:
        """``compute_masks``' body (cellpose 3.1.1.3, 2-D, CPU) with a clock between its steps."""
        t = {}
        start = time.perf_counter()
        iscell = cellprob > args.cellprob_threshold
        inds = np.nonzero(iscell)
        if len(inds[0]) == 0:
            return dict.fromkeys(STAGES, 0.0), np.zeros(cellprob.shape, "uint16")
        p_final = dynamics.follow_flows(dP * iscell / 5., inds=inds, niter=args.niter, interp=True, device=device)
        p_final = p_final.int() if torch.is_tensor(p_final) else torch.from_numpy(p_final).to(device, dtype=torch.int)
        t["follow_flows"] = time.perf_counter() - start
        start = time.perf_counter()
        mask = dynamics.get_masks_torch(p_final, inds, dP.shape[1:], max_size_fraction=args.max_size_fraction)
        t["get_masks"] = time.perf_counter() - start
        start = time.perf_counter()
        if mask.max() > 0 and args.flow_threshold > 0:
            mask = dynamics.remove_bad_flow_masks(mask, dP, threshold=args.flow_threshold, device=device)
        if mask.max() < 2**16 and mask.dtype != "uint16":
            mask = mask.astype("uint16")
        t["flow_error"] = time.perf_counter() - start
        start = time.perf_counter()
        if args.min_size > 0:
            mask = utils.fill_holes_and_remove_small_masks(mask, min_size=args.min_size)
        t["fill_holes"] = time.perf_counter() - start
        return t, mask

    warm = whole()  # numba compilation (map_coordinates is cached on disk, the rest compiles at import), caches
    all_seconds: dict[str, list[float]] = {s: [] for s in (*STAGES, "compute_masks")}
    stages_match = True
    for _ in range(args.repeats):
        t, labels = staged()
        stages_match &= bool(np.array_equal(labels, warm))
        for s in STAGES:
            all_seconds[s].append(t[s])
    for _ in range(args.repeats):
        start = time.perf_counter()
        labels = whole()
        all_seconds["compute_masks"].append(time.perf_counter() - start)
    stages_match &= bool(np.array_equal(labels, warm))

    args.labels.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.labels, labels=labels)
    return {
        "framework": "cellpose",
        "cellpose": version("cellpose"), "torch": torch.__version__, "numpy": np.__version__,
        "numba": version("numba"), "python": platform.python_version(),
        "threads": args.threads, "torch_threads": torch.get_num_threads(),
        "thread_env": {v: os.environ.get(v) for v in THREAD_ENV},
        "size": list(cellprob.shape), "repeats": args.repeats, "device": str(device),
        "call": "cellpose.dynamics.compute_masks(dP, cellprob, niter, cellprob_threshold, flow_threshold, "
                "interp=True, min_size, max_size_fraction, device=cpu)",
        "niter": args.niter, "cellprob_threshold": args.cellprob_threshold, "flow_threshold": args.flow_threshold,
        "interp": True, "min_size": args.min_size, "max_size_fraction": args.max_size_fraction,
        "input": "dP = 5 * flows; cellprob = logit(clip(prob, 1e-6, 1 - 1e-6))",
        "n_pixels": int((cellprob > args.cellprob_threshold).sum()), "n_found": int(labels.max()),
        "labels_dtype": str(labels.dtype), "labels": str(args.labels),
        "seconds": {k: min(v) for k, v in all_seconds.items()}, "all_seconds": all_seconds,
        "stages_match": stages_match,
    }


if __name__ == "__main__":
    sys.exit(main())

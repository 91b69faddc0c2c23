"""Star-convex prediction speed side by side: convscope's built-in ``nuclei`` model vs StarDist and InstanSeg,
same DSB test images.

    bash bench/setup_instanseg_env.sh                  # once: InstanSeg + CPU torch in bench/.envs/instanseg
    bash bench/setup_stardist_env.sh                   # once: StarDist + TensorFlow in bench/.envs/stardist
    bench/.envs/stardist/bin/python bench/stardist_peer.py --split bench/results/dsb2018_split.json \
        --minutes 30 --threads 1 --out PEER              # once: a StarDist trained on the same split
    .venv/bin/python bench/speed_peers.py --stardist PEER [--data ../shared/data] [--limit N] [--threads 1] \
        [--repeats 3] [--backends torch onnxruntime] [--no-peer] [--write]

1. Writes the split (``bench/results/dsb2018_split.json``, as ``bench/stardist_bench.py`` does) and takes its
   fluorescence test images (``--limit N``: the first N), the images of the StarDist and Cellpose benchmarks.
2. convscope, in this process: ``load_run("nuclei")`` (the built-in star-convex model) and a ``Predictor`` per
   backend (``--backends``; ``convscope predict`` runs ONNX Runtime on a CPU when the onnx extra is installed, else
   torch) with the tile of ``convscope predict`` (``PREDICT_TILE``), ``segment`` of every image: network
   (normalisation, tiles, blending) and decoding (NMS, polygons to labels), timed separately by the predictor
   itself. One untimed call on the first image first (ONNX Runtime traces its graph there), then ``--repeats``
   passes over all images; the median over the passes of the summed seconds per megapixel.
3. InstanSeg, in its own venv: ``bench/instanseg_peer.py`` (an untrained network of its default architecture and
   its own ``eval_small_image``; its post-processing also timed on a realistic, ground-truth-derived network output,
   because an untrained network finds no seeds; see that script), same images, same threads and repeats.
4. StarDist, in its own venv, with ``--stardist PEER`` (a folder written by ``bench/stardist_peer.py --minutes M``,
   trained on the same split): ``stardist_peer.py --trained PEER --keep-thresholds --repeats R`` predicts the same
   images whole (its default, no tiles) at its tuned thresholds and default edge handling, after one untimed
   warm-up call; network = its ``"predict"`` -> ``"nms"`` span (the network and the candidate extraction; its
   normalisation is done before and not counted), post-processing = NMS and polygons to labels.
5. Prints the table (network, post-processing, total s/MP; how many times faster convscope is) and, with
   ``--write``, replaces the ``speed-peers`` block of BENCHMARKS.md. Everything measured goes to
   ``bench/results/speed-peers-*.json``.

``--threads N`` (default 1) sets torch's intra- and inter-op threads here (ONNX Runtime uses torch's count) and the
peer's. The sides run one after the other, not interleaved: run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from benchmd import cpu_name, run_json, update_block
from stardist_bench import RESULTS, ROOT, write_split
from tf_info import ONEDNN_FORCED

from convscope.datasets.folders import load_image
from convscope.inference import Predictor
from convscope.inference.predictor import PREDICT_TILE
from convscope.io.image import read_image
from convscope.runs import load_run

PEER_PYTHON = ROOT / "bench" / ".envs" / "instanseg" / "bin" / "python"
STARDIST_PYTHON = ROOT / "bench" / ".envs" / "stardist" / "bin" / "python"
BEGIN, END = "<!-- speed-peers:begin -->", "<!-- speed-peers:end -->"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding dsb2018/")
    p.add_argument("--limit", type=int, help="only the first N test images (for trying it out)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of each side")
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the images (the median is reported)")
    p.add_argument("--batch-size", type=int, default=4, help="convscope: tiles per forward pass")
    p.add_argument("--backends", nargs="+", default=["torch", "onnxruntime"], choices=["torch", "onnxruntime"],
                   help="convscope's prediction backends, one row each")
    p.add_argument("--stardist", type=Path, help="a trained StarDist folder (bench/stardist_peer.py --out)")
    p.add_argument("--no-peer", action="store_true", help="convscope only (no peer environment needed)")
    p.add_argument("--write", action="store_true", help="replace the speed-peers block of BENCHMARKS.md")
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        p.error("--limit must be >= 1")
    return args


def time_convscope(predictor: Predictor, images: list[np.ndarray], repeats: int) -> dict:
    """Median over ``repeats`` passes of the predictor's network and decoding seconds per megapixel."""
    predictor.segment(images[0])  # warm-up (ONNX Runtime traces its graph on first use)
    passes, found = [], []
    for _ in range(repeats):
        predictor.timings = type(predictor.timings)()
        found = [len(np.unique(predictor.segment(image))) - 1 for image in images]
        t = predictor.timings
        passes.append({"network": t.network, "postprocess": t.postprocess, "megapixels": t.megapixels})
    mpx = passes[0]["megapixels"]
    med = {key: statistics.median(p[key] for p in passes) / mpx for key in ("network", "postprocess")}
    total = statistics.median(p["network"] + p["postprocess"] for p in passes) / mpx
    return {"backend": predictor.backend, "s_per_mpx": {**med, "total": total}, "passes": passes,
            "megapixels": mpx, "n_objects": sum(found)}


def convscope_side(args: argparse.Namespace, test: list[list[str]]) -> dict:
    run = load_run("nuclei", device="cpu")
    images = [load_image(Path(image), color="gray") for image, _ in test]
    rows = {b: time_convscope(Predictor(run, batch_size=args.batch_size, backend=b, tile=PREDICT_TILE), images,
                              args.repeats)
            for b in args.backends}
    truth = sum(len(np.unique(read_image(mask))) - 1 for _, mask in test)
    return {"model": "nuclei (built-in)", "parameters": sum(p.numel() for p in run.model.parameters()),
            "n_objects_truth": truth,
            "tile": PREDICT_TILE, "overlap": run.overlap, "thresholds": dict(run.task.thresholds), "rows": rows}


def peer_side(args: argparse.Namespace, split_path: Path, stamp: str) -> dict:
    if args.no_peer:
        return {"skipped": "--no-peer"}
    if not PEER_PYTHON.exists():
        return {"skipped": f"{PEER_PYTHON} is missing: run bash bench/setup_instanseg_env.sh"}
    cmd = [str(PEER_PYTHON), str(ROOT / "bench" / "instanseg_peer.py"), "--split", str(split_path),
           "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--out", str(RESULTS / f"speed-peers-{stamp}-instanseg.json"),
           *(["--limit", str(args.limit)] if args.limit else [])]
    print("instanseg:", " ".join(cmd), flush=True)
    return run_json(cmd, "InstanSeg side")


#: StarDist's TensorFlow settings: its defaults, and its oneDNN kernels forced on (TensorFlow turns them on by itself
#: only on CPUs with AVX-512 VNNI / BF16 / AMX; on others they are often faster, so both are timed).
TF_SETTINGS = {"TF defaults": {}, "oneDNN forced on": ONEDNN_FORCED}


def stardist_sides(args: argparse.Namespace, split_path: Path, stamp: str) -> dict[str, dict]:
    """The trained StarDist of ``--stardist`` timed on the same images, once per :data:`TF_SETTINGS`."""
    if args.no_peer or args.stardist is None:
        return {"skipped": {"skipped": "--no-peer" if args.no_peer else "no --stardist PEER folder given"}}
    if not STARDIST_PYTHON.exists():
        return {"skipped": {"skipped": f"{STARDIST_PYTHON} is missing: run bash bench/setup_stardist_env.sh"}}
    return {name: stardist_side(args, split_path, f"{stamp}-{i}", env)
            for i, (name, env) in enumerate(TF_SETTINGS.items())}


def stardist_side(args: argparse.Namespace, split_path: Path, stamp: str, env: dict[str, str]) -> dict:
    """``stardist_peer.py --trained --keep-thresholds`` with ``env`` added to this process's environment."""
    cmd = [str(STARDIST_PYTHON), str(ROOT / "bench" / "stardist_peer.py"), "--split", str(split_path),
           "--trained", str(args.stardist), "--keep-thresholds", "--repeats", str(args.repeats),
           "--threads", str(args.threads), "--out", str(RESULTS / f"speed-peers-{stamp}-stardist"),
           *(["--limit", str(args.limit)] if args.limit else [])]
    print("stardist:", " ".join(cmd), env, flush=True)
    result = run_json(cmd, "StarDist side", env={**os.environ, **env})
    mpx = result["test_megapixels"]
    net, post = result["predict_seconds"], result["postprocess_seconds"]
    total = result.get("total_seconds_median", net + post)
    return {**result, "s_per_mpx": {"network": net / mpx, "postprocess": post / mpx, "total": total / mpx}}


def table(ours: dict, peer: dict, stardists: dict[str, dict]) -> list[str]:
    rows = ["| | network s/MP | post-processing s/MP | total s/MP | objects found (truth) | faster StarDist total "
            "/ this | InstanSeg total / this |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    peer_total = peer.get("s_per_mpx", {}).get("total_realistic")
    sd_totals = [r["s_per_mpx"]["total"] for r in stardists.values() if "s_per_mpx" in r]
    sd_total = min(sd_totals) if sd_totals else None
    for backend, r in ours["rows"].items():
        s = r["s_per_mpx"]
        ratio = f"{peer_total / s['total']:.2f}x" if peer_total else "-"
        sd_ratio = f"{sd_total / s['total']:.2f}x" if sd_total else "-"
        rows.append(f"| convscope `nuclei`, {backend} | {s['network']:.3f} | {s['postprocess']:.3f} | "
                    f"{s['total']:.3f} | {r['n_objects']} ({ours['n_objects_truth']}) | {sd_ratio} | {ratio} |")
    for name, r in stardists.items():
        if "s_per_mpx" not in r:
            continue
        s = r["s_per_mpx"]
        onednn = {True: "oneDNN on", False: "oneDNN off"}.get(r.get("onednn"), "oneDNN ?")
        rows.append(f"| StarDist, {name} ({onednn}) | {s['network']:.3f} | {s['postprocess']:.3f} | "
                    f"{s['total']:.3f} | {r['n_objects']} ({ours['n_objects_truth']}) | "
                    f"{sd_total / s['total']:.2f}x | - |")
    if peer_total:
        s, truth = peer["s_per_mpx"], peer["n_objects_truth"]
        rows.append(f"| InstanSeg, untrained network, its own seeds | {s['network']:.3f} | {s['postprocess']:.3f} "
                    f"(no seeds: only the noise of end to end - network) | {s['end_to_end']:.3f} | "
                    f"{peer['n_objects_untrained']} ({truth}) | - | - |")
        rows.append(f"| InstanSeg, post-processing of a realistic output | {s['network']:.3f} | "
                    f"{s['postprocess_realistic']:.3f} | {s['total_realistic']:.3f} | {peer['n_objects_realistic']} "
                    f"({truth}; {peer['matched_realistic']} at IoU > 0.5) | - | 1.00x |")
    return rows


def about_stardist(stardists: dict[str, dict]) -> str:
    r = next(iter(stardists.values()))
    if "skipped" in r:
        return f"StarDist was not run: {r['skipped']}."
    return (f"StarDist: {r['stardist']} with TensorFlow {r['tensorflow']} (`bench/stardist_peer.py`, Config2D "
            f"defaults, {r['n_rays']} rays, grid {r['grid']}), trained {r['train_seconds'] / 60:.0f} min "
            f"({r['steps']} steps) on one thread on the same split's training images, its tuned thresholds "
            f"{r['thresholds']}, images predicted whole (its default), b = {r['border']} (its default); "
            "network = the network and the candidate extraction (its normalisation is not counted), "
            "post-processing = its NMS and polygons to labels. It runs twice: with TensorFlow's defaults (which turn "
            "its oneDNN kernels on only on CPUs with AVX-512 VNNI / BF16 / AMX) and with `TF_ENABLE_ONEDNN_OPTS=1`; "
            "the ratio is against the faster.")


def block(ours: dict, peer: dict, stardist: dict[str, dict], args: argparse.Namespace, n_images: int,
          load: tuple[str, str]) -> str:
    mpx = next(iter(ours["rows"].values()))["megapixels"]
    budget = next(iter(stardist.values())).get("budget_seconds", 0) / 60
    command = (".venv/bin/python bench/speed_peers.py --data ../shared/data"
               + (" --stardist PEER" if "skipped" not in stardist else "")
               + (f" --limit {args.limit}" if args.limit else "") + f" --threads {args.threads}"
               + f" --repeats {args.repeats} --write")
    if "skipped" in peer:
        about_peer = f"InstanSeg was not run: {peer['skipped']}."
    else:
        arch, par = peer["architecture"], peer["parameters"]
        about_peer = (
            f"InstanSeg: instanseg-torch {peer['instanseg_torch']} (torch {peer['torch']}), its default network "
            f"as its `scripts/train.py` builds it ({arch['model_str']}, layers {arch['layers']}, {arch['norm']} norm, "
            f"{arch['dim_coords']} embedding + {arch['n_sigma']} sigma + {arch['dim_seeds']} seed channels, "
            f"pixel-classifier MLP width {arch['mlp_width']}; {arch['dim_in']} input channel instead of train.py's "
            f"{arch['train_py_dim_in']}; {par['total']:,} parameters), UNTRAINED (random weights, seed "
            f"{peer['seed']}): its pretrained models are downloaded from GitHub at run time, which is not reachable "
            "here. Exported as its `export_to_torchscript` does (`InstanSeg_Torchscript`, `torch.jit.script`) and "
            "run through its own `InstanSeg.eval_small_image` (percentile normalisation, network, its "
            "post-processing), no rescaling. The untrained network finds no seeds, so its own post-processing "
            "costs next to nothing (row 2: post-processing = end to end - network, the difference of two "
            "network-dominated times, so it shows their noise, of either sign); row 3 times the same scripted "
            "post-processing on the output a perfectly trained network would give for the ground truth (seed map = "
            "InstanSeg's training target, embeddings pointing at each nucleus' centre, a hand-set pixel classifier; "
            "`bench/instanseg_peer.py`; the nuclei it misses are larger than its 64-pixel window or lose their seed "
            "to a neighbour's within 5 pixels: the package's default window and peak distance). "
            "Accuracy is not "
            "compared: its training code (`instanseg/scripts/train.py`) ships in the package but imports "
            "torchvision and monai (its `full` extra), which are not installed here.")
    return "\n".join([
        BEGIN,
        "## Star-convex prediction speed: convscope vs StarDist and InstanSeg on DSB 2018 fluorescence",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {cpu_name()}, {args.threads} thread(s) "
        f"per side, the sides one after the other; load average {load[0]} before, {load[1]} after. "
        f"{n_images} test images of the split of the StarDist benchmark ({mpx:.2f} megapixels), wall seconds per "
        f"megapixel, median of {args.repeats} passes after a warm-up call.",
        "",
        *table(ours, peer, stardist),
        "",
        f"convscope: the built-in `nuclei` model ({ours['parameters']:,} parameters, tiles of {ours['tile']}, "
        f"thresholds {ours['thresholds']}), `Predictor.segment`: network = normalisation + tiled network, "
        "post-processing = decoding (NMS, polygons to labels). " + about_stardist(stardist) + " " + about_peer,
        "",
        "Command: `bash bench/setup_instanseg_env.sh && bash bench/setup_stardist_env.sh && "
        + ("bench/.envs/stardist/bin/python bench/stardist_peer.py --split bench/results/dsb2018_split.json "
           f"--minutes {budget:g} --threads 1 --out PEER && " if "skipped" not in stardist
           else "") + f"{command}`",
        END,
    ])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    load_before = "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())
    split_path = RESULTS / "dsb2018_split.json"
    test = write_split(args.data, split_path)["test"][: args.limit]
    ours = convscope_side(args, test)
    peer = peer_side(args, split_path, stamp)
    stardist = stardist_sides(args, split_path, stamp)
    load_after = "{:.2f} / {:.2f} / {:.2f}".format(*os.getloadavg())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"speed-peers-{stamp}.json").write_text(json.dumps(
        {"convscope": ours, "instanseg": peer, "stardist": stardist, "threads": args.threads, "repeats": args.repeats,
         "n_images": len(test), "cpu": cpu_name(), "python": platform.python_version(), "torch": torch.__version__,
         "load_before": load_before, "load_after": load_after}, indent=1, default=str) + "\n")
    text = block(ours, peer, stardist, args, len(test), (load_before, load_after))
    print(text)
    if args.write:
        update_block(ROOT / "BENCHMARKS.md", BEGIN, END, text)


if __name__ == "__main__":
    main()

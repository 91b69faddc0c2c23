"""convscope's flow-field model vs the real Cellpose 3 trained from scratch on the DSB 2018 fluorescence split, same CPU
time budget.

    bash bench/setup_cellpose_env.sh                  # once: Cellpose 3 + torch (CPU) in bench/.envs/cellpose
    .venv/bin/python bench/flows_bench.py --minutes 30 [--data ../shared/data] [--ours RUN] [--peer DIR] [--no-write]

1. Writes the split (``bench/results/dsb2018_split.json``, ``stardist_bench.write_split``): convscope's fixed
   70/15/15 split by image of the fluorescence subset, as [image, mask] file pairs for the peer.
2. convscope: ``convscope train examples/flows_dsb2018.yaml --set train.time_limit=M`` (unless ``--ours`` names
   a finished run), then ``convscope evaluate RUN --split all`` (validation first, so the test timings are
   warm, as the peer's are after its threshold tuning), with the thresholds tuned on validation at the end of
   training. Its test matching and s/MPx are read from ``RUN/metrics.json``. Training time = the epochs'
   training plus validation wall time (history.csv).
3. Cellpose: ``bench/cellpose_peer.py`` in its own venv with the same budget (unless ``--peer`` names the folder
   of a finished peer run, holding ``result.json``); its test label TIFFs are scored by ``stardist_bench.score``
   (``convscope.metrics.evaluate_label_pairs``, i.e. ``matching_dataset``) against the same masks.
4. Rewrites the flow-field block of BENCHMARKS.md (``--no-write``: print it only).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from benchmd import cpu_name, run_json, update_block
from stardist_bench import score, train_ours, train_seconds, write_split

from convscope.runs.layout import RunDir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CONVSCOPE = ROOT / ".venv" / "bin" / "convscope"
PEER_PYTHON = ROOT / "bench" / ".envs" / "cellpose" / "bin" / "python"
RECIPE = ROOT / "examples" / "flows_dsb2018.yaml"
BEGIN, END = "<!-- flows-bench:begin -->", "<!-- flows-bench:end -->"


def evaluate_ours(run: Path, data_dir: Path) -> dict:
    cmd = [str(CONVSCOPE), "evaluate", str(run), "--split", "all", "--data", str(data_dir)]
    print("convscope:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    return json.loads((run / "metrics.json").read_text())


def ours_side(args: argparse.Namespace, split: dict) -> dict:
    run = Path(args.ours or RESULTS / f"flows-bench-convscope-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.ours is None:
        train_ours(run, args.minutes, args.data, recipe=RECIPE)
    metrics = evaluate_ours(run, args.data)
    test = metrics["test"]
    if test["n_images"] != len(split["test"]):
        raise SystemExit(f"{run}: evaluated on {test['n_images']} test images, the split has {len(split['test'])}; "
                         "was it trained on another data set?")
    history = RunDir.open(run).read_history()
    spmp = test["seconds_per_megapixel"]
    return {"run": str(run), "epochs": len(history), "thresholds": metrics.get("thresholds"),
            "train_seconds": train_seconds(history),
            "network_s_per_mpx": spmp["network"], "postprocess_s_per_mpx": spmp["postprocess"],
            "matching": test["matching"]}


def peer_side(args: argparse.Namespace, split_path: Path, split: dict) -> dict:
    out = Path(args.peer or RESULTS / f"flows-bench-peer-{time.strftime('%Y%m%d-%H%M%S')}")
    result_file = out / "result.json"
    if args.peer is None:
        cmd = [str(PEER_PYTHON), str(ROOT / "bench" / "cellpose_peer.py"), "--split", str(split_path),
               "--minutes", str(args.minutes), "--out", str(out), *args.peer_arg]
        print("cellpose:", " ".join(cmd), file=sys.stderr)
        result = run_json(cmd, "Cellpose side")
        result_file.write_text(json.dumps(result, indent=1) + "\n")
    result = json.loads(result_file.read_text())
    mpx = result["test_megapixels"]
    return {**result, "network_s_per_mpx": result["predict_seconds"] / mpx,
            "postprocess_s_per_mpx": result["postprocess_seconds"] / mpx,
            "matching": score(split["test"], Path(result["labels_dir"]))}


def check_same_truth(ours: dict, peer: dict) -> None:
    """Both sides were scored against the same objects: TP + FN (the true objects) agree."""
    o, p = ours["matching"]["0.5"], peer["matching"]["0.5"]
    if o["tp"] + o["fn"] != p["tp"] + p["fn"]:
        raise SystemExit(f"true objects differ: convscope's evaluation counts {o['tp'] + o['fn']}, the peer's "
                         f"scoring {p['tp'] + p['fn']}; not the same test masks")


def block(ours: dict, peer: dict, minutes: float, split: dict) -> str:
    def row(name: str, r: dict, epochs: str) -> str:
        m5, m75 = r["matching"]["0.5"], r["matching"]["0.75"]
        net, post = r["network_s_per_mpx"], r["postprocess_s_per_mpx"]
        return (f"| {name} | {r['train_seconds'] / 60:.1f} | {epochs} | {m5['f1']:.3f} | {m5['accuracy']:.3f} | "
                f"{m5['panoptic_quality']:.3f} | {m75['f1']:.3f} | {m75['accuracy']:.3f} | "
                f"{m75['panoptic_quality']:.3f} | {net:.2f} | {post:.3f} | {net + post:.2f} |")

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.3f}" if b else "n/a"

    o5, p5 = ours["matching"]["0.5"], peer["matching"]["0.5"]
    o75, p75 = ours["matching"]["0.75"], peer["matching"]["0.75"]
    speed = ((peer["network_s_per_mpx"] + peer["postprocess_s_per_mpx"])
             / (ours["network_s_per_mpx"] + ours["postprocess_s_per_mpx"]))
    stopped = "stopped by the budget" if peer.get("stopped_by_budget") else "not stopped by the budget"
    return "\n".join([
        BEGIN,
        "## Flow-field instances: convscope vs Cellpose 3 (from scratch) on DSB 2018 fluorescence",
        "",
        f"Same split ({len(split['train'])} train / {len(split['val'])} val / {len(split['test'])} test images, "
        f"{peer['test_megapixels']:.1f} test megapixels), same training budget of {minutes:g} min on this CPU "
        f"({cpu_name()}), both scored by convscope's matching (`evaluate_label_pairs`) at thresholds tuned on "
        "validation by the mean matching accuracy at IoU 0.3/0.5/0.7. convscope: `examples/flows_dsb2018.yaml` "
        f"(thresholds {ours['thresholds']}), test scores and timings from `convscope evaluate RUN --split all`. "
        f"Cellpose {peer.get('cellpose', '?')} on torch {peer.get('torch', '?')}, trained from scratch by "
        "`train.train_seg` with its defaults (AdamW 0.005 with a 10-epoch warm-up from 0, batch 8, 224x224 "
        f"crops, objects scaled to diameter 30) on {peer.get('n_train_used', '?')} images with at least 5 "
        f"objects, {peer.get('steps', '?')} steps, {stopped}; flow targets computed up front in "
        f"{peer.get('flows_seconds', float('nan')):.0f} s, outside the budget; predicted with `eval` at rescale "
        f"{peer.get('rescale', float('nan')):.2f} (30 / the training objects' mean diameter "
        f"{peer.get('diam_labels', float('nan')):.1f}), thresholds {peer.get('thresholds')} from "
        f"cellprob {peer.get('tune_grid', {}).get('cellprob')} x flow {peer.get('tune_grid', {}).get('flow')}.",
        "",
        "| | training (min) | epochs | F1 @0.5 | accuracy @0.5 | PQ @0.5 | F1 @0.75 | accuracy @0.75 | PQ @0.75 | "
        "network s/MPx | post-processing s/MPx | total s/MPx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        row("convscope", ours, str(ours["epochs"])),
        row("Cellpose 3", peer, f"{peer.get('epochs', float('nan')):.1f}"),
        "",
        f"Ratios convscope / Cellpose: F1 @0.5 {ratio(o5['f1'], p5['f1'])}, accuracy @0.5 "
        f"{ratio(o5['accuracy'], p5['accuracy'])}, accuracy @0.75 {ratio(o75['accuracy'], p75['accuracy'])}; "
        f"prediction (network + post-processing per megapixel) {speed:.2f}x as fast as Cellpose's. Network time "
        "includes each side's normalisation (Cellpose's also its resizing to and from the training scale).",
        "",
        f"Command: `bash bench/setup_cellpose_env.sh && .venv/bin/python bench/flows_bench.py --minutes "
        f"{minutes:g} --data ../shared/data`",
        END,
    ])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--minutes", type=float, default=30.0, help="training budget of each side")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding dsb2018/")
    p.add_argument("--ours", type=Path, help="a finished convscope run to evaluate instead of training one")
    p.add_argument("--peer", type=Path, help="a finished peer folder (with result.json) instead of training")
    p.add_argument("--peer-arg", action="append", default=[],
                   help="extra argument for cellpose_peer.py, repeatable (e.g. --peer-arg=--threads=2)")
    p.add_argument("--no-write", action="store_true", help="print the block; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    args.data = args.data.resolve()
    split_path = RESULTS / "dsb2018_split.json"
    split = write_split(args.data, split_path)
    ours = ours_side(args, split)
    peer = peer_side(args, split_path, split)
    check_same_truth(ours, peer)
    (RESULTS / f"flows-bench-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps({"convscope": ours, "cellpose": peer}, indent=1, default=str) + "\n")
    text = block(ours, peer, args.minutes, split)
    print(text)
    if not args.no_write:
        update_block(ROOT / "BENCHMARKS.md", BEGIN, END, text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

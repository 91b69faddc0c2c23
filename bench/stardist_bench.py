"""convscope's star-convex model vs the real StarDist on the DSB 2018 fluorescence split, same CPU time budget.

    bash bench/setup_stardist_env.sh                    # once: StarDist + TensorFlow in bench/.envs/stardist
    .venv/bin/python bench/stardist_bench.py --minutes 35 [--data ../shared/data] [--threads N] \
        [--ours RUN] [--peer DIR]

1. Writes the split (``bench/results/dsb2018_split.json``): convscope's fixed 70/15/15 split by image of the
   fluorescence subset (``load_segmentation``), as [image, mask] file pairs for the peer.
2. convscope: ``convscope train examples/ex7_stardist_dsb2018.yaml --set train.time_limit=M`` (unless ``--ours``
   names a finished run). Training time = the epochs' training plus validation wall time (history.csv).
3. StarDist: ``bench/stardist_peer.py`` in its own venv with the same budget (unless ``--peer`` names the folder
   of a finished peer run, holding ``result.json``). Then the same trained model once more with ``--trained DIR
   --border 0`` into ``DIR/border0``: thresholds tuned again and the test images predicted with candidates up to
   the image edge (StarDist's ``b = 0``; its default ``b = 2``), convscope's default edge handling.
4. Both predict every test image whole (convscope as ``convscope predict`` does: tiles of up to ``PREDICT_TILE``
   pixels, ONNX Runtime where the onnx extra is installed; StarDist: whole images, its default) at their
   thresholds tuned on the validation images; both label sets are scored by
   ``convscope.metrics.evaluate_label_pairs`` against the same masks. Network and post-processing time are timed
   separately (convscope's network time includes normalisation; StarDist's excludes it).
5. Rewrites the star-convex block of BENCHMARKS.md (``--no-write``: print it only).
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

from convscope.config import DataConfig
from convscope.datasets.paired import load_paired_folder
from convscope.datasets.segmentation import load_segmentation
from convscope.io.image import read_image
from convscope.metrics.matching import evaluate_label_pairs
from convscope.runs.layout import RunDir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PEER_PYTHON = ROOT / "bench" / ".envs" / "stardist" / "bin" / "python"
RECIPE = ROOT / "examples" / "ex7_stardist_dsb2018.yaml"
BEGIN, END = "<!-- stardist-bench:begin -->", "<!-- stardist-bench:end -->"


def write_split(data_dir: Path, path: Path) -> dict[str, list[list[str]]]:
    """convscope's dsb2018 split as [image, mask] pairs (the same images ``convscope train`` uses)."""
    data = load_segmentation(DataConfig(dataset="dsb2018"), data_dir=data_dir, instances=True)
    masks = {s.image_path: s.mask_path for s in load_paired_folder(data_dir / "dsb2018", mask_mode="instance",
                                                                          color="gray")}
    split = {name: [[p, masks[p]] for p in getattr(data, name).paths] for name in ("train", "val", "test")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split, indent=1) + "\n")
    return split


def train_ours(out: Path, minutes: float, data_dir: Path, recipe: Path = RECIPE, threads: int | None = None) -> None:
    """``convscope train RECIPE`` with a time limit of ``minutes`` (and ``threads`` CPU threads when given)."""
    cmd = [str(ROOT / ".venv" / "bin" / "convscope"), "train", str(recipe), "--out", str(out), "--data",
           str(data_dir), "--set", f"train.time_limit={minutes}", "--set", "train.progress=false",
           *(["--set", f"train.num_threads={threads}"] if threads else [])]
    print("convscope:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def train_seconds(history: list[dict[str, float]]) -> float:
    """Training time of a run: epoch plus validation seconds of history.csv."""
    return sum(r["seconds"] + r.get("validation_seconds", 0.0) for r in history)


def predict_ours(run: Path, test: list[list[str]], out: Path) -> dict:
    """Label images of the test set with timings, as the peer reports them."""
    from convscope.datasets.folders import load_image
    from convscope.inference import Predictor
    from convscope.inference.outputs import compact_dtype
    from convscope.inference.predictor import PREDICT_TILE
    from convscope.io.image import write_image

    segmenter = Predictor.from_run(run, backend="auto", tile=PREDICT_TILE)
    segmenter.predict(load_image(Path(test[0][0]), color="gray"))  # warm-up, as the peer's threshold tuning
    segmenter.timings = type(segmenter.timings)()
    for image_path, _ in test:
        image = load_image(Path(image_path), color="gray")
        write_image(out / f"{Path(image_path).stem}.tif", compact_dtype(segmenter.segment(image)))
    t = segmenter.timings
    return {"predict_seconds": t.network, "postprocess_seconds": t.postprocess, "test_megapixels": t.megapixels}


def score(test: list[list[str]], labels_dir: Path) -> dict:
    truth = [read_image(mask) for _, mask in test]
    pred = [read_image(labels_dir / f"{Path(image).stem}.tif") for image, _ in test]
    return evaluate_label_pairs(truth, pred, thresholds=(0.5, 0.75))["matching"]


def ours_side(args: argparse.Namespace, split: dict) -> dict:
    run = args.ours or RESULTS / f"stardist-bench-convscope-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.ours is None:
        train_ours(run, args.minutes, args.data, threads=args.threads)
    history = RunDir.open(run).read_history()
    labels = Path(run) / "bench_test_labels"
    timing = predict_ours(Path(run), split["test"], labels)
    return {"run": str(run), "epochs": len(history), "thresholds": RunDir.open(run).read_model_config()["thresholds"],
            "train_seconds": train_seconds(history), **timing, "matching": score(split["test"], labels)}


def run_peer(args: argparse.Namespace, split_path: Path, out: Path, *extra: str) -> dict:
    """``bench/stardist_peer.py`` in its own venv; its result, also written to ``out/result.json``."""
    cmd = [str(PEER_PYTHON), str(ROOT / "bench" / "stardist_peer.py"), "--split", str(split_path), "--out", str(out),
           *extra, *(["--threads", str(args.threads)] if args.threads else [])]
    print("stardist:", " ".join(cmd), file=sys.stderr)
    result = run_json(cmd, "StarDist side")
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def peer_side(args: argparse.Namespace, split_path: Path, split: dict) -> tuple[dict, dict]:
    """StarDist trained once, evaluated at its default border (b = 2) and at convscope's (0, in ``DIR/border0``)."""
    out = args.peer or RESULTS / f"stardist-bench-peer-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.peer is None:
        run_peer(args, split_path, out, "--minutes", str(args.minutes))
    result = json.loads((Path(out) / "result.json").read_text())
    edge = Path(out) / "border0"
    if not (edge / "result.json").exists():
        run_peer(args, split_path, edge, "--trained", str(out), "--border", "0")
    edge_result = json.loads((edge / "result.json").read_text())
    return ({**result, "matching": score(split["test"], Path(result["labels_dir"]))},
            {**edge_result, "matching": score(split["test"], Path(edge_result["labels_dir"]))})


def block(ours: dict, peer: dict, peer_edge: dict, args: argparse.Namespace, split: dict) -> str:
    def row(name: str, r: dict, epochs: str) -> str:
        m5, m75 = r["matching"]["0.5"], r["matching"]["0.75"]
        mpx = r["test_megapixels"]
        return (f"| {name} | {r['train_seconds'] / 60:.1f} | {epochs} | {m5['f1']:.3f} | {m5['accuracy']:.3f} | "
                f"{m5['panoptic_quality']:.3f} | {m75['accuracy']:.3f} | {r['predict_seconds'] / mpx:.2f} | "
                f"{r['postprocess_seconds'] / mpx:.3f} |")

    def ratios(other: dict) -> str:
        o5, p5 = ours["matching"]["0.5"], other["matching"]["0.5"]
        speed = (other["predict_seconds"] + other["postprocess_seconds"]) / (ours["predict_seconds"] +
                                                                           ours["postprocess_seconds"])
        return (f"F1 @0.5 {o5['f1'] / p5['f1']:.3f}, accuracy @0.5 {o5['accuracy'] / p5['accuracy']:.3f}; "
                f"end-to-end prediction (network + post-processing) {speed:.2f}x faster")

    mpx = ours["test_megapixels"]
    threads = f"{args.threads} thread(s) per side" if args.threads else "the frameworks' default threads"
    command = (f".venv/bin/python bench/stardist_bench.py --minutes {args.minutes:g} --data ../shared/data"
               + (f" --threads {args.threads}" if args.threads else ""))
    return "\n".join([
        BEGIN,
        "## Star-convex instances: convscope vs StarDist on DSB 2018 fluorescence",
        "",
        f"Same split ({len(split['train'])} train / {len(split['val'])} val / {len(split['test'])} test images, "
        f"{mpx:.1f} test megapixels), same training budget of {args.minutes:g} min on this CPU ({cpu_name()}), "
        f"{threads}, both scored by `convscope.metrics.evaluate_label_pairs` at their thresholds tuned on "
        f"validation. convscope: `examples/ex7_stardist_dsb2018.yaml` (thresholds {ours['thresholds']}); StarDist "
        f"{peer.get('stardist', '?')} with TensorFlow {peer.get('tensorflow', '?')}: Config2D defaults, "
        f"32 rays, grid 2, patch {peer.get('patch', '?')}, {peer.get('steps', '?')} steps, its thresholds tuned "
        f"and its test images predicted once with its default edge handling (b = 2: candidates closer than 2 grid "
        f"pixels to the image edge are ignored; thresholds {peer.get('thresholds')}) and once with convscope's "
        f"(b = 0; thresholds {peer_edge.get('thresholds')}).",
        "",
        "| | training (min) | epochs | F1 @0.5 | accuracy @0.5 | PQ @0.5 | accuracy @0.75 | network s/MPx | "
        "post-processing s/MPx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        row("convscope", ours, str(ours["epochs"])),
        row("StarDist, b = 2 (its default)", peer, str(peer.get("epochs", "?"))),
        row("StarDist, b = 0", peer_edge, str(peer_edge.get("epochs", "?"))),
        "",
        f"Ratios convscope / StarDist (b = 2): {ratios(peer)}.",
        f"Ratios convscope / StarDist (b = 0): {ratios(peer_edge)}.",
        "",
        f"Command: `bash bench/setup_stardist_env.sh && {command}`",
        END,
    ])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--minutes", type=float, default=35.0, help="training budget of each side")
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="folder holding dsb2018/")
    p.add_argument("--ours", type=Path, help="a finished convscope run to use instead of training one")
    p.add_argument("--peer", type=Path, help="a finished peer folder (with result.json) instead of training")
    p.add_argument("--threads", type=int, help="CPU threads of each side (training and prediction)")
    p.add_argument("--no-write", action="store_true", help="print the block; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    split_path = RESULTS / "dsb2018_split.json"
    split = write_split(args.data, split_path)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    ours = ours_side(args, split)
    peer, peer_edge = peer_side(args, split_path, split)
    (RESULTS / f"stardist-bench-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(
        json.dumps({"convscope": ours, "stardist": peer, "stardist_b0": peer_edge}, indent=1, default=str) + "\n")
    text = block(ours, peer, peer_edge, args, split)
    print(text)
    if not args.no_write:
        update_block(ROOT / "BENCHMARKS.md", BEGIN, END, text)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

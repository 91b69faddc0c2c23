"""Does the human-in-the-loop work? The napari *Correct & retrain* loop simulated with ground truth on a new domain.

    PYTHONPATH=src .venv/bin/python bench/finetune_loop.py --data ../shared/data [--start nuclei] \
        [--kinds color_stained] [--k 0,1,3,5,10] [--seeds 0,1] [--epochs 8] [--patches 128] [--threads 1] [--write]

The starting model (default: the built-in ``nuclei``, star-convex, trained on DSB 2018's grey fluorescence and
brightfield images) meets images of a kind it has not seen (default: DSB 2018's H&E-stained images, read as grey as
the model takes them). The "user" corrects k images: their ground truth, drawn at random (per seed; the sets are
nested: the 3 of k = 3 are among the 5 of k = 5) from that kind's training split. Then, per k and seed:

- **fine-tuned**: ``convscope.training.finetune.prepare_finetune`` on a ``paired`` folder of the k pairs (what
  *Retrain* and ``convscope finetune`` run: the start's weights, recipe and learning rate, every
  corrected image trains, thresholds tuned on them) with the fixed budget of ``--epochs`` x ``--patches``
  random patches;
- **from scratch**: the same recipe from random weights with the start's own learning rate, same k images, same
  budget.

Every model is scored on the same images: the kind's validation and test splits of the fixed rule (never corrected
in any seed), matching accuracy and F1 at IoU 0.5 (pooled over images, ``convscope.metrics.matching_dataset``); k = 0
is the starting model as it is. Runs and a ``results.json`` (one entry per finished model; a second call
resumes) go to ``--workdir``; ``--write`` draws ``docs/finetune_loop.png`` and rewrites the block in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from benchmd import cpu_name, update_block

from convscope import load_run, train
from convscope.datasets.folders import load_image
from convscope.datasets.segmentation import dsb2018_split_ids, image_kinds
from convscope.inference import Predictor
from convscope.io.image import read_image
from convscope.metrics import matching_dataset
from convscope.training.finetune import FINETUNE_LR_FACTOR, prepare_finetune

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
BEGIN, END = "<!-- finetune-loop:begin -->", "<!-- finetune-loop:end -->"


def correction_sets(pool: list[str], ks: list[int], seed: int) -> dict[int, list[str]]:
    """Nested random subsets of ``pool``: the first k ids of one seeded permutation, for each k."""
    order = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
    return {k: sorted(order[:k]) for k in ks}


def pair_folder(folder: Path, dsb: Path, ids: list[str]) -> Path:
    """A ``paired`` folder (``images/``, ``masks/``) of links to the DSB 2018 files ``ids``."""
    for sub in ("images", "masks"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for i in ids:
            link = folder / sub / f"{i}.png"
            if not link.exists():
                link.symlink_to((dsb / sub / f"{i}.png").resolve())
    return folder


def score(source: str | Path, dsb: Path, ids: list[str]) -> dict[str, float]:
    """Matching accuracy, F1 and PQ at IoU 0.5 of a model on the DSB 2018 images ``ids`` (read as it takes them)."""
    predictor = Predictor.from_run(source, device="cpu")
    color = "rgb" if predictor.run.channels == 3 else "gray"
    truth, pred = [], []
    for i in ids:
        pred.append(predictor.segment(load_image(dsb / "images" / f"{i}.png", color=color)))
        truth.append(read_image(dsb / "masks" / f"{i}.png"))
    m = matching_dataset(truth, pred, thresh=0.5)
    return {"accuracy": round(m.accuracy, 4), "f1": round(m.f1, 4), "pq": round(m.panoptic_quality, 4),
            "n_true": int(m.n_true), "n_pred": int(m.n_pred)}


def train_one(start: str, pairs: Path, out: Path, *, scratch: bool, seed: int, epochs: int, patches: int,
              threads: int, lr_factor: float | None) -> float:
    """Fine-tune ``start`` (or train its recipe from scratch) on ``pairs`` into ``out``; wall seconds. Fine-tuning
    runs at ``lr_factor`` times the start's learning rate (None: ``prepare_finetune``'s default)."""
    config = prepare_finetune(start, pairs, out, epochs=epochs, holdout=False, log=lambda _m: None)
    model = config.model.model_copy(update={"weights": None}) if scratch else config.model
    start_lr = load_run(start).config.train.learning_rate
    lr = start_lr if scratch else config.train.learning_rate if lr_factor is None else start_lr * lr_factor
    config = config.model_copy(update={
        "model": model,
        "data": config.data.model_copy(update={"patches_per_epoch": patches}),
        "train": config.train.model_copy(update={"seed": seed, "learning_rate": lr, "num_threads": threads,
                                                 "progress": False, "time_limit": None}),
    })
    begin = time.perf_counter()
    train(config, out, log=lambda _m: None)
    return time.perf_counter() - begin


def run_all(args: argparse.Namespace) -> dict[str, dict]:
    dsb = args.data / "dsb2018"
    kinds = args.kinds.split(",")
    pool, val, test = dsb2018_split_ids(image_kinds(dsb), kinds)
    scored = val + test
    results_file = args.workdir / "results.json"
    results: dict[str, dict] = json.loads(results_file.read_text()) if results_file.exists() else {}

    def record(key: str, make) -> None:
        if key in results:
            return
        results[key] = make()
        print(key, json.dumps(results[key]), flush=True)
        results_file.write_text(json.dumps(results, indent=1) + "\n")

    print(f"{len(pool)} {'+'.join(kinds)} images to correct from, {len(scored)} scored", flush=True)
    record("start", lambda: score(args.start, dsb, scored))
    for seed in args.seeds:
        for k, ids in correction_sets(pool, [k for k in args.k if k > 0], seed).items():
            pairs = pair_folder(args.workdir / f"pairs_s{seed}_k{k}", dsb, ids)
            for method in ("finetuned", "scratch"):
                out = args.workdir / f"{method}_s{seed}_k{k}"

                def one(out: Path = out, method: str = method, pairs: Path = pairs, ids: list[str] = ids,
                        seed: int = seed) -> dict:
                    seconds = train_one(args.start, pairs, out, scratch=method == "scratch", seed=seed,
                                        epochs=args.epochs, patches=args.patches, threads=args.threads,
                                        lr_factor=args.lr_factor)
                    return {"k": len(ids), "seed": seed, "method": method, "images": ids,
                            "train_seconds": round(seconds, 1), **score(out, dsb, scored)}

                record(f"{method}_s{seed}_k{k}", one)
    return results


def table(results: dict[str, dict], ks: list[int], seeds: list[int]) -> tuple[str, dict]:
    """The markdown table (accuracy and F1 at IoU 0.5 per k, seeds and mean) and the means used by the verdict."""
    start = results["start"]
    head = ("| k corrected | fine-tuned accuracy (seeds) | fine-tuned F1 | from scratch accuracy (seeds) | "
            "from scratch F1 |\n|---:|---|---:|---|---:|\n")
    rows, means = [f"| 0 (start) | {start['accuracy']:.3f} | {start['f1']:.3f} | - | - |"], {}
    for k in [k for k in ks if k > 0]:
        cells = []
        for method in ("finetuned", "scratch"):
            runs = [results[f"{method}_s{s}_k{k}"] for s in seeds if f"{method}_s{s}_k{k}" in results]
            if not runs:
                cells += ["-", "-"]
                continue
            acc = [r["accuracy"] for r in runs]
            means[(method, k)] = (float(np.mean(acc)), float(np.ptp(acc)) if len(acc) > 1 else float("nan"))
            cells += [f"{np.mean(acc):.3f} ({', '.join(f'{a:.3f}' for a in acc)})",
                      f"{np.mean([r['f1'] for r in runs]):.3f}"]
        rows.append(f"| {k} | " + " | ".join(cells) + " |")
    return head + "\n".join(rows) + "\n", means


def verdict(results: dict[str, dict], means: dict, k: int = 5) -> str:
    """Whether with k corrected images fine-tuning beats the start and from-scratch training by more than the spread
    of the seeds."""
    if ("finetuned", k) not in means or ("scratch", k) not in means:
        return f"k = {k} was not run."
    (ft, ft_spread), (sc, sc_spread) = means[("finetuned", k)], means[("scratch", k)]
    start = results["start"]["accuracy"]
    spread = max(ft_spread, sc_spread)
    beats = ft - start > spread and ft - sc > spread
    return (f"With {k} corrected images the fine-tuned model reaches accuracy {ft:.3f} (mean of the seeds) against "
            f"{start:.3f} for the starting model and {sc:.3f} from scratch; the larger spread between two seeds is "
            f"{spread:.3f}. Target (fine-tuned ahead of both by more than that spread): "
            f"{'met' if beats else 'not met'}.")


def plot(results: dict[str, dict], ks: list[int], seeds: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    ax.axhline(results["start"]["accuracy"], color="grey", ls="--", label="starting model (k = 0)")
    for method, colour, name in (("finetuned", "tab:blue", "fine-tuned"), ("scratch", "tab:orange", "from scratch")):
        xs, ys, mean_x, mean_y = [], [], [], []
        for k in [k for k in ks if k > 0]:
            acc = [results[f"{method}_s{s}_k{k}"]["accuracy"] for s in seeds if f"{method}_s{s}_k{k}" in results]
            xs += [k] * len(acc)
            ys += acc
            if acc:
                mean_x.append(k)
                mean_y.append(float(np.mean(acc)))
        ax.plot(mean_x, mean_y, "-", color=colour, label=name)
        ax.plot(xs, ys, "o", color=colour, ms=4, alpha=0.7)
    ax.set_xlabel("corrected images of the new domain (k)")
    ax.set_ylabel("matching accuracy at IoU 0.5")
    ax.set_xticks([k for k in ks if k > 0])
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def block(args: argparse.Namespace, results: dict[str, dict], command: str) -> str:
    text, means = table(results, args.k, args.seeds)
    runs = [r for key, r in results.items() if key != "start"]
    seconds = [r["train_seconds"] for r in runs]
    first = runs[0] if runs else {}
    return (f"{BEGIN}\n## Does the loop work? Correct k images of a new domain, retrain\n\n"
            f"Table written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from the runs of `--workdir`, "
            f"made on {cpu_name()} "
            f"({args.threads} torch thread(s), Python {platform.python_version()}, torch {torch.__version__}; "
            f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} at the end).\n\n"
            f"Start: `{args.start}`. New domain: DSB 2018 `{args.kinds}` images, read as the model takes them. "
            f"The user is simulated by ground truth: k images drawn at random from the kind's training split "
            f"(nested sets per seed); every model is scored on the same {first.get('n_true', '?')} nuclei of the "
            f"kind's validation + test images, never corrected. Budget per run: {args.epochs} epochs x "
            f"{args.patches} random 128 px patches; fine-tuned = `convscope finetune` ({lr_text(args.lr_factor)}, "
            f"every corrected image trains, thresholds tuned on them); from scratch = the same "
            f"recipe from random weights at the start's learning rate. Training took {min(seconds):.0f}-"
            f"{max(seconds):.0f} s per run.\n\n" if seconds else "\n") + text + (
            f"\n{verdict(results, means)}\n\n![fine-tuning curve](docs/finetune_loop.png)\n\n"
            f"Command:\n\n```\n{command}\n```\n{END}\n")


def lr_text(factor: float | None) -> str:
    default = f"its default learning rate, {FINETUNE_LR_FACTOR:g} x the start's"
    return default if factor is None else f"{factor:g} x the start's learning rate"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--start", default="nuclei", help="a run directory or a built-in model")
    parser.add_argument("--kinds", default="color_stained")
    parser.add_argument("--k", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 3, 5, 10])
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--patches", type=int, default=128, help="random training patches per epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr-factor", type=float, help="fine-tuning learning rate / the start's (default: "
                        "convscope finetune's, FINETUNE_LR_FACTOR)")
    parser.add_argument("--workdir", type=Path, default=BENCH / "results" / "finetune_loop")
    parser.add_argument("--write", action="store_true", help="draw the plot and update BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = run_all(args)
    command = "PYTHONPATH=src .venv/bin/python bench/finetune_loop.py " + shlex.join(sys.argv[1:])
    print(block(args, results, command))
    if args.write:
        plot(results, args.k, args.seeds, REPO / "docs" / "finetune_loop.png")
        update_block(REPO / "BENCHMARKS.md", BEGIN, END, block(args, results, command))


if __name__ == "__main__":
    main()

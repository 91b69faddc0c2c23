"""Where training time goes, step by step, for the course's recipes on their real data.

    .venv/bin/python bench/profile_train.py --data ../shared/data --label after            # print the table
    .venv/bin/python bench/profile_train.py --data ../shared/data --label after --write    # ... and BENCHMARKS.md

For each recipe (``mnist_cnn``: examples/ex4_mnist_cnn.yaml, ``vgg1``: examples/ex5_rbc_vgg1.yaml, ``stardist``:
examples/ex7_stardist_dsb2018.yaml) the script builds the run exactly as ``convscope train`` does
(:func:`convscope.training.fit.prepare`: data loaded, checked and held in memory, model, Adam, augmentation) and
drives the fit loop's own step (:func:`convscope.training.step.make_fit_step`) from an ignite ``Engine`` with the
progress bar attached, as :func:`convscope.training.fit.fit` does, for ``--warmup`` steps (not counted) and then
``--steps`` steps, timing each phase with a :class:`~convscope.training.step.PhaseTimer`:

- data: the batch from the in-memory training set (indexing, uint8 -> float32, normalisation; random patches);
- augment: the recipe's random augmentation (kornia) of the batch;
- targets: ``task.encode`` (class labels as they are; star-convex distances computed on the augmented labels);
- forward: network and loss; backward: autograd; optimizer: clearing the gradients and the Adam update;
- bookkeeping: adding the batch's loss and metrics to the epoch's sums;
- other: the rest of the wall time of the loop (ignite's events, the progress bar, Python glue);
- validation: one pass over the validation set, as after every epoch, divided by the steps of an epoch.

Each recipe runs in its own process (one allocator, one thread pool each). Each recipe's result goes to
``bench/results/profile-train-LABEL.json`` as soon as it is measured (replacing that recipe's earlier one, so
recipes can be measured in separate runs, before and after side by side); ``--write`` rewrites the
``profile-train`` block of BENCHMARKS.md with the tables of every label found there (``before``, then ``after``),
each recipe with its own conditions (commit, load average, command).
Run it on a quiet machine: other work on the CPU inflates every phase.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmd import cpu_name, run_json, update_block

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
BEGIN, END = "<!-- profile-train:begin -->", "<!-- profile-train:end -->"
RECIPES = {
    "mnist_cnn": "examples/ex4_mnist_cnn.yaml",
    "vgg1": "examples/ex5_rbc_vgg1.yaml",
    "stardist": "examples/ex7_stardist_dsb2018.yaml",
}
LABELS = ("before", "after")
ROWS = ("data", "augment", "targets", "forward", "backward", "optimizer", "bookkeeping", "other", "validation")


def log(msg: str) -> None:
    print(f"[profile-train] {msg}", file=sys.stderr, flush=True)


def profile_recipe(recipe: Path, data_dir: Path, *, steps: int, warmup: int, threads: int | None,
                   precision: str = "float32") -> dict:
    """Run ``warmup + steps`` training steps of ``recipe`` in this process and time their phases (see above)."""
    import torch
    from ignite.engine import Engine, Events

    from convscope.config import load_recipe
    from convscope.runs.layout import RunDir
    from convscope.training.fit import attach_progress_bar, prepare
    from convscope.training.step import PHASES, PhaseTimer, adam, make_fit_step, make_train_step
    from convscope.training.tensors import ShuffledBatches
    from convscope.training.validation import evaluate_loss
    from convscope.transforms import build_augmentation

    overrides = [f"train.precision={precision}", *([f"train.num_threads={threads}"] if threads else [])]
    config = load_recipe(recipe, overrides)
    cfg = config.train
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        s = prepare(config, RunDir(Path(tmp) / "run"), data_dir, log=lambda _msg: None)
    setup_seconds = time.perf_counter() - start
    trainable = [p for p in s.model.parameters() if p.requires_grad]
    optimizer = adam(trainable, cfg.learning_rate, s.device)
    augment = build_augmentation(config.augment, with_mask=s.task.kind != "classification")
    timer = PhaseTimer(s.device)
    totals: dict = {}
    train_step = make_train_step(s.model, s.model, s.task, optimizer, augment, cfg, timer=timer)
    fit_step = make_fit_step(s.train, train_step, s.task, totals, channels_last=cfg.channels_last, timer=timer)
    per_epoch = config.data.images_per_epoch if s.task.kind == "classification" else None
    batches = ShuffledBatches(len(s.train), cfg.batch_size, cfg.seed, samples=per_epoch)
    batches.set_epoch(1)
    if hasattr(s.train, "set_epoch"):
        s.train.set_epoch(1)
    steps_per_epoch = len(batches)
    order = list(batches)
    order = (order * (-(-(warmup + steps) // len(order))))[: warmup + steps]

    trainer = Engine(lambda _engine, index: fit_step(index))
    attach_progress_bar(trainer)
    clock: dict[str, float] = {}

    @trainer.on(Events.ITERATION_COMPLETED(once=warmup))
    def _start(_engine: Engine) -> None:
        timer.reset()
        clock["start"] = time.perf_counter()

    trainer.run(order, max_epochs=1)
    wall = time.perf_counter() - clock["start"]
    start = time.perf_counter()
    val = evaluate_loss(s.model, s.task, s.val, batch_size=cfg.batch_size, channels_last=cfg.channels_last)
    val_seconds = time.perf_counter() - start
    ms = {name: 1000 * timer.seconds[name] / steps for name in PHASES}
    ms["other"] = 1000 * wall / steps - sum(ms.values())
    ms["validation"] = 1000 * val_seconds / steps_per_epoch
    return {
        "recipe": str(recipe), "model": config.model.name, "task": config.task, "batch_size": cfg.batch_size,
        "precision": cfg.precision, "steps": steps, "warmup": warmup, "steps_per_epoch": steps_per_epoch,
        "n_val": len(s.val),
        "ms_per_step": ms, "train_images_per_s": cfg.batch_size * steps / wall,
        "setup_seconds": setup_seconds, "validation_seconds": val_seconds, "val_loss": val["loss"],
        "threads": torch.get_num_threads(), "torch": torch.__version__, "source": source_commit(),
    }


def source_commit() -> str:
    """The git commit of the convscope package this process imports (``+`` when its tree has changes)."""
    import convscope

    where = str(Path(convscope.__file__).resolve().parent)
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+" if dirty else "")


def fmt_ms(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def table(results: list[dict]) -> str:
    """Markdown: ms/step and share of the step (validation included) per phase, one column pair per recipe."""
    head = "| phase | " + " | ".join(f"{r['model']} ms/step | share" for r in results) + " |"
    lines = [head, "|---|" + "---:|---:|" * len(results)]
    totals = [sum(r["ms_per_step"].values()) for r in results]
    for row in ROWS:
        cells = []
        for r, total in zip(results, totals, strict=True):
            v = r["ms_per_step"][row]
            cells.append(f"{fmt_ms(v)} | {100 * v / total:.1f} %")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{fmt_ms(t)}** | 100 %" for t in totals) + " |")
    lines.append("| training images/s (no validation) | " + " | ".join(
        f"{r['train_images_per_s']:,.0f} | " for r in results) + " |")
    return "\n".join(lines)


def section(label: str, entries: dict[str, dict]) -> str:
    """One label's table (recipes in :data:`RECIPES` order) with each recipe's conditions and command."""
    names = [n for n in RECIPES if n in entries]
    results = [entries[n]["result"] for n in names]
    conditions = []
    for name, r in zip(names, results, strict=True):
        m = entries[name]["meta"]
        conditions.append(
            f"- {r['model']}: `{Path(r['recipe']).name}`, batch {r['batch_size']}, {r['steps']} steps after "
            f"{r['warmup']} of warm-up, {r['steps_per_epoch']} steps per epoch, {r['n_val']} validation samples; "
            f"convscope at commit {r['source']}, {r['threads']} torch thread(s), torch {r['torch']}; measured "
            f"{m['date']}, load average {m['load_before']} before, {m['load_after']} after; "
            f"`{m['command']}`")
    m = entries[names[0]]["meta"]
    return "\n".join([
        f"### {label}",
        "",
        f"{m['cpu']} ({m['cores']} usable cores, no GPU), Python {m['python']}.",
        "",
        table(results),
        "",
        *conditions,
    ])


def block(runs: dict[str, dict[str, dict]]) -> str:
    return "\n".join([
        BEGIN,
        "## Where training time goes: profile of the fit loop's step",
        "",
        "`bench/profile_train.py` trains each recipe on its real data with the fit loop's own step and times its "
        "phases (see the script's docstring): data = the batch from memory, targets = `task.encode`, optimizer = "
        "clearing gradients + Adam, other = the loop's own overhead (ignite, progress bar), validation = one "
        "pass over the validation set per epoch, spread over the epoch's steps. Shares are of the total.",
        "",
        *[part for label, entries in runs.items() for part in (section(label, entries), "")],
        END,
    ])


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the data sets' root")
    parser.add_argument("--steps", type=int, default=300, help="timed steps per recipe")
    parser.add_argument("--warmup", type=int, default=20, help="steps before timing starts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the recipe's: all cores)")
    parser.add_argument("--label", choices=LABELS, default="after")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="train.precision of the profiled steps")
    parser.add_argument("--write", action="store_true", help="rewrite the profile-train block of BENCHMARKS.md")
    parser.add_argument("--benchmarks-md", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process: profile this recipe, print JSON
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be at least 1")
    if args.one:
        result = profile_recipe(REPO / RECIPES[args.one], args.data, steps=args.steps, warmup=args.warmup,
                                threads=args.threads, precision=args.precision)
        print(json.dumps(result))
        return 0

    command = " ".join([".venv/bin/python bench/profile_train.py",
                        *(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]) if a != "--write")])
    RESULTS.mkdir(exist_ok=True)
    if args.write and args.precision != "float32":
        parser.error("--write publishes the float32 profiles only; bfloat16 ones go to bench/results/")
    suffix = "" if args.precision == "float32" else f"-{args.precision}"
    saved = RESULTS / f"profile-train-{args.label}{suffix}.json"
    entries = json.loads(saved.read_text()) if saved.is_file() else {}
    results = []
    for name in args.recipes:
        log(f"{name}: {args.warmup} + {args.steps} steps ...")
        cmd = [sys.executable, __file__, "--one", name, "--data", str(args.data), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--precision", args.precision]
        cmd += ["--threads", str(args.threads)] if args.threads else []
        load_before = load_average()
        results.append(run_json(cmd, f"profile of {name}"))
        meta = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_name(),
                "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                "load_before": load_before, "load_after": load_average(), "command": command}
        entries[name] = {"meta": meta, "result": results[-1]}
        saved.write_text(json.dumps(entries, indent=2))  # each recipe as soon as it is measured
        log(f"{name}: {sum(results[-1]['ms_per_step'].values()):.1f} ms/step")
    print(table(results))
    if args.write:
        runs = {label: json.loads((RESULTS / f"profile-train-{label}.json").read_text()) for label in LABELS
                if (RESULTS / f"profile-train-{label}.json").is_file()}
        update_block(args.benchmarks_md, BEGIN, END, block(runs))
        log(f"updated {args.benchmarks_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

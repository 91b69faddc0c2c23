"""Training throughput: convscope (PyTorch) next to Keras 3 (TensorFlow backend), same run.

    bash bench/setup_keras_env.sh            # once: the Keras venv in bench/.envs/keras
    .venv/bin/python bench/throughput.py     # both models, writes BENCHMARKS.md

For each model (mnist_cnn on MNIST 28x28x1, vgg1 on RBC crops 85x85x3) the driver

1. writes the data once with ``bench/make_bench_data.py`` (real data when present, else random),
2. runs the Keras side in its own venv (``bench/keras_throughput.py``, a subprocess),
3. runs the convscope side in a subprocess (``bench/convscope_throughput.py``:
   ``convscope.training.throughput.measure_throughput``) on the very same arrays,

in each precision asked for (``--precisions``: float32, both sides' default, and bfloat16: convscope's
``train.precision: bfloat16`` autocast next to Keras's ``mixed_bfloat16`` policy), then prints a markdown table
(images/s over the epochs after the first, and the ratio convscope / keras) and replaces the block between
``<!-- throughput:begin -->`` and ``<!-- throughput:end -->`` in BENCHMARKS.md.
Raw results go to ``bench/results/`` (git-ignored).
Run it on a quiet machine: anything else running on the CPU skews both sides.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from benchmd import cpu_name, run_json, update_block
from tf_info import ONEDNN_FORCED

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
KERAS_PYTHON = BENCH / ".envs" / "keras" / "bin" / "python"
BEGIN, END = "<!-- throughput:begin -->", "<!-- throughput:end -->"
# model -> (data kind, default number of images: the whole training set)
MODELS = {"mnist_cnn": ("mnist", 60_000), "vgg1": ("rbc", 6_922)}


def log(msg: str) -> None:
    print(f"[throughput] {msg}", file=sys.stderr, flush=True)


def make_data(kind: str, n: int, out: Path) -> None:
    cmd = [
        sys.executable,
        str(BENCH / "make_bench_data.py"),
        "--kind",
        kind,
        "--n",
        str(n),
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True)


#: The Keras side's TensorFlow settings: its defaults, and its oneDNN kernels forced on (TensorFlow turns them on by
#: itself only on CPUs with AVX-512 VNNI / BF16 / AMX; on others they are often faster, so both are measured).
KERAS_SETTINGS = {"keras": {}, "keras_onednn": ONEDNN_FORCED}


#: convscope's ``train.precision`` -> Keras's dtype policy for the same arithmetic.
KERAS_POLICY = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def run_keras(model: str, data: Path, args: argparse.Namespace, env: dict[str, str], precision: str) -> dict:
    cmd = [str(args.keras_python), str(BENCH / "keras_throughput.py"), "--model", model, "--data", str(data)]
    cmd += ["--batch-size", str(args.batch_size), "--epochs", str(args.epochs)]
    cmd += ["--precision", KERAS_POLICY[precision]]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    return run_json(cmd, f"Keras side for {model}", env={**os.environ, **env})


# convscope settings measured besides its defaults, to show what helps (each in a fresh process).
VARIANTS = {
    "default": [],
    "NCHW (no channels_last)": ["--nchw"],
    "torch.compile": ["--compile"],
    "glibc allocator untouched": ["--no-allocator"],
}


def run_convscope(model: str, data: Path, args: argparse.Namespace, flags: list[str], precision: str) -> dict:
    cmd = [sys.executable, str(BENCH / "convscope_throughput.py"), "--model", model, "--data", str(data)]
    cmd += ["--batch-size", str(args.batch_size), "--epochs", str(args.epochs), *flags, "--precision", precision]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    return run_json(cmd, f"convscope side for {model}")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def best_keras(row: dict) -> float | None:
    """The faster Keras setting's images/s."""
    got = [row[k]["images_per_s"] for k in KERAS_SETTINGS if k in row]
    return max(got) if got else None


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "| model | precision (convscope / Keras) | data | images | batch | convscope images/s | "
        "Keras images/s, TF defaults (oneDNN) | Keras images/s, oneDNN forced on | convscope / faster Keras |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cs = r.get("convscope")
        cs_ips = cs["images_per_s"] if cs else None
        ks_best = best_keras(r)
        ratio = f"{cs_ips / ks_best:.2f}" if cs_ips and ks_best else "n/a"
        keras = [f"{fmt(r[k]['images_per_s'])}" + (f" ({'on' if r[k].get('onednn') else 'off'})" if k == "keras"
                                                   and r[k].get("onednn") is not None else "")
                 if k in r else "n/a" for k in KERAS_SETTINGS]
        lines.append(
            f"| {r['model']} | {r['precision']} / {KERAS_POLICY[r['precision']]} | {r['data']} | "
            f"{r['n_images']:,} | {meta['batch_size']} | "
            f"{fmt(cs_ips)} | {' | '.join(keras)} | {ratio} |"
        )
    return "\n".join(lines)


def cross_precision(rows: list[dict]) -> list[str]:
    """One line per model measured in both precisions: convscope in bfloat16 against Keras at its default
    (float32, the faster setting)."""
    out = []
    for r in rows:
        base = next((b for b in rows if b["model"] == r["model"] and b["precision"] == "float32"), None)
        if r["precision"] == "bfloat16" and base and r.get("convscope") and best_keras(base):
            out.append(f"- {r['model']}: convscope in bfloat16 {fmt(r['convscope']['images_per_s'])} images/s, "
                       f"Keras at its default float32 {fmt(best_keras(base))}: "
                       f"{r['convscope']['images_per_s'] / best_keras(base):.2f}x")
    return out


def variants_table(rows: list[dict]) -> str:
    names = list(VARIANTS)
    lines = ["| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for r in rows:
        got = r.get("variants", {})
        if len(got) < 2:
            continue
        lines.append(f"| {r['model']} | " + " | ".join(
            fmt(got[n]["images_per_s"]) if n in got else "n/a" for n in names) + " |")
    return "\n".join(lines)


def results_block(rows: list[dict], meta: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v)
    threads = "framework defaults" if meta["threads"] is None else f"{meta['threads']} (intra- and inter-op)"
    across = cross_precision(rows)
    return "\n".join(
        [
            BEGIN,
            "## Training throughput: convscope vs Keras 3 (TensorFlow backend)",
            "",
            f"Measured {meta['date']} on {meta['cpu']} ({meta['cores']} usable cores, no GPU), "
            f"Python {meta['python']}; {versions}. Threads: {threads}.",
            f"Both sides train the same model (same trainable parameter count), batch size and in-memory "
            f"uint8 data (scaled to [0, 1]) in the same run, Adam 1e-3, shuffled, {meta['epochs']} epochs; "
            "images/s = images / the median seconds of the epochs after the first.",
            "",
            markdown(rows, meta),
            "",
            *(["convscope in bfloat16 against Keras at its default precision (float32):", "", *across, ""]
              if across else []),
            "Data: " + "; ".join(dict.fromkeys(f"{r['model']}: {r['source']}" for r in rows)) + ".",
            "",
            *([
                "What helps convscope on this CPU (images/s; default = in-memory uint8 tensors, channels_last,",
                "glibc allocator tuned, eager mode; each other column changes one of these):",
                "",
                variants_table(rows),
                "",
            ] if any(len(r.get("variants", {})) > 1 for r in rows) else []),
            "Command:",
            "",
            "```",
            "bash bench/setup_keras_env.sh",
            meta["command"],
            "```",
            END,
        ]
    )


def published_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The command line that reproduces the measurement (options left at their default omitted)."""
    parts = [".venv/bin/python bench/throughput.py"]
    for name in ("models", "precisions", "n_mnist", "n_rbc", "batch_size", "epochs", "threads"):
        value = getattr(args, name)
        if value != parser.get_default(name):
            values = value if isinstance(value, list) else [value]
            parts.append(f"--{name.replace('_', '-')} " + " ".join(str(v) for v in values))
    if not args.variants:
        parts.append("--no-variants")
    return " ".join(parts)


def measure(model: str, precision: str, data: Path, about: dict, args: argparse.Namespace) -> dict:
    """One row: ``model`` trained on ``data`` in ``precision`` by each framework (and convscope's variants, in
    float32)."""
    row = {**about, "precision": precision}
    what = f"{model} ({precision})"
    if "keras" in args.frameworks:
        for setting, env in KERAS_SETTINGS.items():
            log(f"{what}: {setting} ...")
            row[setting] = run_keras(model, data, args, env, precision)
            log(f"{what}: {setting} {row[setting]['images_per_s']:.1f} images/s")
    if "convscope" in args.frameworks:
        variants = VARIANTS if args.variants and precision == "float32" else {"default": []}
        row["variants"] = {}
        for name, flags in variants.items():
            log(f"{what}: convscope ({name}) ...")
            row["variants"][name] = run_convscope(model, data, args, flags, precision)
            log(f"{what}: convscope ({name}) {row['variants'][name]['images_per_s']:.1f} images/s")
        row["convscope"] = row["variants"]["default"]
    params = {side: row[side].get("params") for side in (*KERAS_SETTINGS, "convscope") if side in row}
    log(f"{what}: parameters {params}")
    if len(set(params.values()) - {None}) > 1:
        raise SystemExit(f"{model}: the two sides do not train the same model: parameters {params}")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--precisions", nargs="+", choices=sorted(KERAS_POLICY), default=list(KERAS_POLICY),
                        help="float32 (both defaults) and/or bfloat16 (convscope autocast, Keras mixed_bfloat16)")
    parser.add_argument("--n-mnist", type=int, default=MODELS["mnist_cnn"][1], help="images for mnist_cnn")
    parser.add_argument("--n-rbc", type=int, default=MODELS["vgg1"][1], help="images for vgg1")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=5, help="at least 2; the first is not counted")
    parser.add_argument("--threads", type=int, default=None, help="threads for both sides (default: theirs)")
    parser.add_argument(
        "--frameworks", nargs="+", choices=["convscope", "keras"], default=["convscope", "keras"]
    )
    parser.add_argument("--keras-python", type=Path, default=KERAS_PYTHON)
    parser.add_argument("--no-variants", dest="variants", action="store_false",
                        help="measure only convscope's defaults, not channels_last / compile / allocator variants")
    parser.add_argument("--benchmarks-md", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2")
    if "keras" in args.frameworks and not args.keras_python.exists():
        parser.error(f"{args.keras_python} not found: run `bash bench/setup_keras_env.sh` first")

    n_for = {"mnist_cnn": args.n_mnist, "vgg1": args.n_rbc}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="convscope-bench-") as tmp:
        for model in args.models:
            kind = MODELS[model][0]
            data = Path(tmp) / f"{kind}.npz"
            make_data(kind, n_for[model], data)
            with np.load(data, allow_pickle=False) as d:
                about = {"model": model, "data": kind, "n_images": len(d["y"]), "source": str(d["source"])}
            for precision in args.precisions:
                rows.append(measure(model, precision, data, about, args))

    versions: dict[str, str | None] = {}
    for side, keys in (("convscope", ("convscope", "torch")), ("keras", ("keras", "tensorflow"))):
        for r in rows:
            if side in r:
                for k in keys:
                    if r[side].get(k):
                        versions.setdefault(k, r[side][k])
    if "convscope" in args.frameworks and "torch" not in versions:
        versions["torch"] = __import__("torch").__version__
    cmd = published_command(args, parser)
    meta = {
        "date": dt.date.today().isoformat(),
        "cpu": cpu_name(),
        "cores": usable_cores(),
        "python": platform.python_version(),
        "versions": versions,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "threads": args.threads,
        "command": cmd.rstrip(),
    }
    print(markdown(rows, meta))

    results_dir = BENCH / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (results_dir / f"throughput-{stamp}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))

    if args.no_write:
        return 0
    if not all("keras" in r and "convscope" in r for r in rows):
        log("not writing BENCHMARKS.md: both frameworks are needed for the ratio")
        return 0
    update_block(args.benchmarks_md, BEGIN, END, results_block(rows, meta))
    log(f"updated {args.benchmarks_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``convscope`` command line: thin over the Python API.

User errors (:class:`ConvscopeError`) print one line and exit with code 2; usage errors exit 2 too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from convscope.cli.curves import learning_curve_command
from convscope.cli.data import data_app
from convscope.errors import ConvscopeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ConvNets for microscopy: train, evaluate and predict, with honest reports.")
app.add_typer(data_app, name="data")
app.command("learning-curve")(learning_curve_command)

DataOpt = Annotated[Path | None, typer.Option("--data", help="Data folder (else $CONVSCOPE_DATA, else the cache).")]


def _log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message)


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="A YAML recipe (see examples/).")],
    out: Annotated[Path, typer.Option("--out", help="New run directory to write.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: --set train.epochs=2")] = None,
    data: DataOpt = None,
) -> None:
    """Train a model from RECIPE and write the run directory OUT."""
    from convscope import load_recipe
    from convscope import train as train_run

    config = load_recipe(recipe, set_ or [])
    train_run(config, out, data_dir=data, log=_log)
    _log(f"run written to {out} (report: {out / 'report.html'})")


@app.command()
def finetune(
    run: Annotated[Path, typer.Argument(help="The run directory to start from.")],
    data_: Annotated[Path, typer.Option("--data", help="Folder with images/ and masks/ (same stems).")],
    out: Annotated[Path, typer.Option("--out", help="New run directory to write.")],
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the run's recipe).")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Default: a tenth of the run's.")] = None,
    mix_original: Annotated[int, typer.Option(help="Mix in up to N images of the run's own training data.")] = 0,
    original_data: Annotated[Path | None, typer.Option(help="Where the run's own data set lives (for "
                                                       "--mix-original), as --data of `convscope train`.")] = None,
) -> None:
    """Fine-tune RUN on corrected image/label pairs: a complete new run directory OUT that starts from RUN's
    weights and architecture."""
    from convscope import finetune as finetune_run

    finetune_run(run, data_, out, epochs=epochs, learning_rate=learning_rate, mix_original=mix_original,
                 data_dir=original_data, log=_log)
    _log(f"run written to {out} (report: {out / 'report.html'})")


@app.command()
def gui(images: Annotated[list[Path] | None, typer.Argument(help="Images to open.")] = None) -> None:
    """Open napari with the convscope widgets docked (needs `pip install 'convscope[napari]'`)."""
    from convscope.napari.launch import launch

    launch([str(p) for p in images or []])


@app.command()
def resume(run: Annotated[Path, typer.Argument(help="An interrupted run directory.")], data: DataOpt = None) -> None:
    """Continue an interrupted training run from its last checkpoint."""
    from convscope import resume as resume_run

    resume_run(run, data_dir=data, log=_log)
    _log(f"run written to {run}")


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory.")],
    split: Annotated[str, typer.Option(help="test, val or all.")] = "test",
    data: DataOpt = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Instance runs: predict with flips (4 passes "
                                             "averaged); a change re-tunes the thresholds on val and is saved.")
                   ] = None,
    retune: Annotated[bool, typer.Option("--retune", help="Instance runs: tune the decoding thresholds again on "
                                         "val and save them.")] = False,
) -> None:
    """Evaluate a trained run on a split; print a metrics table and update RUN/metrics.json and the report."""
    from convscope import evaluate as evaluate_run

    evaluation = evaluate_run(run, split=split, data_dir=data, tta=tta, retune=retune, log=_warn_only)
    metrics = evaluation.metrics
    table = _TABLES[evaluation.kind]
    for name in ("val", "test") if split == "all" else (split,):
        typer.echo(table(name, metrics[name]))
    _echo_baseline(metrics, table, shown=split != "val")
    if "overfitting" in metrics:
        typer.echo(f"overfitting: {metrics['overfitting']['verdict']}")


def _echo_baseline(metrics: dict, table: Callable[[str, dict], str], *, shown: bool) -> None:
    """The classical baseline's table on the test images and the "Do I need deep learning?" sentence."""
    from convscope.report.baseline import report_baseline

    section = report_baseline(metrics) if shown else None
    if section is not None:
        baseline = metrics["baseline"]["test"]
        typer.echo(table(f"test, classical baseline ({baseline['baseline']})", baseline))
        typer.echo(f"Do I need deep learning? {section.sentence}")


def _warn_only(message: str) -> None:
    if message.startswith("warning:"):
        _log(message)


def _metrics_table(split: str, m: dict) -> str:
    lines = [f"{split}: accuracy {m['accuracy']:.4f}  loss {m['loss']:.4f}  ({m['n_images']} images)",
             f"  {'class':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for name, c in m["per_class"].items():
        lines.append(f"  {name:<16}{c['precision']:>10.4f}{c['recall']:>10.4f}{c['f1']:>10.4f}{c['support']:>9}")
    return "\n".join(lines)


def _matching_table(split: str, m: dict) -> str:
    lines = [f"{split}: {m['n_images']} images, {m['n_true']:,} true and {m['n_pred']:,} predicted objects",
             f"  {'IoU':>5}{'precision':>11}{'recall':>9}{'f1':>8}{'accuracy':>10}{'PQ':>8}"]
    for t, r in m["matching"].items():
        lines.append(f"  {t:>5}{r['precision']:>11.4f}{r['recall']:>9.4f}{r['f1']:>8.4f}{r['accuracy']:>10.4f}"
                     f"{r['panoptic_quality']:>8.4f}")
    return "\n".join(lines)


def _pixel_table(split: str, m: dict) -> str:
    lines = [f"{split}: dice {m['dice']:.4f}  iou {m['iou']:.4f}  pixel accuracy {m['pixel_accuracy']:.4f}  "
             f"(all-background pixel accuracy {m['all_background_accuracy']:.4f}; {m['n_images']} images)",
             f"  {'class':<16}{'dice':>10}{'iou':>10}{'precision':>10}{'recall':>10}"]
    for name, c in m["per_class"].items():
        lines.append(f"  {name:<16}{c['dice']:>10.4f}{c['iou']:>10.4f}{c['precision']:>10.4f}{c['recall']:>10.4f}")
    return "\n".join(lines)


#: The metrics table of a split, by the kind of the run's task.
_TABLES = {"classification": _metrics_table, "semantic": _pixel_table, "instances": _matching_table}


@app.command()
def predict(
    run: Annotated[Path, typer.Argument(
        help="A run directory, or a built-in model (`convscope models --pretrained`).")],
    inputs: Annotated[list[Path], typer.Argument(help="Images or folders of images.")],
    out: Annotated[Path, typer.Option("--out", help="Classification: a CSV file; segmentation, instances: a folder.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out CSV (classification).")] = False,
    batch_size: Annotated[int, typer.Option(help="Images (or tiles) per batch.")] = 64,
    png: Annotated[bool, typer.Option(help="Segmentation: also write masks as PNG.")] = False,
    probabilities: Annotated[bool, typer.Option(help="Segmentation: also write probability maps.")] = False,
    diameter: Annotated[float | None, typer.Option(
        help="Instances with a built-in model: your objects' diameter in pixels (else estimated per image).")] = None,
) -> None:
    """Classify images (CSV: path, class, probability), segment them (masks + CSV of foreground fraction) or
    find instances (uint16/uint32 label TIFFs + CSV of object count and mean area)."""
    from convscope import Predictor, load_run
    from convscope.inference import predict_paths

    trained = load_run(run)
    kind = trained.task.kind
    if not trained.finished:
        _log(f"warning: {run} was interrupted; predicting with the best weights so far (`convscope resume {run}` "
             "continues training)")
    predictor = Predictor(trained, batch_size=batch_size if kind == "classification" else min(batch_size, 8))
    results = predict_paths(predictor, inputs, out, overwrite=overwrite, png=png, probabilities=probabilities,
                            diameter=diameter, log=_log)
    _log(_PREDICTED[kind](results, out))


#: What a prediction wrote, by the kind of the run's task.
_PREDICTED = {
    "classification": lambda rows, out: f"{len(rows)} predictions written to {out}",
    "semantic": lambda rows, out: f"{len(rows)} masks written to {out} (foreground fractions in "
                                  f"{out / 'predictions.csv'})",
    "instances": lambda rows, out: f"{len(rows)} label images ({sum(r.count for r in rows):,} objects) written to "
                                   f"{out} (counts and mean areas in {out / 'predictions.csv'})",
}


@app.command("evaluate-labels")
def evaluate_labels(
    gt_dir: Annotated[Path, typer.Argument(help="Folder of ground-truth label images (TIFF/PNG).")],
    pred_dir: Annotated[Path, typer.Argument(help="Folder of predicted label images, same file stems.")],
    out: Annotated[Path | None, typer.Option("--out", help="Also write the results as JSON.")] = None,
    relabel: Annotated[bool, typer.Option("--relabel", help="Give each connected region of a binary mask (one "
                                          "value for several objects) its own id; without it they are refused.")
                       ] = False,
) -> None:
    """Score label images from any tool against ground truth: StarDist-compatible matching at IoU 0.1-0.9."""
    from convscope.evaluation.labels import evaluate_label_folders
    from convscope.io.atomic import write_json

    result = evaluate_label_folders(gt_dir, pred_dir, relabel=relabel)
    typer.echo(f"{result['n_images']} images, {result['n_true']} true and {result['n_pred']} predicted objects")
    typer.echo(f"{'IoU':>5}{'precision':>11}{'recall':>9}{'f1':>8}{'accuracy':>10}{'PQ':>8}")
    for t, m in result["matching"].items():
        typer.echo(f"{t:>5}{m['precision']:>11.4f}{m['recall']:>9.4f}{m['f1']:>8.4f}{m['accuracy']:>10.4f}"
                   f"{m['panoptic_quality']:>8.4f}")
    if out is not None:
        write_json(out, result)


@app.command()
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Two or more instance runs (stardist, flows), same data split.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for compare.html, compare.md, compare.json and figures.")],
    data: DataOpt = None,
    images: Annotated[int, typer.Option("--images", help="Test images drawn as overlays, those where the runs "
                                        "differ most (0 = none: no data or models needed).")] = 4,
    overwrite: Annotated[bool, typer.Option(help="Replace the files of an earlier comparison in --out.")] = False,
) -> None:
    """Instance runs side by side: matching accuracy, F1 and PQ at IoU 0.5 and 0.75, training and prediction time,
    matching curves and outline overlays of the test images where they differ most."""
    from convscope.report.compare import text_table, write_comparison

    comparison = write_comparison(runs, out, data_dir=data, n_images=images, overwrite=overwrite, log=_log)
    typer.echo(text_table(comparison))
    _log(f"comparison written to {out} (open {out / 'compare.html'}; table for BENCHMARKS.md in "
         f"{out / 'compare.md'})")


@app.command("stardist-fidelity")
def stardist_fidelity(
    data: Annotated[str, typer.Argument(help="dsb2018, or a folder of instance label images (TIFF/PNG).")],
    rays: Annotated[str, typer.Option(help="Ray counts, comma separated.")] = "8,16,32,64",
    data_dir: Annotated[Path | None, typer.Option("--data", help="Data folder holding dsb2018/.")] = None,
) -> None:
    """How well star-convex polygons with n rays reconstruct the ground-truth objects (mean IoU per object)."""
    import warnings

    import numpy as np
    from tqdm import tqdm

    from convscope.instances.star import StarConvexityWarning, fidelity

    labels = _instance_labels(data, data_dir)
    try:
        counts = [int(r) for r in rays.split(",")]
    except ValueError:
        raise ConvscopeError(f"--rays {rays}: expected comma-separated integers such as 8,16,32,64") from None
    typer.echo(f"{len(labels)} label images, {sum(int(lab.max() > 0) for lab in labels)} with objects")
    typer.echo(f"{'rays':>5}{'mean IoU':>10}{'objects < 0.8':>15}")
    for n in counts:
        ious = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StarConvexityWarning)
            for lab in tqdm(labels, desc=f"{n} rays", leave=False, disable=True if len(labels) < 20 else None):
                ious.append(fidelity(lab, n).ious)
        all_ious = np.concatenate(ious) if ious else np.zeros(0)
        typer.echo(f"{n:>5}{all_ious.mean():>10.4f}{int((all_ious < 0.8).sum()):>15}")


def _instance_labels(data: str, data_dir: Path | None) -> list:
    from convscope.datasets.paired import load_paired_folder
    from convscope.io import read_image
    from convscope.io.image import IMAGE_SUFFIXES

    if data == "dsb2018":
        from convscope.datasets.segmentation import fluorescence_ids
        from convscope.datasets.sources import data_root

        root = data_dir or data_root(None)
        if root is None:
            raise ConvscopeError("dsb2018: no data folder; pass --data DIR (holding dsb2018/) or set CONVSCOPE_DATA")
        folder = Path(root) / "dsb2018"
        keep = fluorescence_ids(folder)
        return [s.mask for s in load_paired_folder(folder, mask_mode="instance", color="gray") if s.id in keep]
    folder = Path(data)
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise ConvscopeError(f"{data}: not dsb2018 and not a folder of label images (TIFF/PNG)")
    return [read_image(p) for p in files]


@app.command()
def models(
    pretrained: Annotated[bool, typer.Option("--pretrained", help="List the built-in trained models instead.")
                          ] = False,
    name: Annotated[str | None, typer.Argument(help="With --pretrained: print this model's card.")] = None,
) -> None:
    """List the registered models, or the built-in trained ones (`--pretrained`, with a NAME: its model card)."""
    from convscope.models import count_params, create_model, list_models

    if pretrained or name is not None:
        _pretrained(name)
        return

    typer.echo(f"{'name':<16}{'task':<16}{'input':<10}{'trainable':>12}  description")
    for e in list_models():
        trainable, _ = count_params(create_model(e.name))
        shape = "x".join(map(str, e.default_input))
        typer.echo(f"{e.name:<16}{','.join(e.tasks):<16}{shape:<10}{trainable:>12,}  {e.description}")


def _pretrained(name: str | None) -> None:
    import json

    from convscope.pretrained import get_pretrained, list_pretrained

    if name is not None:
        typer.echo(json.dumps(get_pretrained(name).card, indent=2))
        return
    typer.echo(f"{'name':<16}{'task':<10}{'diameter':>9}  description")
    for m in list_pretrained():
        typer.echo(f"{m.name:<16}{m.model_config['task']:<10}{m.diameter or 0:>8.1f}  {m.description}")


@app.command()
def summary(
    model: Annotated[str, typer.Argument(help="A registered model name.")],
    input_shape: Annotated[str | None, typer.Option(help="H,W,C, e.g. 85,85,3 (default: the model's).")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Output units (1 = binary sigmoid).")] = None,
) -> None:
    """Print a model's layers, output shapes and parameter counts."""
    from convscope.models import create_model, get_entry, summarize

    entry = get_entry(model)
    shape = _parse_shape(input_shape) if input_shape else entry.default_input
    options: dict[str, object] = {"in_channels": shape[2], "input_size": shape[:2]}
    if num_classes is not None:
        options["num_classes"] = num_classes
    try:
        net = create_model(model, **options)
        typer.echo(summarize(net, shape).table())
    except ValueError as err:
        raise ConvscopeError(f"summary {model} --input-shape {input_shape}: {err}") from None


def _parse_shape(text: str) -> tuple[int, int, int]:
    try:
        h, w, c = (int(v) for v in text.split(","))
    except ValueError:
        raise ConvscopeError(f"--input-shape {text}: expected H,W,C such as 85,85,3") from None
    return h, w, c


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Run directory to write.")] = Path("runs/demo"),
    task: Annotated[str, typer.Argument(help="Which demo: classification, segmentation or instances.")
                    ] = "classification",
) -> None:
    """Train and evaluate a small model on generated data: round vs deformed cells (classification),
    phase-contrast bacteria (segmentation, a U-Net) or touching nuclei (instances, star-convex polygons);
    one to a few minutes on a laptop CPU. `pretrained`: no training, the built-in `nuclei` model segments a
    generated image (labels, overlay PNG, matching scores), a few seconds."""
    from importlib.resources import files

    from convscope import load_recipe
    from convscope import train as train_run

    if task not in ("classification", "segmentation", "instances", "pretrained"):
        raise ConvscopeError(f"demo {task}: unknown demo; available: classification, segmentation, instances, "
                             "pretrained")
    if out.exists() and any(out.iterdir()):
        raise ConvscopeError(f"{out}: already exists; remove it or pass --out NEW_DIR (nothing is overwritten)")
    if task == "pretrained":
        _demo_pretrained(out)
        return
    recipe = files("convscope") / "recipes" / f"demo_{task}.yaml"
    train_run(load_recipe(Path(str(recipe))), out, log=_log)
    _log(f"demo run written to {out}; open {out / 'report.html'} in a browser")


def _demo_pretrained(out: Path) -> None:
    from convscope import Predictor
    from convscope.datasets.nuclei import make_synthetic_nuclei
    from convscope.inference.outputs import compact_dtype
    from convscope.io.image import write_image
    from convscope.metrics import matching
    from convscope.report.instances import outline_overlay

    images, truth = make_synthetic_nuclei(1, size=(384, 384), density=0.2, seed=7)
    segmenter = Predictor.from_run("nuclei", device="cpu")
    labels = compact_dtype(segmenter.segment(images[0]))
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / "image.tif", images[0])
    write_image(out / "labels.tif", labels)
    write_image(out / "truth.tif", compact_dtype(truth[0]))
    write_image(out / "overlay.png", outline_overlay(images[0], truth[0], labels, thickness=1))
    m = matching(truth[0], labels, thresh=0.5)
    _log(f"built-in model 'nuclei' on a generated 384x384 image: {m.n_pred} nuclei found, {m.n_true} drawn; "
         f"F1 {m.f1:.3f} at IoU 0.5; image.tif, labels.tif, truth.tif and overlay.png (green: drawn, magenta: "
         f"found) in {out}")


def run() -> None:
    """Entry point: a user error prints one line and exits with code 2 (usage errors too, via typer)."""
    try:
        app()
    except ConvscopeError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except SystemExit as exc:
        if exc.code == 130:  # typer's exit after Ctrl-C
            typer.echo("interrupted (a training run can be continued with `convscope resume RUN`)", err=True)
        raise

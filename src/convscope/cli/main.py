"""The ``convscope`` command line: thin over the Python API.

User errors (:class:`ConvscopeError`) print one line and exit with code 2; usage errors exit 2 too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from convscope.cli import guard
from convscope.cli.curves import learning_curve_command
from convscope.cli.data import data_app
from convscope.cli.export import export_command
from convscope.errors import ConvscopeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ConvNets for microscopy: train, evaluate and predict, with honest reports.")
app.add_typer(data_app, name="data")
app.command("learning-curve")(learning_curve_command)
app.command("export")(export_command)

ColorOpt = Annotated[str | None, typer.Option(
    "--color", callback=lambda value: _check_color(value),
    help="Instead of the run's data.color: gray or rgb convert every image; auto converts grey <-> RGB to the "
         "model's channels.")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="Data folder (else $CONVSCOPE_DATA, else the cache).")]
NprocOpt = Annotated[int, typer.Option("--nproc", min=1, help="Train in N processes with DistributedDataParallel "
                                       "(gloo on the CPU, nccl with one GPU each); or start under torchrun.")]


def _check_color(value: str | None) -> str | None:
    if value is not None and value not in ("auto", "gray", "rgb"):
        raise ConvscopeError(f"--color {value}: use auto, gray or rgb")
    return value


def _log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message)


@app.command()
def train(
    recipe: Annotated[Path, typer.Argument(help="A YAML recipe (see examples/).")],
    out: Annotated[Path, typer.Option("--out", help="New run directory to write.")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: --set train.epochs=2")] = None,
    data: DataOpt = None,
    nproc: NprocOpt = 1,
) -> None:
    """Train a model from RECIPE and write the run directory OUT."""
    from convscope import load_recipe
    from convscope import train as train_run
    from convscope.training.distributed import main_process

    config = load_recipe(recipe, set_ or [])
    guard.training_run(out)
    train_run(config, out, data_dir=data, log=_log, nproc=nproc)
    if main_process():  # not in torchrun's other ranks
        _log(f"run written to {out} (report: {out / 'report.html'})")


@app.command()
def finetune(
    run: Annotated[Path, typer.Argument(help="The run directory to start from, or a built-in model (nuclei).")],
    data_: Annotated[Path, typer.Option("--data", help="Folder with images/ and masks/ (same stems).")],
    out: Annotated[Path, typer.Option("--out", help="New run directory to write.")],
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the run's recipe).")] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Default: the run's own.")] = None,
    mix_original: Annotated[int, typer.Option(help="Mix in up to N images of the run's own training data.")] = 0,
    original_data: Annotated[Path | None, typer.Option(help="Where the run's own data set lives (for "
                                                       "--mix-original), as --data of `convscope train`.")] = None,
    holdout: Annotated[bool | None, typer.Option("--holdout/--no-holdout", help="Hold out validation and test "
                                                 "images, or train on every image (default: hold out from 20 "
                                                 "images on).", show_default=False)] = None,
) -> None:
    """Fine-tune RUN on corrected image/label pairs: a complete new run directory OUT that starts from RUN's
    weights and architecture."""
    from convscope import finetune as finetune_run

    guard.training_run(out)
    finetune_run(run, data_, out, epochs=epochs, learning_rate=learning_rate, mix_original=mix_original,
                 holdout=holdout, data_dir=original_data, log=_log)
    _log(f"run written to {out} (report: {out / 'report.html'})")


@app.command()
def gui(images: Annotated[list[Path] | None, typer.Argument(
        help="Images to open, or convscope outputs: a run directory (loaded in Segment), a `predict` output "
             "folder or OME-Zarr label image (with its source images).")] = None) -> None:
    """Open napari with the convscope widgets docked (needs `pip install 'convscope\\[napari]'`)."""
    from convscope.napari.launch import launch

    launch([str(p) for p in images or []])


@app.command()
def resume(run: Annotated[Path, typer.Argument(help="An interrupted run directory.")], data: DataOpt = None,
           nproc: NprocOpt = 1) -> None:
    """Continue an interrupted training run from its last checkpoint."""
    from convscope import resume as resume_run
    from convscope.training.distributed import main_process

    guard.training_run(run)
    resume_run(run, data_dir=data, log=_log, nproc=nproc)
    if main_process():
        _log(f"run written to {run}")


@app.command()
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run directory, or a built-in model scored on --data DIR.")],
    split: Annotated[str, typer.Option(help="test, val or all.")] = "test",
    data: Annotated[Path | None, typer.Option("--data", help="Data folder (else $CONVSCOPE_DATA, else the cache); "
                                              "for a built-in model: your labelled images, DIR/images + DIR/masks."
                                              )] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Instance runs: predict with flips (4 passes "
                                             "averaged); a change re-tunes the thresholds on val and is saved.")
                   ] = None,
    retune: Annotated[bool, typer.Option("--retune", help="Instance runs: tune the decoding thresholds again on "
                                         "val and save them.")] = False,
    diameter: Annotated[float | None, typer.Option(
        help="A built-in model on --data: your objects' diameter in pixels (else estimated per image).")] = None,
    color: ColorOpt = None,
) -> None:
    """Evaluate a trained run on a split; print a metrics table and update RUN/metrics.json and the report.
    The data are those the run was trained on (RUN/data.json) unless --data is given (for folder and paired
    data: the folder itself); an interrupted run is evaluated with a warning and left as it is. A built-in model
    (`convscope evaluate nuclei --data DIR`) is scored on your labelled folder; nothing is written."""
    from convscope import evaluate as evaluate_run
    from convscope.pretrained import is_pretrained

    if is_pretrained(run) or not _held_out(run):
        _evaluate_on_folder(str(run), data, diameter)
        return
    if diameter is not None:
        raise ConvscopeError("--diameter: for a built-in model scored on --data DIR; a run is evaluated as trained")

    evaluation = evaluate_run(run, split=split, data_dir=data, tta=tta, retune=retune, color=color, log=_warn_only)
    metrics = evaluation.metrics
    table = _TABLES[evaluation.kind]
    for name in ("val", "test") if split == "all" else (split,):
        typer.echo(table(name, metrics[name]))
    _echo_baseline(metrics, table, shown=split != "val")
    if "overfitting" in metrics:
        typer.echo(f"overfitting: {metrics['overfitting']['verdict']}")


def _held_out(run: Path) -> bool:
    """False for a run that trained on every image of its folder (fine-tuning on a few corrected images)."""
    from convscope.runs.layout import read_run_config
    from convscope.runs.package import open_run_dir

    return read_run_config(open_run_dir(run)).data.holdout


def _evaluate_on_folder(name: str, folder: Path | None, diameter: float | None) -> None:
    """A built-in model, or a run without held-out images, scored on the labelled folder ``folder``."""
    from convscope import evaluate_labelled
    from convscope.pretrained import is_pretrained

    if folder is None:
        what = "a built-in model" if is_pretrained(name) else "trained on every image of its folder (no test images)"
        raise ConvscopeError(f"{name}: {what}; score it on your labelled images: convscope evaluate {name} "
                             "--data DIR (DIR/images + DIR/masks, same file stems)")
    evaluation = evaluate_labelled(name, folder, diameter=diameter, log=_log)
    typer.echo(_TABLES[evaluation.result.kind](folder.name, evaluation.result.metrics))


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
        help="A run directory, a built-in model (`convscope models --pretrained`) or a bioimage.io model .zip.")],
    inputs: Annotated[list[Path], typer.Argument(help="Images or folders of images.")],
    out: Annotated[Path, typer.Option("--out", help="Classification: a CSV file; segmentation, instances: a folder.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out CSV (classification), or write into a "
                                            "non-empty --out folder, replacing files of the same name.")] = False,
    batch_size: Annotated[int, typer.Option(help="Images (or tiles) per batch.")] = 64,
    png: Annotated[bool, typer.Option(help="Segmentation: also write masks as PNG.")] = False,
    probabilities: Annotated[bool, typer.Option(help="Segmentation: also write probability maps.")] = False,
    diameter: Annotated[float | None, typer.Option(
        help="Instances with a built-in model: your objects' diameter in pixels (else estimated per image).")] = None,
    block_size: Annotated[int | None, typer.Option(
        help="Large images: predict block by block on Dask (the default for .zarr inputs and TIFFs over 8192^2 "
             "pixels; 2048 px blocks), writing an OME-Zarr label image --out NAME.ome.zarr.")] = None,
    halo: Annotated[int | None, typer.Option(
        help="Large images, instances: pixels decoded around each block, at least the largest object's diameter.")
                    ] = None,
    workers: Annotated[int | None, typer.Option(help="Large images: a local Dask cluster of N worker processes.")
                       ] = None,
    scheduler: Annotated[str | None, typer.Option(help="Large images: the address of a running Dask scheduler.")
                         ] = None,
    backend: Annotated[str, typer.Option(help="What runs the network: torch, onnxruntime (`pip install "
                                         "'convscope\\[onnx]'`) or auto (onnxruntime on the CPU when installed: "
                                         "faster there, see BENCHMARKS.md).")] = "auto",
    color: ColorOpt = None,
    channels: Annotated[str | None, typer.Option(
        help="Keep these channels of every image first (0-based, comma separated: 0 or 0,1,2).")] = None,
    tile: Annotated[int | None, typer.Option(
        help="Segmentation, instances: the largest tile side (pixels) the network sees at once (default 1024: "
             "fewer, larger tiles are faster, see BENCHMARKS.md); 0: tiles of the model's training patch.")] = None,
) -> None:
    """Classify images (CSV: path, class, probability), segment them (masks + CSV of foreground fraction) or
    find instances (uint16/uint32 label TIFFs + CSV of object count and mean area). Outputs keep the images'
    relative paths; nothing is overwritten without --overwrite. An OME-Zarr image or a big TIFF is predicted block by
    block on Dask into an OME-Zarr label image (needs `pip install 'convscope\\[dask]'`)."""
    from convscope import Predictor, load_run
    from convscope.cli.large import predict_large_command, wants_blocks
    from convscope.inference import predict_paths
    from convscope.inference.inputs import parse_channels
    from convscope.inference.predictor import predict_tile
    from convscope.runs import is_convscope_package, is_package

    if is_package(run) and not is_convscope_package(run):  # a bioimage.io model of another tool
        from convscope.export.package import predict_foreign

        written = predict_foreign(run, inputs, out, batch_size=min(batch_size, 8), overwrite=overwrite,
                                  log=_log)
        _log(f"{len(written)} images predicted; outputs (float32 TIFF) and predictions.csv written to {out}")
        return
    if wants_blocks(inputs, block_size, workers, scheduler):
        predict_large_command(run, inputs, out, block_size=block_size, halo=halo, workers=workers,
                              scheduler=scheduler, batch_size=min(batch_size, 8), overwrite=overwrite,
                              diameter=diameter, log=_log)
        return
    picked = parse_channels(channels)
    trained = load_run(run)
    kind = trained.task.kind
    if trained.interruption():
        _log(trained.interruption())
    predictor = Predictor(trained, batch_size=batch_size if kind == "classification" else min(batch_size, 8),
                          backend=backend, tile=predict_tile(tile))
    results = predict_paths(predictor, inputs, out, overwrite=overwrite, png=png, probabilities=probabilities,
                            diameter=diameter, color=color, channels=picked, log=_log)
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
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    relabel: Annotated[bool, typer.Option("--relabel", help="Give each connected region of a binary mask (one "
                                          "value for several objects) its own id; without it they are refused.")
                       ] = False,
) -> None:
    """Score label images from any tool against ground truth: StarDist-compatible matching at IoU 0.1-0.9."""
    from convscope.evaluation.labels import evaluate_label_folders
    from convscope.io.atomic import write_json

    if out is not None:
        _check_writable(out, overwrite=overwrite)  # before the work, not after it
    result = evaluate_label_folders(gt_dir, pred_dir, relabel=relabel)
    typer.echo(f"{result['n_images']} images, {result['n_true']} true and {result['n_pred']} predicted objects")
    typer.echo(f"{'IoU':>5}{'precision':>11}{'recall':>9}{'f1':>8}{'accuracy':>10}{'PQ':>8}")
    for t, m in result["matching"].items():
        typer.echo(f"{t:>5}{m['precision']:>11.4f}{m['recall']:>9.4f}{m['f1']:>8.4f}{m['accuracy']:>10.4f}"
                   f"{m['panoptic_quality']:>8.4f}")
    if out is not None:
        try:
            write_json(out, result)
        except ConvscopeError as err:
            raise ConvscopeError(f"{err}; the table above is all that was kept") from None


def _check_writable(out: Path, *, overwrite: bool) -> None:
    """Refuse an output file that exists (unless ``overwrite``) or whose folder cannot take it, before any work."""
    import os

    if out.is_dir():
        raise ConvscopeError(f"--out {out}: is a folder; give a file name")
    if out.exists() and not overwrite:
        raise ConvscopeError(f"--out {out}: already exists; choose another name or pass --overwrite")
    parent = next((p for p in [out.parent, *out.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        raise ConvscopeError(f"--out {out}: {parent} is a file; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConvscopeError(f"--out {out}: cannot write in {parent} (permission denied); choose a folder you can "
                             "write to")


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
    data: Annotated[str, typer.Argument(help="dsb2018 (with --data), a data folder (DIR/dsb2018, a folder with "
                                        "masks/, or one of instance label images: TIFF/PNG).")],
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
    """Label images of ``dsb2018`` (with --data), of a data folder holding ``dsb2018/``, of a folder with ``masks/``
    (a dsb2018 or paired folder) or of a folder of label images."""
    from convscope.datasets.paired import load_paired_folder
    from convscope.datasets.segmentation import fluorescence_ids
    from convscope.datasets.sources import data_root
    from convscope.io import read_image
    from convscope.io.image import IMAGE_SUFFIXES

    folder = Path(data)
    if data == "dsb2018" and not folder.is_dir():
        root = data_dir or data_root(None)
        if root is None:
            raise ConvscopeError("dsb2018: no data folder; pass --data DIR (holding dsb2018/) or set CONVSCOPE_DATA")
        folder = Path(root) / "dsb2018"
    elif (folder / "dsb2018" / "masks").is_dir():
        folder = folder / "dsb2018"
    if (folder / "masks").is_dir():
        keep = fluorescence_ids(folder) if (folder / "image_types.csv").is_file() else None
        samples = load_paired_folder(folder, mask_mode="instance", color="gray")
        return [s.mask for s in samples if keep is None or s.id in keep]
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise ConvscopeError(f"{data}: not dsb2018, a folder with masks/ or a folder of label images (TIFF/PNG)")
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
    """Entry point: a user error or an OS error prints one line and exits with code 2 (usage errors too, via
    typer); SIGTERM and Ctrl-C say whether the run being trained can be resumed."""
    try:
        with guard.guarded():
            app()
    except ConvscopeError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)
    except OSError as err:
        typer.echo(f"error: {guard.os_error_message(err)}", err=True)
        sys.exit(2)
    except guard.Terminated:
        typer.echo(guard.interrupted_message("terminated (SIGTERM)"), err=True)
        sys.exit(guard.EXIT_TERMINATED)
    except SystemExit as exc:
        if exc.code == 130:  # typer's exit after Ctrl-C
            typer.echo(guard.interrupted_message("interrupted"), err=True)
        raise


if __name__ == "__main__":
    run()

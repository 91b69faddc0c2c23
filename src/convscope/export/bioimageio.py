"""bioimage.io export: a run as a model package (spec 0.5) that Fiji/deepImageJ, QuPath, ilastik, napari and
``bioimageio.core`` run, written with bioimage.io's own ``bioimageio.spec`` and checked with ``bioimageio.core``.

The package holds the exported network (:class:`~convscope.export.network.ExportedNetwork`: the run's network and its
task's output activations) three times: ``pytorch_state_dict`` (a plain state dict + a self-contained architecture
file, :func:`~convscope.export.architecture.architecture_source`), ``torchscript`` and ``onnx``; a test input (a
sample image, raw intensities) with the outputs convscope computes for it; the run's normalisation as declared
preprocessing; a cover image; a README with what the outputs are, how convscope decodes them and a validation
section; authors, licence and citations from the recipe's ``metadata:`` section or the flags; and in ``config:
convscope:`` the run's ``model/config.json`` and recipe, which is how ``load_run`` recognises a convscope package.
Needs the ``bioimageio`` extra.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from convscope.config import MetadataConfig
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.errors import ConvscopeError
from convscope.export.architecture import (
    FACTORY_NAME,
    architecture_kwargs,
    architecture_source,
    exported_network,
    size_multiple,
)
from convscope.export.common import ExportResult, check_out, export_description, parity
from convscope.export.cover import draw_cover
from convscope.export.onnx import onnx_graph, onnx_outputs
from convscope.export.torchscript import load_torchscript, script_outputs, torchscript_bytes
from convscope.inference import Predictor
from convscope.inference.backends import OPSET, onnx_session
from convscope.inference.outputs import load_input
from convscope.io.atomic import write_bytes
from convscope.pretrained import get_pretrained
from convscope.runs import TrainedRun

BIOIMAGEIO_HINT = "pip install 'convscope[bioimageio]'"
#: Tags of the package by the kind of the run's task.
KIND_TAGS = {"classification": "classification", "semantic": "semantic-segmentation",
             "instances": "instance-segmentation"}
#: Largest side of the test input of a dense network (the sample image is cropped to it).
TEST_SIDE = 256
WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
Log = Callable[[str], None]


def require_bioimageio(feature: str) -> None:
    """A :class:`ConvscopeError` with the install hint unless bioimageio.spec and bioimageio.core import."""
    try:
        import bioimageio.core
        import bioimageio.spec  # noqa: F401
    except ImportError:
        raise ConvscopeError(f"{feature} needs the bioimageio extra: {BIOIMAGEIO_HINT}") from None


def export_bioimageio(run: TrainedRun, out: str | Path, *, metadata: MetadataConfig | None = None,
                      sample: str | Path | None = None, test: bool = True, overwrite: bool = False,
                      log: Log = print) -> ExportResult:
    """Write ``run`` as a bioimage.io model package ``out`` (``.zip``).

    Parameters
    ----------
    run : TrainedRun
    out : path-like
        The ``.zip`` to write (atomically; an existing file only with ``overwrite``).
    metadata : MetadataConfig, optional
        Name, description, authors, licence, citations, tags (default: the recipe's ``metadata:`` section).
    sample : path-like, optional
        One of your images: the package's test input and cover (read as ``convscope predict`` reads it). Default:
        a generated nuclei image.
    test : bool
        Run ``bioimageio.core.test_model`` on the package for all three weight formats before writing it (a few
        seconds for small networks); its result goes into the README's validation section.
    log : callable
        Receives progress lines.

    Returns
    -------
    ExportResult
        ``max_abs_diff``: TorchScript and ONNX against torch eager; ``warnings``: missing metadata.

    Raises
    ------
    ConvscopeError
        Missing extra, an existing ``out``, metadata bioimage.io rejects (the message names the field).
    """
    require_bioimageio("bioimage.io export")
    out = check_out(out, suffixes=(".zip",), overwrite=overwrite)
    meta = metadata if metadata is not None else run.config.metadata
    image = sample_image(run, sample)
    with tempfile.TemporaryDirectory(prefix="convscope-bioimageio-") as tmp:
        folder = Path(tmp)
        diffs = _write_files(run, image, folder)
        rdf = model_rdf(run, meta)
        readme = _readme(run, meta, diffs, tested=None)
        (folder / "README.md").write_text(readme)
        descr = _describe(rdf, folder, out)
        tested = None
        if test:
            log(f"{out.name}: bioimageio.core test_model ({', '.join(WEIGHT_FORMATS)})...")
            tested = _test(descr, out)
            (folder / "README.md").write_text(_readme(run, meta, diffs, tested=tested))
            descr = _describe(rdf, folder, out)
        _save(descr, folder, out)
    return ExportResult(out, "bioimageio", max(diffs.values()), tuple(_missing_metadata(meta)))


def metadata_with(base: MetadataConfig, *, name: str | None = None, description: str | None = None,
                  authors: Sequence[str] = (), license: str | None = None, cite: Sequence[str] = (),
                  tags: Sequence[str] = ()) -> MetadataConfig:
    """``base`` (a recipe's ``metadata:`` section) with the fields given here replacing its own.

    ``cite`` entries are ``"TEXT|DOI"`` or ``"TEXT|URL"`` (a URL starts with ``http``).
    """
    update: dict[str, Any] = {key: value for key, value in (("name", name), ("description", description),
                                                            ("license", license)) if value}
    if authors:
        update["authors"] = list(authors)
    if tags:
        update["tags"] = list(tags)
    if cite:
        update["cite"] = [_citation(text) for text in cite]
    return MetadataConfig.model_validate({**base.model_dump(), **update})


def _citation(text: str) -> dict[str, str]:
    body, sep, reference = text.rpartition("|")
    if not sep or not body.strip() or not reference.strip():
        raise ConvscopeError(f"--cite {text!r}: expected 'TEXT|DOI' or 'TEXT|URL', e.g. 'Schmidt et al. 2018|"
                             "10.1007/978-3-030-00934-2_30'")
    reference = reference.strip()
    return {"text": body.strip(), "url" if reference.startswith("http") else "doi": reference}


def sample_image(run: TrainedRun, sample: str | Path | None) -> np.ndarray:
    """The test image (H, W, C) of the package: ``sample`` read as ``convscope predict`` reads files (a dense
    network's image cropped to :data:`TEST_SIDE` around its centre and to a multiple of the size multiple), or a
    generated nuclei image in the training data's dtype."""
    h, w, c = run.input_shape
    dense = hasattr(run.model, "size_multiple")
    if sample is not None:
        image = load_input(Predictor(run), Path(sample))
    else:
        dtype = run.model_config.get("dtype", "uint16")
        size = (TEST_SIDE, TEST_SIDE) if dense else (h, w)
        grey = make_synthetic_nuclei(1, size=size, density=0.15, seed=3,
                                     dtype=dtype if dtype in ("uint8", "uint16") else "uint16")[0][0]
        image = np.repeat(grey[:, :, None], c, axis=2)
    if not dense:
        return image
    m = size_multiple(run)
    side_h, side_w = (max(m, min(s, TEST_SIDE) // m * m) for s in image.shape[:2])
    if image.shape[0] < side_h or image.shape[1] < side_w:
        image = np.pad(image, ((0, max(0, side_h - image.shape[0])), (0, max(0, side_w - image.shape[1])), (0, 0)),
                       mode="reflect")
    top, left = (image.shape[0] - side_h) // 2, (image.shape[1] - side_w) // 2
    return np.ascontiguousarray(image[top:top + side_h, left:left + side_w])


def _write_files(run: TrainedRun, image: np.ndarray, folder: Path) -> dict[str, float]:
    """Weights, architecture, test tensors and cover in ``folder``; the largest difference of the TorchScript and
    ONNX networks from torch eager."""
    network = exported_network(run)
    torch.save(network.state_dict(), folder / "weights.pt")
    (folder / "architecture.py").write_text(architecture_source())
    script = torchscript_bytes(run)
    (folder / "weights.torchscript").write_bytes(script)
    graph = onnx_graph(run)
    (folder / "weights.onnx").write_bytes(graph)
    diffs = {"torchscript": parity(run, script_outputs(load_torchscript(script)), "TorchScript export"),
             "onnx": parity(run, onnx_outputs(onnx_session(graph)), "ONNX export")}
    predictor = Predictor(run)
    np.save(folder / "test_input.npy", image.transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        outputs = network(torch.from_numpy(predictor.normalized(image)[None]))
    for spec, tensor in zip(run.task.exported_outputs(), outputs if isinstance(outputs, tuple) else (outputs,),
                            strict=True):
        np.save(folder / f"test_{spec.name}.npy", tensor.numpy().astype(np.float32))
    figure = draw_cover(image, predictor.segment(image), title=_name(run, None), class_names=run.class_names)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    (folder / "cover.png").write_bytes(buffer.getvalue())
    return diffs


def model_rdf(run: TrainedRun, meta: MetadataConfig) -> dict[str, Any]:
    """The package's rdf (bioimage.io model spec 0.5) as a plain mapping, its files named relative to the
    package."""
    version = torch.__version__.split("+")[0]
    rdf: dict[str, Any] = {
        "format_version": "0.5.12", "type": "model", "name": _name(run, meta.name),
        "description": (meta.description or _description(run))[:1024],
        "authors": [{"name": a} for a in meta.authors],
        "cite": [{k: v for k, v in c.model_dump().items() if v} for c in meta.cite],
        "tags": sorted({"convscope", "2d", "pytorch", "onnx", "torchscript", KIND_TAGS[run.task.kind],
                        *meta.tags}),
        "documentation": {"source": "README.md"}, "covers": [{"source": "cover.png"}],
        "inputs": [_input_tensor(run)], "outputs": _output_tensors(run),
        "weights": {
            "pytorch_state_dict": {"source": "weights.pt", "pytorch_version": version, "architecture": {
                "source": "architecture.py", "callable": FACTORY_NAME, "kwargs": architecture_kwargs(run)}},
            "torchscript": {"source": "weights.torchscript", "pytorch_version": version,
                            "parent": "pytorch_state_dict"},
            "onnx": {"source": "weights.onnx", "opset_version": OPSET, "parent": "pytorch_state_dict"},
        },
        "config": {"convscope": export_description(run)},
    }
    if meta.license:
        rdf["license"] = meta.license
    return rdf


def _name(run: TrainedRun, name: str | None) -> str:
    """The package name: ``name``, else ``convscope <run>``, with the characters bioimage.io allows."""
    text = name or f"convscope {run.name}"
    return re.sub(r"[^A-Za-z0-9_+\- ()]", "-", text)[:128]


def _description(run: TrainedRun) -> str:
    model = run.model_config["model"]["name"]
    data = run.config.data.dataset
    return (f"convscope {run.task.name} model ({model}, {run.task.describe()}) trained on '{data}'; the outputs are "
            f"the network's ({', '.join(o.name for o in run.task.exported_outputs())}), decoded by convscope as the "
            "README says.")


def _channel_names(c: int) -> list[str]:
    return ["gray"] if c == 1 else ["red", "green", "blue"] if c == 3 else [f"channel{i}" for i in range(c)]


def _identifier(name: str) -> str:
    """A channel name bioimage.io accepts (letters, digits, underscores; not starting with a digit)."""
    text = re.sub(r"\W", "_", str(name)) or "channel"
    return f"c_{text}" if text[0].isdigit() else text


def _halo(run: TrainedRun) -> int:
    """Input pixels at each side of a tile that a consumer should crop (a quarter of convscope's tile overlap, as
    its blending zeroes them), a multiple of the output grid."""
    g = run.task.grid
    return max(g, run.overlap // 4 // g * g)


def _spatial_input(run: TrainedRun) -> list[dict[str, Any]]:
    h, w, _ = run.input_shape
    if not hasattr(run.model, "size_multiple"):
        return [{"type": "space", "id": "y", "size": h}, {"type": "space", "id": "x", "size": w}]
    m, g = size_multiple(run), run.task.grid
    smallest = m * max(1, -(-(2 * _halo(run) + g) // m))
    return [{"type": "space", "id": axis, "size": {"min": smallest, "step": m}} for axis in ("y", "x")]


def _input_tensor(run: TrainedRun) -> dict[str, Any]:
    return {"id": "input", "description": "raw image intensities (as read from the file), float32",
            "axes": [{"type": "batch"}, {"type": "channel", "channel_names": _channel_names(run.channels)},
                     *_spatial_input(run)],
            "test_tensor": {"source": "test_input.npy"}, "data": {"type": "float32"},
            "preprocessing": _preprocessing(run)}


def _preprocessing(run: TrainedRun) -> list[dict[str, Any]]:
    """The run's normalisation as bioimage.io preprocessing: ``scale_range`` over each image (all channels
    together) for percentiles, ``scale_linear`` for a fixed scale, nothing for ``none``."""
    norm = run.normalize
    if norm.mode == "percentile":
        return [{"id": "scale_range", "kwargs": {"axes": ["channel", "y", "x"], "min_percentile": norm.low,
                                                  "max_percentile": norm.high}}]
    if norm.mode == "scale":
        dtype = np.dtype(run.model_config.get("dtype", "uint8"))
        top = norm.max_value if norm.max_value is not None else (
            float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0)
        return [] if top == 1.0 else [{"id": "scale_linear", "kwargs": {"gain": 1.0 / top, "offset": 0.0}}]
    return []


def _output_tensors(run: TrainedRun) -> list[dict[str, Any]]:
    dense = hasattr(run.model, "size_multiple")
    g = run.task.grid
    tensors = []
    for spec in run.task.exported_outputs():
        axes: list[dict[str, Any]] = [{"type": "batch"}, {"type": "channel",
                                                          "channel_names": [_identifier(c) for c in spec.channels]}]
        if dense:
            axes += [{"type": "space", "id": axis, "size": {"tensor_id": "input", "axis_id": axis},
                      "scale": float(g), "halo": _halo(run) // g} for axis in ("y", "x")]
        tensors.append({"id": spec.name, "description": spec.description[:128], "axes": axes,
                        "test_tensor": {"source": f"test_{spec.name}.npy"}})
    return tensors


def _describe(rdf: dict[str, Any], folder: Path, out: Path) -> Any:
    """The validated description of the package files in ``folder``; a :class:`ConvscopeError` naming the first
    problem when bioimage.io rejects it."""
    from bioimageio.spec import ValidationContext, build_description

    with ValidationContext(root=folder, perform_io_checks=True):
        descr = build_description(rdf)
    if type(descr).__name__ == "InvalidDescr":
        raise ConvscopeError(f"{out}: bioimage.io rejects the package: {_first_error(descr.validation_summary)}; "
                             "check the metadata (recipe metadata: section or the export flags)")
    return descr


def _first_error(summary: Any) -> str:
    for detail in summary.details:
        for error in detail.errors:
            return f"{detail.name}: {'.'.join(map(str, error.loc))} {error.msg}".strip()
    return summary.status


def _test(descr: Any, out: Path) -> dict[str, str]:
    """``bioimageio.core.test_model`` of the package for every weight format: ``{format: "passed"}`` (or a
    RuntimeError: an export that fails its own test is a convscope bug and is not written)."""
    from bioimageio.core import test_model

    summary = test_model(descr)
    if summary.status != "passed":
        raise RuntimeError(f"{out}: bioimageio.core test_model failed: {_first_error(summary)}")
    return {weight_format: summary.status for weight_format in WEIGHT_FORMATS
            if any(d.name == f"Reproduce test outputs from test inputs ({weight_format})" for d in summary.details)}


def _save(descr: Any, folder: Path, out: Path) -> None:
    from bioimageio.spec import save_bioimageio_package

    package = save_bioimageio_package(descr, output_path=folder / "package.zip")
    write_bytes(out, Path(package).read_bytes())


def _missing_metadata(meta: MetadataConfig) -> list[str]:
    missing = [name for name, value in (("authors", meta.authors), ("license", meta.license), ("cite", meta.cite))
               if not value]
    if not missing:
        return []
    return [f"no {', '.join(missing)}: the package is valid, but bioimage.io's upload asks for them (recipe section "
            "metadata:, or --author / --license / --cite)"]


def _readme(run: TrainedRun, meta: MetadataConfig, diffs: dict[str, float], tested: dict[str, str] | None) -> str:
    """The package's README: inputs, outputs and how convscope decodes them, use, validation, training."""
    h, w, c = run.input_shape
    m = size_multiple(run)
    outputs = run.task.exported_outputs()
    lines = [f"# {_name(run, meta.name)}", "", meta.description or _description(run), "",
             f"Exported by convscope from run `{run.name}` on {datetime.now(UTC):%Y-%m-%d}.", "", "## Input", "",
             f"One image, axes (batch, channel, y, x), {c} channel{'s' if c > 1 else ''}, raw intensities as float32; "
             + (f"height and width multiples of {m}." if hasattr(run.model, "size_multiple") else f"{h} x {w} pixels."),
             f"Preprocessing (declared in the rdf): {_normalization_text(run)}.", "", "## Outputs", ""]
    lines += [f"- `{o.name}` ({len(o.channels)} channel{'s' if len(o.channels) > 1 else ''}): {o.description}."
              for o in outputs]
    lines += ["", "Decoding thresholds of this model (tuned on its validation images): "
              + (", ".join(f"{k} = {v:.3g}" for k, v in run.task.thresholds.items()) or "none") + ".",
              "", "## Use", "", "```sh", "convscope predict model.zip my_images/ --out results/   # as a run directory",
              "convscope finetune model.zip --data corrected/ --out runs/finetuned", "```", "",
              "Fiji/deepImageJ, QuPath, ilastik and napari read the TorchScript and ONNX weights; `bioimageio.core` "
              "reads all three (`pytorch_state_dict` builds the network from `architecture.py`, which needs only "
              "torch).", "", "## Validation", ""]
    lines += _metrics_lines(run)
    lines += [f"- Exported networks against torch eager (random inputs of two sizes): TorchScript max |diff| "
              f"{diffs['torchscript']:.2g}, ONNX {diffs['onnx']:.2g}."]
    if tested is not None:
        import bioimageio.core

        lines.append(f"- `bioimageio.core.test_model` (bioimageio.core {bioimageio.core.__version__}): "
                     + ", ".join(f"{k} {v}" for k, v in tested.items()) + ".")
    else:
        lines.append("- `bioimageio.core.test_model` was not run at export; run `bioimageio test model.zip`.")
    lines += ["", "## Training", "", "Recipe (`convscope train RECIPE --out RUN`):", "", "```yaml",
              yaml.safe_dump(run.config.model_dump(mode="json"), sort_keys=False).rstrip(), "```"]
    if meta.cite:
        lines += ["", "## Cite", ""] + [f"- {c.text} ({c.doi or c.url})" for c in meta.cite]
    return "\n".join(lines) + "\n"


def _normalization_text(run: TrainedRun) -> str:
    norm = run.normalize
    if norm.mode == "percentile":
        return (f"each image scaled so that its {norm.low:g} and {norm.high:g} percentiles (all channels together) "
                "become 0 and 1 (`scale_range`)")
    steps = _preprocessing(run)
    return f"divided by {1 / steps[0]['kwargs']['gain']:g} (`scale_linear`)" if steps else "none (values as given)"


def _training_data(card: dict[str, Any]) -> str:
    data = card.get("training_data") or {}
    if not isinstance(data, dict):
        return f"- Training data: {data}."
    return f"- Training data: {data.get('source', 'not stated')} (licence: {data.get('licence', 'not stated')})."


def _metrics_lines(run: TrainedRun) -> list[str]:
    """The run's scalar metrics on its validation and test images (``metrics.json``), one line per split."""
    if run.builtin:
        card = get_pretrained(run.name).card
        by_kind = card.get("metrics_test_by_kind") or {}
        return [f"- Built-in model `{run.name}`, DSB 2018 test split, {kind}: " + ", ".join(
                    f"{k} {v:.4g}" for k, v in scores.items() if isinstance(v, int | float)) + "."
                for kind, scores in by_kind.items()] + [_training_data(card), f"- Limitations: "
                                                          f"{card.get('limitations', 'none stated')}."]
    metrics = run.run.read_metrics()
    lines = []
    for split in ("val", "test"):
        entry = metrics.get(split) or {}
        scalars = {k: v for k, v in entry.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        at_half = (entry.get("matching") or {}).get("0.5") or {}
        scalars.update({f"{k}@0.5": v for k, v in at_half.items() if k in ("f1", "accuracy", "panoptic_quality")})
        if scalars:
            lines.append(f"- {split} split: " + ", ".join(f"{k} {v:.4g}" for k, v in scalars.items()) + ".")
    return lines or ["- The run has no metrics.json."]

"""bioimage.io models of other tools, run by convscope: their declared preprocessing (any of bioimage.io's:
``zero_mean_unit_variance``, ``scale_range``, ``scale_linear``, ...) applied by ``bioimageio.core`` to the whole
image, their ONNX (preferred, in ONNX Runtime) or TorchScript network run tile by tile through convscope's tiled
predictor (:func:`convscope.inference.tiling.predict_tiled`: overlapping tiles blended without seams, any image
size), their declared postprocessing applied to the stitched output, and every output tensor written as a float32
TIFF. 2-D image-to-image models with one input; weights that are only ``pytorch_state_dict`` are refused, because
building them runs the package's own Python code. Needs the ``bioimageio`` extra.

Packages convscope exported are runs (:func:`convscope.runs.load_run`); this module is for the others.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convscope.datasets.folders import load_image
from convscope.errors import ConvscopeError
from convscope.export.bioimageio import require_bioimageio
from convscope.export.torchscript import load_torchscript
from convscope.inference.backends import onnx_session
from convscope.inference.destinations import output_folder, output_names
from convscope.inference.outputs import expand_inputs
from convscope.inference.tiling import predict_tiled
from convscope.io.atomic import write_text
from convscope.io.image import write_image

#: Axes of the tensors convscope hands over: batch, channel, y, x.
SPATIAL = ("y", "x")
#: Preferred tile side (the smallest size the model takes that is at least this).
TILE = 256


@dataclass(frozen=True)
class OutputWritten:
    """One image's outputs: its path and the TIFF written for each output tensor (by tensor id)."""

    path: str
    files: dict[str, str]


@dataclass(frozen=True)
class _Tensor:
    id: str
    axes: tuple[str, ...]
    channels: int
    scale: int  # output pixels per input pixel along y and x: 1, or 1 / grid


class ForeignModel:
    """A bioimage.io model of another tool, ready to predict images of any size.

    Parameters
    ----------
    source : path-like
        The package (``.zip``, rdf file or folder).
    batch_size : int
        Tiles per network call (1 when the model has no batch axis).
    """

    def __init__(self, source: str | Path, *, batch_size: int = 4) -> None:
        require_bioimageio("running a bioimage.io model of another tool")
        from bioimageio.core.proc_setup import get_pre_and_postprocessing
        from bioimageio.spec import InvalidDescr, load_model_description

        self.source = Path(source)
        descr = load_model_description(str(source), format_version="latest")
        if isinstance(descr, InvalidDescr):
            raise ConvscopeError(f"{source}: not a valid bioimage.io model ({descr.validation_summary.status})")
        self.descr = descr
        self.name = str(descr.name)
        self.input, self.outputs = _input_tensor(descr, source), _output_tensors(descr, source)
        self.grid = _grid(self.outputs, source)
        self.tile, self.overlap = _tiling(descr.inputs[0], self.grid, source)
        batch = next((a for a in descr.inputs[0].axes if str(a.id) == "batch"), None)
        self.batch_size = batch_size if batch is not None and getattr(batch, "size", None) != 1 else 1
        self.run_network, self.weight_format = _network(descr, source)
        self._pre, self._post = get_pre_and_postprocessing(descr, dataset_for_initial_statistics=[])

    @property
    def channels(self) -> int:
        return self.input.channels

    def predict(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs of ``image`` (H, W) or (H, W, C): ``{tensor id: (K, h, w) float32}`` after the
        declared postprocessing (h, w: the image's size, divided by the output grid)."""
        from bioimageio.core import Sample, Tensor

        x = image[:, :, None] if image.ndim == 2 else image
        if x.shape[2] != self.channels:
            raise ConvscopeError(f"image has {x.shape[2]} channels; {self.name} takes {self.channels}")
        sample = Sample(members={self.input.id: Tensor.from_numpy(_to_axes(x.transpose(2, 0, 1)[None],
                                                                          self.input.axes), dims=self.input.axes)},
                        stat={}, id=None)
        self._pre(sample)
        normalized = _from_axes(sample.members[self.input.id].data.to_numpy(), self.input.axes)[0]
        stacked = predict_tiled(self._forward, normalized.astype(np.float32), tile=self.tile, overlap=self.overlap,
                                batch_size=self.batch_size, grid=self.grid)
        parts, start = {}, 0
        for out in self.outputs:
            parts[out.id] = Tensor.from_numpy(_to_axes(stacked[None, start:start + out.channels], out.axes),
                                              dims=out.axes)
            start += out.channels
        result = Sample(members=parts, stat=sample.stat, id=None)
        self._post(result)
        return {str(k): _from_axes(t.data.to_numpy(), self._axes_of(k))[0].astype(np.float32)
                for k, t in result.members.items()}

    def _axes_of(self, member: Any) -> tuple[str, ...]:
        return next(o.axes for o in self.outputs if o.id == str(member))

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw outputs of a batch of preprocessed tiles (B, C, t, t), all output tensors stacked along the
        channels: (B, sum K, t / grid, t / grid)."""
        x = batch.numpy()
        outputs = self.run_network(_to_axes(x, self.input.axes))
        return torch.from_numpy(np.concatenate([_from_axes(np.asarray(o, np.float32), spec.axes)
                                                for o, spec in zip(outputs, self.outputs, strict=True)], axis=1))


def predict_foreign(source: str | Path, inputs: Sequence[str | Path], out: str | Path, *, batch_size: int = 4,
                    overwrite: bool = False, log: Callable[[str], None] | None = None) -> list[OutputWritten]:
    """Predict image files and folders with the bioimage.io model ``source`` of another tool; write
    ``OUT/<name>_<output id>.tif`` (float32, (H, W) for one channel, else (H, W, K)) per image and output tensor and
    ``OUT/predictions.csv`` (path and the files written). ``<name>`` is the image's path relative to the inputs'
    common folder (:func:`convscope.inference.destinations.output_names`); a non-empty ``OUT`` needs ``overwrite``."""
    model = ForeignModel(source, batch_size=batch_size)
    files = expand_inputs(inputs)
    if log is not None:
        log(f"{model.name}: {model.weight_format} weights, tiles of {model.tile} px overlapping by {model.overlap}")
    color = {1: "gray", 3: "rgb"}.get(model.channels, "auto")
    results = []
    with output_folder(Path(out), files, overwrite=overwrite) as folder:
        for path, name in zip(files, output_names(files), strict=True):
            predicted = model.predict(load_image(path, color=color))
            written = {}
            for output, array in predicted.items():
                target = folder / name.parent / f"{name.name}_{output}.tif"
                target.parent.mkdir(parents=True, exist_ok=True)
                write_image(target, array[0] if len(array) == 1 else array.transpose(1, 2, 0))
                written[output] = str(target)
            results.append(OutputWritten(str(path), written))
        names = [o.id for o in model.outputs]
        table = io.StringIO()
        csv.writer(table).writerows([["path", *names], *([r.path, *(r.files[n] for n in names)] for r in results)])
        write_text(folder / "predictions.csv", table.getvalue())
    return results


def _axis_ids(tensor: Any) -> tuple[str, ...]:
    return tuple(str(a.id) for a in tensor.axes)


def _input_tensor(descr: Any, source: str | Path) -> _Tensor:
    if len(descr.inputs) != 1:
        raise ConvscopeError(f"{source}: the model takes {len(descr.inputs)} inputs; convscope runs models with one")
    tensor = descr.inputs[0]
    axes = _axis_ids(tensor)
    _check_axes(axes, source)
    channel = next((a for a in tensor.axes if str(a.id) == "channel"), None)
    return _Tensor(str(tensor.id), axes, len(channel.channel_names) if channel is not None else 1, 1)


def _output_tensors(descr: Any, source: str | Path) -> list[_Tensor]:
    outputs = []
    for tensor in descr.outputs:
        axes = _axis_ids(tensor)
        _check_axes(axes, source)
        channel = next((a for a in tensor.axes if str(a.id) == "channel"), None)
        scales = {float(getattr(a, "scale", 1.0)) for a in tensor.axes if str(a.id) in SPATIAL}
        if len(scales) != 1 or not float(next(iter(scales))).is_integer():
            raise ConvscopeError(f"{source}: output '{tensor.id}' has spatial scales {sorted(scales)}; convscope runs "
                                 "outputs at the input's resolution or on an integer grid")
        size = getattr(channel, "size", None) if channel is not None else 1
        count = len(channel.channel_names) if channel is not None and hasattr(channel, "channel_names") else size
        outputs.append(_Tensor(str(tensor.id), axes, int(count), int(next(iter(scales)))))
    return outputs


def _check_axes(axes: tuple[str, ...], source: str | Path) -> None:
    if not set(SPATIAL) <= set(axes) or not set(axes) <= {"batch", "channel", *SPATIAL}:
        raise ConvscopeError(f"{source}: tensor axes {', '.join(axes)}; convscope runs 2-D image-to-image models "
                             "(axes batch, channel, y, x)")


def _grid(outputs: list[_Tensor], source: str | Path) -> int:
    grids = {o.scale for o in outputs}
    if len(grids) != 1:
        raise ConvscopeError(f"{source}: its outputs have different resolutions; convscope runs models whose outputs "
                             "share one")
    return next(iter(grids))


def _tiling(tensor: Any, grid: int, source: str | Path) -> tuple[int, int]:
    """Tile side (the smallest size the model takes that is at least :data:`TILE`, same along y and x) and overlap
    (a quarter of it, a multiple of ``grid``)."""
    sizes = [a.size for a in tensor.axes if str(a.id) in SPATIAL]
    tiles = []
    for size in sizes:
        if isinstance(size, int):
            tiles.append(size)
        elif hasattr(size, "min") and hasattr(size, "step"):
            n = max(0, -(-(TILE - int(size.min)) // int(size.step))) if int(size.step) else 0
            tiles.append(int(size.min) + n * int(size.step))
        else:
            raise ConvscopeError(f"{source}: input size {size!r} is not a fixed or parameterized size")
    if len(set(tiles)) != 1:
        raise ConvscopeError(f"{source}: the model takes tiles of {tiles[0]} x {tiles[1]}; convscope tiles squares")
    tile = tiles[0]
    return tile, tile // 4 // grid * grid


def _network(descr: Any, source: str | Path) -> tuple[Callable[[np.ndarray], list[np.ndarray]], str]:
    """A function running the model's ONNX (preferred) or TorchScript network on an input array in the model's
    axes, returning its outputs in order; and the weight format used."""
    weights = descr.weights
    if weights.onnx is not None:
        session = onnx_session(weights.onnx.get_reader().read())
        name = session.get_inputs()[0].name
        return (lambda x: session.run(None, {name: np.ascontiguousarray(x, np.float32)})), "onnx"
    if weights.torchscript is not None:
        module = load_torchscript(weights.torchscript.get_reader().read())

        def run(x: np.ndarray) -> list[np.ndarray]:
            with torch.no_grad():
                out = module(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
            return [o.numpy() for o in (out if isinstance(out, tuple | list) else (out,))]

        return run, "torchscript"
    raise ConvscopeError(f"{source}: has neither ONNX nor TorchScript weights; convscope does not run a package's "
                         "own Python code (pytorch_state_dict); use `bioimageio predict` from bioimageio.core")


def _to_axes(x: np.ndarray, axes: tuple[str, ...]) -> np.ndarray:
    """(B, C, H, W) as the axes ``axes`` (a subset of batch, channel, y, x, in any order; dropped axes must be 1)."""
    names = ("batch", "channel", "y", "x")
    kept = x.reshape([s for s, n in zip(x.shape, names, strict=True) if n in axes] or [1])
    present = [n for n in names if n in axes]
    return np.transpose(kept, [present.index(a) for a in axes])


def _from_axes(x: np.ndarray, axes: tuple[str, ...]) -> np.ndarray:
    """An array in the axes ``axes`` as (B, C, H, W), missing batch or channel axes added with length 1."""
    names = ("batch", "channel", "y", "x")
    present = [n for n in names if n in axes]
    ordered = np.transpose(x, [axes.index(n) for n in present])
    return ordered.reshape([ordered.shape[present.index(n)] if n in present else 1 for n in names])

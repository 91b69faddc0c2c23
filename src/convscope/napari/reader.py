"""The napari reader of convscope's outputs (the npe2 ``readers`` contribution): File > Open, ``napari PATH`` or
``viewer.open(PATH, plugin="convscope")`` on

* a **run directory** (``convscope train ... --out RUN``): the run is loaded in the Segment widget (docked if it is
  not), ready for the images you open; no layer is added and nothing is predicted.
* the **output folder of** ``convscope predict`` on a segmentation or instance run (or its ``predictions.csv``):
  each image's labels or class map as a Labels layer ``<name> labels`` (the name the Segment widget gives, so
  Correct & retrain and Evaluate pick it up) over its source image (Image layer ``<name>``) when it is found, and a
  semantic run's probability map when it was written; another tool's bioimage.io model: its float outputs as Image
  layers. At most :data:`MAX_IMAGES` images; the first is shown, the others are hidden.
* a **classifier's CSV**: each image as an Image layer ``<name>: <class> (<p>)``, the class and probabilities in
  its metadata as the Segment widget records them.
* the **OME-Zarr label image** of block-wise prediction (``labels.ome.zarr``): a multiscale Labels layer read
  lazily (napari reads the chunks it shows, at the level it shows), over its source image (lazy too) when found.

For any other path :func:`get_reader` returns None, so napari uses another reader. A broken output is one napari
notification naming the file and the fix, not a traceback; what is missing from an output that is otherwise fine
(a file, a source image) is one warning, and the rest opens.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import napari
from napari.utils.notifications import show_warning

from convscope.errors import ConvscopeError
from convscope.inference.large import require_dask
from convscope.inference.outputs import PREDICTIONS_CSV
from convscope.inference.written import (
    WrittenImage,
    find_source,
    is_class_table,
    label_image_attributes,
    prediction_table,
    read_class_table,
    read_prediction_folder,
)
from convscope.io.image import read_image
from convscope.napari._common import guarded, info, session
from convscope.napari._model import class_result
from convscope.runs.layout import RunDir

#: napari layer data: (data, keyword arguments of ``add_<kind>``, kind).
LayerData = tuple[Any, dict[str, Any], str]
#: Images of a prediction folder or a classifier's CSV opened at most (two or three layers each).
MAX_IMAGES = 24
_PROBABILITY = {"colormap": "magma", "blending": "additive", "opacity": 0.6}


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[Any]] | None:
    """npe2 reader hook: a function that opens ``path`` when it is a convscope output (see the module docstring),
    else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    target = Path(path)
    read = _reader_of(target)
    return None if read is None else partial(_reported, read, target)


def _reader_of(path: Path) -> Callable[[Path], list[LayerData]] | None:
    if path.is_dir():
        if RunDir(path).config.is_file() and RunDir(path).model_dir.is_dir():
            return read_run_directory
        if label_image_attributes(path) is not None:
            return read_label_image
        return read_prediction_layers if prediction_table(path) is not None else None
    if path.name in (PREDICTIONS_CSV, f"{PREDICTIONS_CSV}.partial") and prediction_table(path.parent) == path:
        return lambda table: read_prediction_layers(table.parent)
    return read_class_layers if path.suffix.lower() == ".csv" and is_class_table(path) else None


def _reported(read: Callable[[Path], list[LayerData]], path: Path, _given: Any = None) -> list[Any]:
    """``read(path)``; an error becomes one notification and no layer (napari's ``[(None,)]``)."""
    layers = guarded(lambda: read(path))
    return list(layers) if layers else [(None,)]


# --- run directory ---------------------------------------------------------------------------------------------

def read_run_directory(path: Path) -> list[LayerData]:
    """Load the run in the current viewer's Segment widget (docking it if needed); adds no layer.

    Raises
    ------
    ConvscopeError
        No napari viewer, or the run cannot be loaded (the message names the file).
    """
    viewer = napari.current_viewer()
    if viewer is None:
        raise ConvscopeError(f"{path}: a run directory opens in the Segment widget of a napari viewer; open it from "
                             "napari (File > Open Folder)")
    RunDir.open(path).read_model_config()  # a broken run is reported before anything is docked
    widget = session(viewer).segment
    docked = viewer.window.dock_widgets.values()
    if widget is None or not any(w is widget or w is widget.native for w in docked):
        _, widget = viewer.window.add_plugin_dock_widget("convscope", "Segment")
    model = widget.load(path)
    info(f"{model.path.name}: {widget.about.value} loaded in the Segment widget; choose an image layer and press "
         "Segment")
    return []


# --- prediction folder -------------------------------------------------------------------------------------------

def read_prediction_layers(folder: Path) -> list[LayerData]:
    """Layers of the images of a `convscope predict` output folder (see the module docstring).

    Raises
    ------
    ConvscopeError
        The CSV is unreadable, or none of the files it lists is in the folder.
    """
    found = read_prediction_folder(folder)
    if not found.images:
        listed = f" (e.g. {found.missing[0]})" if found.missing else ""
        raise ConvscopeError(f"{folder}: none of the files its predictions.csv lists is here{listed}; predict "
                             "again with --overwrite")
    layers: list[LayerData] = []
    lost: list[str] = []
    broken: list[str] = []
    for i, image in enumerate(found.images[:MAX_IMAGES]):
        layers += _source_layer(image, i == 0, lost)
        layers += _output_layers(image, i == 0, broken)
    notes = []
    if not found.complete:
        notes.append(f"the prediction stopped before the end (only {PREDICTIONS_CSV}.partial): {len(found.images)} "
                     "image(s) done")
    if found.missing:
        notes.append(f"{len(found.missing)} file(s) its {PREDICTIONS_CSV} lists are missing (e.g. "
                     f"{found.missing[0]}); predict again with --overwrite")
    if broken:
        notes.append(f"{len(broken)} output file(s) are not readable (e.g. {broken[0]}); predict again with "
                     "--overwrite")
    if lost:
        notes.append(f"{len(lost)} source image(s) not found (e.g. {lost[0]}, as recorded): their outputs are shown "
                     "alone; open napari in the folder `convscope predict` ran in")
    if len(found.images) > MAX_IMAGES:
        notes.append(f"opened the first {MAX_IMAGES} of {len(found.images)} images (File > Open the others' files)")
    if notes:
        show_warning(f"{folder}: " + "; ".join(notes))
    return layers


def _source_layer(image: WrittenImage, visible: bool, lost: list[str]) -> list[LayerData]:
    """The source image as an Image layer ``<name>``, or nothing (and its recorded path in ``lost``)."""
    if image.source is None:
        lost.append(image.recorded)
        return []
    try:
        data = read_image(image.source)
    except ConvscopeError:
        lost.append(image.recorded)
        return []
    return [(data, {"name": image.name, "visible": visible,
                    "metadata": {"convscope": {"path": str(image.source)}}}, "image")]


def _output_layers(image: WrittenImage, visible: bool, broken: list[str]) -> list[LayerData]:
    """An image's outputs: labels or class map (Labels ``<name> labels``), probability map, a foreign model's
    float maps (Image ``<name> <output>``); unreadable files are left out (and listed in ``broken``)."""
    metadata = {"convscope": {**image.values, **{k: str(v) for k, v in image.files.items()}}}
    layers: list[LayerData] = []
    for what, file in image.files.items():
        try:
            data = read_image(file)
        except ConvscopeError:
            broken.append(str(file))
            continue
        if what in ("labels", "mask"):
            layers.append((data, {"name": f"{image.name} labels", "visible": visible, "metadata": metadata},
                           "labels"))
        elif what == "probability":
            layers.append((data, {"name": f"{image.name} probability", "visible": visible,
                                  "contrast_limits": (0.0, 1.0), **_PROBABILITY}, "image"))
        elif data.ndim == 3:  # (H, W, K) maps of another tool's model: one layer per channel
            names = [f"{image.name} {what} {k}" for k in range(data.shape[2])]
            layers.append((data, {"name": names, "channel_axis": 2, "visible": visible}, "image"))
        else:
            layers.append((data, {"name": f"{image.name} {what}", "visible": visible, "colormap": "magma"},
                           "image"))
    return layers


# --- classifier's CSV --------------------------------------------------------------------------------------------

def read_class_layers(path: Path) -> list[LayerData]:
    """Each image of a classifier's CSV, named and annotated with its class.

    Raises
    ------
    ConvscopeError
        A broken CSV, or none of its images found.
    """
    table = read_class_table(path)
    layers: list[LayerData] = []
    lost = []
    for prediction, source in table.rows[:MAX_IMAGES]:
        if source is None:
            lost.append(prediction.path)
            continue
        try:
            data = read_image(source)
        except ConvscopeError:
            lost.append(prediction.path)
            continue
        name = f"{Path(prediction.path).stem}: {prediction.label} ({prediction.probability:.2f})"
        result = {**class_result(table.class_names, prediction.probabilities), "path": str(source)}
        layers.append((data, {"name": name, "visible": not layers, "metadata": {"convscope": result}}, "image"))
    if not layers:
        raise ConvscopeError(f"{path}: none of its {len(table.rows)} images found (e.g. {table.rows[0][0].path} as "
                             "recorded); open napari in the folder `convscope predict` ran in" if table.rows else
                             f"{path}: no predictions in this CSV")
    notes = [f"{len(lost)} image(s) not found or not readable (e.g. {lost[0]}, as recorded)"] if lost else []
    if len(table.rows) > MAX_IMAGES:
        notes.append(f"opened the first {MAX_IMAGES} of {len(table.rows)} images")
    if notes:
        show_warning(f"{path}: " + "; ".join(notes))
    return layers


# --- OME-Zarr label image ----------------------------------------------------------------------------------------

def read_label_image(path: Path) -> list[LayerData]:
    """The multiscale label image of block-wise prediction, lazily, over its source image when found.

    Raises
    ------
    ConvscopeError
        The dask extra is missing, or the label image is not readable.
    """
    require_dask()
    import dask.array as da

    from convscope.io.large import image_levels, open_label_image

    recorded = label_image_attributes(path) or {}
    arrays, _ = open_label_image(path)
    labels = [da.from_array(level, chunks=level.chunks) for level in arrays]
    source = find_source(str(recorded.get("source", "")), None, path.parent) if recorded.get("source") else None
    stem = _stem(source or path)
    layers: list[LayerData] = []
    if source is not None:
        try:
            levels = image_levels(source)
        except ConvscopeError as err:
            show_warning(f"{path}: its source image is not readable ({err}); the labels are shown alone")
        else:
            layers.append(_large_image_layer(levels, len(labels), recorded, stem))
    elif recorded.get("source"):
        show_warning(f"{path}: its source image {recorded['source']} (as recorded) is not found; the labels are "
                     "shown alone (open napari in the folder `convscope predict` ran in)")
    layers.append((_levels(labels), {"name": f"{stem} labels", "multiscale": len(labels) > 1,
                                     "metadata": {"convscope": recorded}}, "labels"))
    return layers


def _large_image_layer(levels: list[Any], n_levels: int, recorded: dict[str, Any], name: str) -> LayerData:
    """An Image layer of a large image's lazy levels. One level alone is subsampled as the labels are (every second
    pixel per level), so that napari never reads the whole image at full resolution to show it, and its contrast
    limits are the bounds prediction normalised by (napari would read every chunk to find its own)."""
    meta: dict[str, Any] = {"name": name}
    if len(levels) == 1 and n_levels > 1:
        levels = [levels[0][:: 2**i, :: 2**i] for i in range(n_levels)]
        bounds = recorded.get("normalization_bounds")
        if isinstance(bounds, list) and len(bounds) == 2 and float(bounds[0]) < float(bounds[1]):
            meta["contrast_limits"] = [float(bounds[0]), float(bounds[1])]
    channels = levels[0].shape[2] if levels[0].ndim == 3 else 1
    meta["rgb"] = channels in (3, 4)
    if channels > 1 and channels not in (3, 4):
        meta["channel_axis"] = 2
    return _levels(levels), {**meta, "multiscale": len(levels) > 1}, "image"


def _levels(levels: list[Any]) -> Any:
    """napari layer data of resolution levels: the list, or the one array."""
    return levels if len(levels) > 1 else levels[0]


def _stem(path: Path) -> str:
    """``slide`` of ``slide.ome.zarr``, ``mosaic.tif`` or ``slide``."""
    name = path.name
    for ending in (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(ending):
            return name[: -len(ending)]
    return name


"""**Correct & retrain**: the human-in-the-loop step. Edit the Labels layer with napari's paint / erase / fill tools
(plus: delete the object under the cursor, start a new object id), save image + corrected labels to a training-set
folder (``images/`` + ``masks/``, TIFF, atomic, never overwriting), fine-tune the current model on the saved pairs
in the background (:func:`convscope.finetune`), then switch the Segment widget to the new run and
re-segment. Retraining reads only the saved files: nothing painted is touched if it fails."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import Container, FileEdit, Label, ProgressBar, PushButton, SpinBox
from napari.layers import Image, Labels

from convscope import finetune
from convscope.errors import ConvscopeError
from convscope.io.image import write_image
from convscope.napari._common import Relay, guarded, info, layer_picker, run_in_background, session


class Cancelled(ConvscopeError):
    """Training was cancelled by the user."""


def next_free_stem(folder: Path, stem: str) -> str:
    """``stem``, or ``stem_v2``, ``stem_v3`` ... : the first not used by a file in ``folder/images`` or
    ``folder/masks``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_.") or "image"
    used = {p.stem for sub in ("images", "masks") if (folder / sub).is_dir() for p in (folder / sub).iterdir()}
    candidate, version = stem, 1
    while candidate in used:
        version += 1
        candidate = f"{stem}_v{version}"
    return candidate


def save_pair(folder: Path, stem: str, image: np.ndarray, labels: np.ndarray) -> str:
    """Write ``folder/masks/<stem'>.tif`` then ``folder/images/<stem'>.tif`` (each atomically); ``stem'`` is a
    new version when ``stem`` was saved before. Returns ``stem'``.

    Parameters
    ----------
    image : ndarray, (H, W) or (H, W, C), uint8/uint16/float
    labels : ndarray, (H, W), integer instance ids (0 = background)
    """
    if image.shape[:2] != labels.shape:
        raise ConvscopeError(f"image {image.shape[:2]} and labels {labels.shape} differ in size; pick matching "
                             "layers")
    if labels.max(initial=0) == 0:
        raise ConvscopeError("the labels layer is empty; segment or paint objects before adding it")
    stem = next_free_stem(folder, stem)
    labels = labels.astype(np.uint16 if labels.max() <= np.iinfo(np.uint16).max else np.uint32)
    write_image(folder / "masks" / f"{stem}.tif", labels)
    write_image(folder / "images" / f"{stem}.tif", image)
    return stem


def next_run_dir(folder: Path, name: str) -> Path:
    """``folder/runs/<name>_ft<k>`` for the first free ``k``."""
    base = re.sub(r"_ft\d+$", "", name)
    k = 1
    while (folder / "runs" / f"{base}_ft{k}").exists():
        k += 1
    return folder / "runs" / f"{base}_ft{k}"


class CorrectWidget(Container):
    """Save corrected labels to a training set and fine-tune the Segment widget's model on it."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.folder = FileEdit(label="training set", mode="d")
        self.image = layer_picker(viewer, Image, "image")
        self.labels_box = layer_picker(viewer, Labels, "labels")
        self.delete_button = PushButton(text="Delete object under cursor (Shift-D)")
        self.new_button = PushButton(text="New object id (Shift-N)")
        self.add_button = PushButton(text="Add to training set")
        self.saved = Label(label="saved pairs", value="0")
        self.epochs = SpinBox(label="epochs", value=10, min=1, max=1000)
        self.mix = SpinBox(label="mix original images", value=0, min=0, max=10_000)
        self.retrain_button = PushButton(text="Retrain")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", value=0, min=0, max=10)
        self.status = Label(value="")
        self.extend([self.folder, self.image, self.labels_box, self.delete_button, self.new_button, self.add_button,
                     self.saved, self.epochs, self.mix, self.retrain_button, self.cancel_button, self.progress,
                     self.status])
        self.delete_button.changed.connect(lambda: guarded(self.delete_under_cursor))
        self.new_button.changed.connect(lambda: guarded(self.new_object))
        self.add_button.changed.connect(lambda: guarded(self.add_to_training_set))
        self.retrain_button.changed.connect(lambda: guarded(self.retrain))
        self.cancel_button.changed.connect(self.cancel)
        viewer.bind_key("Shift-D", lambda _v: guarded(self.delete_under_cursor), overwrite=True)
        viewer.bind_key("Shift-N", lambda _v: guarded(self.new_object), overwrite=True)
        self.worker: Any = None
        self.new_run: Path | None = None
        self._cancel = threading.Event()
        self._relay = Relay()
        self._relay.message.connect(self._on_progress)

    # ------------------------------------------------------------------------------------------------ editing
    def _labels_layer(self) -> Labels:
        layer = self.labels_box.value
        if layer is None:
            raise ConvscopeError("no labels layer: segment an image first (Segment widget) or add a Labels layer")
        return layer

    def delete_under_cursor(self, position: tuple[float, ...] | None = None) -> int:
        """Erase the object under the cursor (or at ``position``, world coordinates); returns its id (0: none)."""
        layer = self._labels_layer()
        where = position if position is not None else tuple(self.viewer.cursor.position)
        value = layer.get_value(where, world=True)
        if not value:
            info("no object under the cursor")
            return 0
        data = layer.data
        data[data == value] = 0
        layer.data = data
        layer.refresh()
        return int(value)

    def new_object(self) -> int:
        """Select a label id no object uses yet, in paint mode."""
        layer = self._labels_layer()
        new = int(np.max(layer.data)) + 1
        layer.selected_label = new
        layer.mode = "paint"
        self.viewer.layers.selection.active = layer
        return new

    def add_to_training_set(self) -> Path:
        """Save the image layer (the plane on screen, for stacks) and the labels layer as a new pair; returns the
        mask file."""
        folder = self._folder()
        image_layer, layer = self.image.value, self._labels_layer()
        if image_layer is None:
            raise ConvscopeError("no image layer to save with the labels")
        image, labels = self._current_plane(image_layer), self._current_plane(layer)
        stem = save_pair(folder, image_layer.name, image, labels)
        self.saved.value = str(len(list((folder / "masks").glob("*.tif"))))
        info(f"saved {stem} to {folder}")
        return folder / "masks" / f"{stem}.tif"

    def _current_plane(self, layer: Any) -> np.ndarray:
        data = np.asarray(layer.data)
        core = 3 if getattr(layer, "rgb", False) else 2
        lead = data.ndim - core
        if lead <= 0:
            return data
        step = self.viewer.dims.current_step[-(lead + 2): -2] if lead else ()
        return data[tuple(min(s, n - 1) for s, n in zip(step, data.shape[:lead], strict=False))]

    def _folder(self) -> Path:
        text = str(self.folder.value)
        if not text or text == ".":
            raise ConvscopeError("choose a training-set folder first (a new or existing folder for images/ + masks/)")
        return Path(text)

    # ------------------------------------------------------------------------------------------------ retrain
    def retrain(self) -> Any:
        """Fine-tune the Segment widget's model on the saved pairs in a background worker; on success load the
        new run into the Segment widget and re-segment. Returns the worker."""
        segment = session(self.viewer).segment
        if segment is None or segment.model is None:
            raise ConvscopeError("load a model in the Segment widget first; retraining starts from it")
        folder, run = self._folder(), segment.model.path
        out = next_run_dir(folder, Path(run).name)
        epochs, mix = int(self.epochs.value), int(self.mix.value)
        self.progress.max, self.progress.value = epochs, 0
        self._cancel.clear()
        self.new_run = out
        def job() -> Path:
            finetune(run, folder, out, epochs=epochs, mix_original=mix, log=lambda _m: None, cancel=self._cancel,
                     on_epoch=self._relay.message.emit)
            if self._cancel.is_set():
                raise Cancelled(f"retraining cancelled; the unfinished run is in {out}")
            return out

        self._busy(True)
        self.status.value = f"retraining {Path(run).name} -> {out.name} ..."
        self.worker = run_in_background(job, on_done=self._finished, on_error=lambda _m: self._busy(False))
        return self.worker

    def cancel(self) -> None:
        """Stop retraining within one batch (the unfinished run stays resumable)."""
        self._cancel.set()
        self.status.value = "cancelling ..."

    def _on_progress(self, row: dict[str, Any]) -> None:
        self.progress.value = min(int(row.get("epoch", 0)), self.progress.max)
        self.status.value = f"epoch {row.get('epoch')}: val loss {float(row.get('val_loss', float('nan'))):.4f}"

    def _busy(self, busy: bool) -> None:
        self.retrain_button.enabled = not busy
        self.cancel_button.enabled = busy

    def _finished(self, out: Path) -> None:
        self._busy(False)
        self.progress.value = self.progress.max
        segment = session(self.viewer).segment
        segment.load(out)
        segment.segment()
        self.status.value = f"new run {out}; Segment now uses it"
        info(f"retrained: {out} (report: {out / 'report.html'})")

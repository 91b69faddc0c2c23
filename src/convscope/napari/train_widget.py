"""**Train**: a recipe, or a folder of images/ + masks/, trained in the background with a live loss curve, Cancel,
and the run's report opened at the end."""

from __future__ import annotations

import threading
import webbrowser
from importlib.resources import files
from pathlib import Path
from typing import Any

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, Label, LineEdit, ProgressBar, PushButton, SpinBox
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from convscope import train
from convscope.config import RunConfig, load_recipe
from convscope.errors import ConvscopeError
from convscope.napari._common import Relay, guarded, run_in_background
from convscope.napari.correct import Cancelled
from convscope.runs.layout import RunDir

RECIPE, FOLDER = "recipe (YAML)", "images/ + masks/ folder"
#: Built-in recipe used for a folder, by task.
FOLDER_RECIPES = {"stardist": "demo_instances.yaml", "semantic": "demo_segmentation.yaml"}


def folder_recipe(folder: str | Path, task: str, epochs: int, overrides: list[str] | None = None) -> RunConfig:
    """The built-in recipe of ``task`` on the ``paired`` folder ``folder`` (instance labels for ``stardist``),
    with ``key=value`` ``overrides`` as ``convscope train --set``."""
    if task not in FOLDER_RECIPES:
        raise ConvscopeError(f"task {task}: use one of {', '.join(FOLDER_RECIPES)} for a folder, or a recipe")
    recipe = files("convscope") / "recipes" / FOLDER_RECIPES[task]
    return load_recipe(Path(str(recipe)), ["data.dataset=paired", f"data.path={Path(folder).resolve()}",
                                           f"train.epochs={epochs}", *(overrides or [])])


class LossCurve(FigureCanvasQTAgg):
    """Train and validation loss by epoch, redrawn after every epoch."""

    def __init__(self) -> None:
        self.figure = Figure(figsize=(3.2, 2.2), dpi=100, layout="constrained")
        super().__init__(self.figure)
        self.axes = self.figure.add_subplot()
        self.rows: list[dict[str, Any]] = []
        self.draw_rows([])

    def draw_rows(self, rows: list[dict[str, Any]]) -> None:
        self.rows = list(rows)
        ax = self.axes
        ax.clear()
        epochs = [r["epoch"] for r in rows]
        for key, style in (("train_loss", "o-"), ("val_loss", "s--")):
            ax.plot(epochs, [r.get(key, float("nan")) for r in rows], style, label=key.replace("_", " "), ms=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if rows:
            ax.legend(fontsize=7)
        self.draw_idle()


class TrainWidget(Container):
    """Train a new run from a recipe or a folder of image/mask pairs."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.source = ComboBox(label="from", choices=[RECIPE, FOLDER], value=RECIPE)
        self.recipe = FileEdit(label="recipe", mode="r", filter="*.yaml *.yml")
        self.folder = FileEdit(label="folder", mode="d", visible=False)
        self.task = ComboBox(label="task", choices=list(FOLDER_RECIPES), visible=False)
        self.out = FileEdit(label="new run", mode="w")
        self.epochs = SpinBox(label="epochs", value=10, min=1, max=10_000)
        self.overrides = LineEdit(label="--set", value="", tooltip="recipe overrides, separated by spaces: "
                                  "train.learning_rate=0.001 data.patch_size=128")
        self.open_report = CheckBox(text="open the report at the end", value=True)
        self.start_button = PushButton(text="Train")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(label="progress", value=0, min=0, max=10)
        self.status = Label(value="")
        self.extend([self.source, self.recipe, self.folder, self.task, self.out, self.epochs, self.overrides,
                     self.open_report, self.start_button, self.cancel_button, self.progress, self.status])
        self.curve = LossCurve()
        self.native.layout().addWidget(self.curve)
        self.source.changed.connect(self._switch)
        self.start_button.changed.connect(lambda: guarded(self.start))
        self.cancel_button.changed.connect(self.cancel)
        self.worker: Any = None
        self._cancel = threading.Event()
        self._relay = Relay()
        self._relay.message.connect(self._on_epoch)
        self.history: list[dict[str, Any]] = []

    def _switch(self, value: str) -> None:
        self.recipe.visible = value == RECIPE
        self.folder.visible = self.task.visible = value == FOLDER

    def config(self) -> RunConfig:
        """The recipe to train, with the widget's epochs and ``--set`` overrides."""
        extra = str(self.overrides.value).split()
        if self.source.value == RECIPE:
            path = str(self.recipe.value)
            if not path or path == ".":
                raise ConvscopeError("choose a recipe (.yaml), e.g. one of examples/")
            return load_recipe(path, [f"train.epochs={int(self.epochs.value)}", *extra])
        folder = str(self.folder.value)
        if not folder or folder == ".":
            raise ConvscopeError("choose a folder with images/ and masks/ (same file stems)")
        return folder_recipe(folder, self.task.value, int(self.epochs.value), extra)

    def start(self) -> Any:
        """Train in a background worker; returns the worker."""
        out = Path(str(self.out.value))
        if not str(self.out.value) or str(self.out.value) == ".":
            raise ConvscopeError("choose where to write the new run (a new folder)")
        config = self.config()
        self.history, self._cancel = [], threading.Event()
        self.curve.draw_rows([])
        self.progress.max, self.progress.value = config.train.epochs, 0
        def job() -> Path:
            train(config, out, log=lambda _m: None, cancel=self._cancel, on_epoch=self._relay.message.emit)
            if self._cancel.is_set():
                raise Cancelled(f"training cancelled; `convscope resume {out}` continues it")
            return out

        self._busy(True)
        self.status.value = f"training {config.model.name} -> {out} ..."
        self.worker = run_in_background(job, on_done=self._finished, on_error=lambda _m: self._busy(False))
        return self.worker

    def cancel(self) -> None:
        self._cancel.set()
        self.status.value = "cancelling ..."

    def _on_epoch(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        self.curve.draw_rows(self.history)
        self.progress.value = min(int(row["epoch"]), self.progress.max)
        self.status.value = f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f}"

    def _busy(self, busy: bool) -> None:
        self.start_button.enabled = not busy
        self.cancel_button.enabled = busy

    def _finished(self, out: Path) -> None:
        self._busy(False)
        self.curve.draw_rows(RunDir(out).read_history())
        self.progress.value = self.progress.max
        self.status.value = f"run written to {out}"
        if self.open_report.value:
            webbrowser.open((out / "report.html").resolve().as_uri())

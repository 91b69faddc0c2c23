"""**Segment**: a trained run on an image layer. The network output is cached per image; moving a threshold slider
re-decodes from the cache without running the network again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSlider, FloatSpinBox, Label, PushButton
from napari.layers import Image

from convscope.errors import ConvscopeError
from convscope.inference.rescale import resize_labels
from convscope.napari._common import guarded, layer_picker, run_in_background, session
from convscope.napari._model import LoadedModel, Pred, Size, builtin_models, class_result, load_model

RUN_DIRECTORY = "run directory ..."
#: Slider ranges of the decoding thresholds.
RANGES = {"prob": (0.01, 0.99), "nms": (0.05, 0.95), "flow": (0.0, 3.0)}


def planes(layer: Image) -> tuple[np.ndarray, tuple[int, ...]]:
    """The 2-D planes of an image layer: (N, H, W[, C]) and the leading shape they came from (() for one plane)."""
    data = np.asarray(layer.data)
    core = 3 if layer.rgb else 2
    lead = data.shape[: data.ndim - core]
    return data.reshape((-1, *data.shape[data.ndim - core:])), tuple(lead)


class SegmentWidget(Container):
    """Pick a model and an image layer, segment, tune thresholds live.

    The raw prediction of every plane is kept in :attr:`cache` (a list of tuples of arrays) with the size it was
    made at (:attr:`sizes`: a model that records its training object diameter predicts the plane resized to it);
    :meth:`redecode` turns it into labels at the slider thresholds, at the plane's size. Outputs:
    ``<image> labels`` (Labels), optionally ``<image> probability`` (Image) and ``<image> flows`` (Vectors).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.model: LoadedModel | None = None
        self.cache: list[Pred] = []
        self.sizes: list[Size] = []
        self.cache_key: tuple[int, tuple[int, ...], float] | None = None
        self.shape: tuple[int, ...] = ()
        self.last_output: np.ndarray | None = None
        self.worker: Any = None
        self.choice = ComboBox(label="model", choices=[RUN_DIRECTORY, *builtin_models()])
        self.run_dir = FileEdit(label="run directory", mode="d")
        self.load_button = PushButton(text="Load model")
        self.about = Label(label="task", value="(no model loaded)")
        self.normalization = Label(label="normalisation", value="")
        self.image = layer_picker(viewer, Image, "image")
        self.diameter = FloatSpinBox(label="object diameter (px)", min=0.0, max=2000.0, step=1.0, value=0.0,
                                     tooltip="Your objects' diameter in pixels: the image is rescaled so that they "
                                     "match the model's training size. 0 = estimate it from the image.",
                                     visible=False)
        self.thresholds = Container(labels=True)
        self.show_probability = CheckBox(text="probability layer", value=False)
        self.show_flows = CheckBox(text="flow vectors layer", value=False)
        self.run_button = PushButton(text="Segment")
        self.status = Label(value="")
        self.extend([self.choice, self.run_dir, self.load_button, self.about, self.normalization, self.image,
                     self.diameter, self.thresholds, self.show_probability, self.show_flows, self.run_button,
                     self.status])
        self.load_button.changed.connect(lambda: guarded(self._load_chosen))
        self.run_button.changed.connect(lambda: guarded(self.segment))
        session(viewer).segment = self

    # ------------------------------------------------------------------------------------------------ model
    def _load_chosen(self) -> None:
        if self.choice.value == RUN_DIRECTORY:
            if not str(self.run_dir.value) or str(self.run_dir.value) == ".":
                raise ConvscopeError("choose a run directory (the --out folder of `convscope train`) first")
            self.load(self.run_dir.value)
        else:
            self.load(self.choice.value)

    def load(self, name_or_path: str | Path) -> LoadedModel:
        """Load a run directory or built-in model; sliders start at its tuned thresholds."""
        model = load_model(name_or_path)
        self.model, self.cache, self.sizes, self.cache_key = model, [], [], None
        if Path(str(name_or_path)).is_dir():
            self.choice.value = RUN_DIRECTORY
            self.run_dir.value = str(name_or_path)
        self.about.value = f"{model.task} ({', '.join(model.class_names[1:]) or model.class_names[0]})"
        self.normalization.value = model.describe_normalization()
        self.diameter.visible = model.diameter is not None
        if model.diameter is not None:
            self.diameter.tooltip = (f"Your objects' diameter in pixels; the model was trained on objects of "
                                     f"{model.diameter:.1f} px. 0 = estimate it from the image.")
        self.thresholds.clear()
        for name, value in model.thresholds.items():
            low, high = RANGES.get(name, (0.0, 1.0))
            slider = FloatSlider(label=f"{name} threshold", min=low, max=high, step=0.01, value=float(value))
            slider.changed.connect(lambda v, n=name: self.set_threshold(n, v))
            self.thresholds.append(slider)
        self.status.value = f"loaded {model.path.name}"
        return model

    # ---------------------------------------------------------------------------------------------- segment
    def segment(self) -> Any:
        """Predict every plane of the chosen image layer in a background worker, then decode; returns the worker
        (None if the prediction is already cached: then only decoding runs)."""
        if self.model is None:
            raise ConvscopeError("load a model first (a run directory or a built-in model)")
        layer = self.image.value
        if layer is None:
            raise ConvscopeError("no image layer: open an image (File > Open, or File > Open Sample > convscope)")
        stack, lead = planes(layer)
        diameter = float(self.diameter.value) if model_diameter(self) else 0.0
        key = (id(layer.data), stack.shape, diameter)
        if key == self.cache_key and self.cache:
            self.redecode()
            return None
        model = self.model
        self.status.value = f"segmenting {len(stack)} plane(s) ..."
        self.run_button.enabled = False

        def work() -> list[tuple[Pred, Size]]:
            sized = [model.sized(plane, diameter or None) for plane in stack]
            return [(model.predict(image, layer.name), size) for image, size in sized]

        def done(results: list[tuple[Pred, Size]]) -> None:
            self.run_button.enabled = True
            if model is not self.model:
                return
            self.cache = [pred for pred, _ in results]
            self.sizes = [size for _, size in results]
            self.cache_key, self.shape = key, (*lead, *stack.shape[1:3])
            self.redecode()

        self.worker = run_in_background(work, on_done=done,
                                        on_error=lambda _m: setattr(self.run_button, "enabled", True))
        return self.worker

    def set_threshold(self, name: str, value: float) -> None:
        """Decode the cached prediction at a new threshold (no network call)."""
        if self.model is None:
            return
        self.model.set_thresholds({name: float(value)})
        if self.cache:
            guarded(self.redecode)

    def redecode(self) -> np.ndarray:
        """Labels of the cached prediction at the current thresholds, written to the output layers."""
        model, layer = self.model, self.image.value
        if model is None or layer is None or not self.cache:
            raise ConvscopeError("nothing to decode yet: press Segment first")
        hw = self.shape[-2:]
        if model.task == "classification":
            return self._classify(layer)
        labels, offset = [], 0
        for pred, sized in zip(self.cache, self.sizes, strict=True):
            lab = model.decode(pred, sized.shape).astype(np.uint32)
            if sized.scale != 1.0:
                lab = resize_labels(lab, hw)
            if model.task in ("stardist", "flows"):
                lab[lab > 0] += offset  # ids unique across planes
                offset = max(offset, int(lab.max()))
            labels.append(lab)
        out = np.stack(labels).reshape(self.shape)
        self._write_labels(layer.name, out, layer)
        self._write_extras(layer)
        n = offset if model.task in ("stardist", "flows") else int((out > 0).sum())
        what = "objects" if model.task in ("stardist", "flows") else "foreground pixels"
        self.status.value = (f"{n} {what} ({', '.join(f'{k} {v:.2f}' for k, v in model.thresholds.items())})"
                             f"{describe_size(self.sizes)}")
        return out

    @property
    def labels_layer(self) -> napari.layers.Labels | None:
        layer = self.image.value
        name = f"{layer.name} labels" if layer is not None else None
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _write_labels(self, name: str, labels: np.ndarray, image: Image) -> None:
        target = f"{name} labels"
        if target in self.viewer.layers:
            existing = self.viewer.layers[target]
            edited = self.last_output is None or existing.data.shape != self.last_output.shape or not np.array_equal(
                existing.data, self.last_output)
            if edited:  # never overwrite what the user painted: keep it under another name
                existing.name = f"{target} (edited)"
            else:
                existing.data = labels
                self.last_output = labels.copy()
                return
        self.viewer.add_labels(labels, name=target, scale=image.scale[-labels.ndim:],
                               translate=image.translate[-labels.ndim:])
        self.last_output = labels.copy()

    def _write_extras(self, image: Image) -> None:
        model = self.model
        assert model is not None
        if self.show_probability.value:
            probs = [model.probability(p) for p in self.cache]
            if probs[0] is not None:
                data = np.stack(probs).reshape((*self.shape[:-2], *probs[0].shape))
                grid = model.grid / self.sizes[0].scale  # image pixels per probability pixel
                scale = (*image.scale[: data.ndim - 2], *(s * grid for s in image.scale[-2:]))
                self._replace(f"{image.name} probability", lambda n: self.viewer.add_image(
                    data, name=n, colormap="magma", blending="additive", opacity=0.6, contrast_limits=(0, 1),
                    scale=scale))
        if self.show_flows.value and model.task == "flows" and not self.shape[:-2]:
            vectors = flow_vectors(self.cache[0][0])
            self._replace(f"{image.name} flows", lambda n: self.viewer.add_vectors(
                vectors, name=n, edge_color="cyan", length=3.0, edge_width=0.5))

    def _replace(self, name: str, add: Any) -> None:
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        add(name)

    def _classify(self, layer: Image) -> np.ndarray:
        """The class of the layer (probabilities averaged over its planes) and of each plane of a stack, in the
        layer's metadata (``convscope``: ``class``, ``probabilities``[, ``planes``]) and the status line."""
        model = self.model
        assert model is not None
        names = model.class_names
        probs = np.stack([model.class_probabilities(p) for p in self.cache])
        mean = probs.mean(0)
        k = int(mean.argmax())
        result: dict[str, Any] = class_result(names, mean)
        self.status.value = f"{layer.name}: {names[k]} (p = {mean[k]:.2f}; " + ", ".join(
            f"{n} {p:.2f}" for n, p in zip(names, mean, strict=True)) + ")"
        if len(probs) > 1:
            result["planes"] = [class_result(names, p) for p in probs]
            counts = np.bincount(probs.argmax(1), minlength=len(names))
            self.status.value += f"; {len(probs)} planes: " + ", ".join(
                f"{n} {c}" for n, c in zip(names, counts, strict=True))
        layer.metadata["convscope"] = result
        return probs


def model_diameter(widget: SegmentWidget) -> float | None:
    """The loaded model's training object diameter (pixels), if it records one."""
    return widget.model.diameter if widget.model is not None else None


def describe_size(sizes: list[Size]) -> str:
    """``; object diameter 20.0 px (estimated), image scaled by 0.5`` for the status line ('' without resizing)."""
    used = [s for s in sizes if s.diameter is not None]
    if not used:
        return ""
    diameters = sorted({round(s.diameter, 1) for s in used})
    scales = sorted({round(s.scale, 3) for s in used})
    how = "estimated" if any(s.estimated for s in used) else "given"
    return (f"; object diameter {'/'.join(f'{d:g}' for d in diameters)} px ({how}), image scaled by "
            f"{'/'.join(f'{s:g}' for s in scales)}")


def flow_vectors(flows: np.ndarray, step: int = 4) -> np.ndarray:
    """napari vectors (N, 2, 2) float32 (position, direction in y, x) of flows (2, H, W), every ``step`` pixels
    where the flow is not ~0."""
    ys, xs = np.mgrid[step // 2 : flows.shape[1] : step, step // 2 : flows.shape[2] : step]
    dy, dx = flows[0][ys, xs], flows[1][ys, xs]
    keep = np.hypot(dy, dx) > 0.05
    pos = np.stack([ys[keep], xs[keep]], 1).astype(np.float32)
    return np.stack([pos, np.stack([dy[keep], dx[keep]], 1).astype(np.float32)], 1)

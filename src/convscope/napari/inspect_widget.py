"""**Inspect**: what a convolution layer of the Segment widget's model sees in the current image (its feature maps,
one plane per filter) and the filters of the first convolution."""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
import torch
from magicgui.widgets import ComboBox, Container, Label, PushButton
from napari.layers import Image

from convscope.errors import ConvscopeError
from convscope.napari._common import guarded, layer_picker, run_in_background, session
from convscope.napari._model import LoadedModel
from convscope.napari.segment import planes

#: Feature maps are computed on a centred crop of at most this side (pixels), to stay fast on a CPU.
MAX_SIDE = 512


def conv_layers(network: torch.nn.Module) -> list[str]:
    """Names of the 2-D convolutions of ``network``, in forward order of definition."""
    return [name for name, module in network.named_modules() if isinstance(module, torch.nn.Conv2d)]


@torch.no_grad()
def feature_maps(model: LoadedModel, image: np.ndarray, layer: str) -> np.ndarray:
    """Output of convolution ``layer`` for ``image`` (H, W[, C]) normalised as in training: (filters, h, w)
    float32 (a centred crop of at most :data:`MAX_SIDE` pixels a side)."""
    h, w = image.shape[:2]
    top, left = max(0, (h - MAX_SIDE) // 2), max(0, (w - MAX_SIDE) // 2)
    image = image[top: top + MAX_SIDE, left: left + MAX_SIDE]
    module = dict(model.network.named_modules())[layer]
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out.detach()))
    try:
        device = next(model.network.parameters()).device
        model.network(model.normalized(image).to(device))
    finally:
        handle.remove()
    return seen[0][0].float().cpu().numpy()


def first_filters(network: torch.nn.Module) -> np.ndarray:
    """Kernels of the first convolution, averaged over input channels: (filters, k, k) float32."""
    first = next(m for m in network.modules() if isinstance(m, torch.nn.Conv2d))
    return first.weight.detach().float().cpu().numpy().mean(1)


class InspectWidget(Container):
    """Feature maps of a chosen convolution layer, and the first layer's filters, as image stacks."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.image = layer_picker(viewer, Image, "image")
        self.layer = ComboBox(label="conv layer", choices=self._layer_names)
        self.refresh_button = PushButton(text="Refresh layers from the Segment model")
        self.maps_button = PushButton(text="Show feature maps")
        self.filters_button = PushButton(text="Show first-layer filters")
        self.status = Label(value="")
        self.extend([self.image, self.refresh_button, self.layer, self.maps_button, self.filters_button,
                     self.status])
        self.refresh_button.changed.connect(self.layer.reset_choices)
        self.maps_button.changed.connect(lambda: guarded(self.show_feature_maps))
        self.filters_button.changed.connect(lambda: guarded(self.show_filters))
        self.worker: Any = None

    def _model(self) -> LoadedModel:
        segment = session(self.viewer).segment
        if segment is None or segment.model is None:
            raise ConvscopeError("load a model in the Segment widget first")
        return segment.model

    def _layer_names(self, _widget: Any = None) -> list[str]:
        segment = session(self.viewer).segment
        return conv_layers(segment.model.network) if segment is not None and segment.model is not None else []

    def show_feature_maps(self) -> Any:
        """Add ``features <layer>`` (filters, h, w) for the plane of the image on screen; returns the worker."""
        model = self._model()
        self.layer.reset_choices()
        name = self.layer.value
        layer = self.image.value
        if layer is None or name is None:
            raise ConvscopeError("choose an image layer and a convolution layer")
        stack, _ = planes(layer)
        plane = stack[min(self.viewer.dims.current_step[0], len(stack) - 1)] if len(stack) > 1 else stack[0]

        def done(maps: np.ndarray) -> None:
            title = f"features {name}"
            if title in self.viewer.layers:
                self.viewer.layers.remove(title)
            scale = plane.shape[0] / maps.shape[1] if plane.shape[0] <= MAX_SIDE else 1.0
            self.viewer.add_image(maps, name=title, colormap="viridis", scale=(1, scale, scale))
            self.status.value = f"{name}: {maps.shape[0]} feature maps of {maps.shape[1]} x {maps.shape[2]}"

        self.worker = run_in_background(feature_maps, model, plane, name, on_done=done)
        return self.worker

    def show_filters(self) -> np.ndarray:
        """Add ``first-layer filters`` (filters, k, k)."""
        kernels = first_filters(self._model().network)
        if "first-layer filters" in self.viewer.layers:
            self.viewer.layers.remove("first-layer filters")
        self.viewer.add_image(kernels, name="first-layer filters", colormap="gray", interpolation2d="nearest")
        self.status.value = f"{kernels.shape[0]} filters of {kernels.shape[1]} x {kernels.shape[2]}"
        return kernels

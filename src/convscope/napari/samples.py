"""Sample data (File > Open Sample > convscope): generated nuclei and bacteria with their ground truth, and a small
real fluorescence nucleus crop of DSB 2018 (CC0, see ``data/LICENSE.md``)."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import numpy as np

from convscope.datasets.bacteria import make_synthetic_bacteria
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.io.image import read_image

LayerData = tuple[np.ndarray, dict[str, Any], str]


def synthetic_nuclei() -> list[LayerData]:
    """A generated fluorescence image of touching nuclei (256 x 256 uint16) and its instance labels."""
    images, labels = make_synthetic_nuclei(1, size=(256, 256), seed=2026)
    return [(images[0], {"name": "nuclei"}, "image"), (labels[0], {"name": "nuclei ground truth"}, "labels")]


def synthetic_bacteria() -> list[LayerData]:
    """A generated phase-contrast image of bacteria (256 x 256 uint16) and its instance labels."""
    images, labels = make_synthetic_bacteria(1, size=(256, 256), seed=2026)
    return [(images[0], {"name": "bacteria"}, "image"), (labels[0], {"name": "bacteria ground truth"}, "labels")]


def dsb2018_nuclei() -> list[LayerData]:
    """A real 128 x 128 fluorescence crop of DSB 2018 (uint8) with its 18 annotated nuclei."""
    folder = files("convscope.napari") / "data"
    image = read_image(str(folder / "dsb2018_nuclei.png"))
    labels = read_image(str(folder / "dsb2018_nuclei_labels.png"))
    image = image[..., 0] if image.ndim == 3 else image
    return [(image, {"name": "dsb2018 nuclei"}, "image"),
            (labels.astype(np.uint16), {"name": "dsb2018 nuclei ground truth"}, "labels")]

"""New images prepared as a run's training images were: channels picked, a constant alpha dropped, colour converted
to the run's channel count (as ``data.color`` does in training), a classifier's resize.

Every change that is not the identity is said once, in one line (:class:`InputPreparation` collects them), and
anything that cannot be made to fit is a :class:`ConvscopeError` naming the file and the option that fixes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from convscope.datasets.folders import convert_color, resize_image, to_gray, to_rgb
from convscope.errors import ConvscopeError
from convscope.io.image import read_image

Color = Literal["auto", "gray", "rgb"]
_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16))


def parse_channels(text: str | None) -> tuple[int, ...] | None:
    """``--channels 0`` or ``--channels 0,2`` as 0-based channel indices (None when not given)."""
    if text is None:
        return None
    try:
        picked = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConvscopeError(f"--channels {text}: expected 0-based channel indices such as 0 or 0,1,2") from None
    if not picked or min(picked) < 0:
        raise ConvscopeError(f"--channels {text}: expected 0-based channel indices such as 0 or 0,1,2")
    return picked


@dataclass
class InputPreparation:
    """How files become model inputs for one run.

    Attributes
    ----------
    channels : int
        Channels the model takes.
    color : {"auto", "gray", "rgb"}
        The run's ``data.color`` or ``--color``: ``auto`` converts grey <-> RGB to the model's channel count.
    pick : tuple of int, optional
        ``--channels``: keep these channels (0-based) first.
    resize : (int, int), optional
        A classifier's ``data.resize``.
    size : (int, int), optional
        A classifier's input (H, W): a file of another size is refused (unless resized).
    log : callable, optional
        Hears each kind of conversion once.
    """

    channels: int
    color: Color = "auto"
    pick: tuple[int, ...] | None = None
    resize: tuple[int, int] | None = None
    size: tuple[int, int] | None = None
    log: Callable[[str], None] | None = None
    said: set[str] = field(default_factory=set)

    def load(self, path: Path) -> np.ndarray:
        """The file ``path`` as the model's input: (H, W, C) uint8 or uint16, C = :attr:`channels`."""
        image = read_image(path)
        if image.dtype not in _DTYPES:
            raise ConvscopeError(f"{path}: {image.dtype} images are not supported; save the images as 8-bit or "
                                 "16-bit unsigned integers (uint8/uint16)")
        return self.fit(image, str(path))

    def fit(self, image: np.ndarray, source: str) -> np.ndarray:
        """An image already in memory, (H, W) or (H, W, C), made the model's input as :meth:`load` makes a file's:
        channels fitted (:meth:`prepare`), a classifier's resize applied and its input size checked; ``source``
        names it in errors and notes."""
        image = self.prepare(image[:, :, None] if image.ndim == 2 else image, source)
        if self.resize is not None:
            image = resize_image(image, self.resize)
        if self.size is not None and image.shape[:2] != self.size:
            h, w = self.size
            raise ConvscopeError(f"{source}: image is {'x'.join(map(str, image.shape))} but the model takes "
                                 f"{h}x{w}x{self.channels}; retrain with data.resize set")
        return image

    def prepare(self, image: np.ndarray, source: str) -> np.ndarray:
        """Channels of one (H, W, C) image made to fit the model (see the module docstring)."""
        notes: list[str] = []
        if self.pick is not None:
            image = _pick(image, self.pick, source)
            notes.append(f"channels {','.join(map(str, self.pick))} kept")
        c = image.shape[2]
        if self.pick is None and c in (2, 4) and _constant(image[:, :, -1]):
            image, c = image[:, :, :-1], c - 1
            notes.append("its constant alpha channel dropped")
        if self.color == "auto" and c in (2, 4):
            raise ConvscopeError(f"{source}: image has an alpha channel that is not constant ({c} channels); "
                                 "--color gray or --color rgb drops it, --channels picks channels")
        if self.color != "auto":
            image = convert_color(image, self.color, source=source)
        elif c != self.channels and {c, self.channels} == {1, 3}:
            image = to_gray(image) if self.channels == 1 else to_rgb(image)
            notes.append("RGB converted to grey (BT.601 luminance, as data.color: gray)" if self.channels == 1
                         else "grey repeated as RGB (as data.color: rgb)")
        if image.shape[2] != self.channels:
            raise ConvscopeError(f"{source}: image has {image.shape[2]} channel(s) but the model takes "
                                 f"{self.channels}; choose them with --channels (0-based, e.g. --channels 0) or "
                                 "--color gray / rgb")
        self._say(notes, source)
        return image

    def _say(self, notes: Sequence[str], source: str) -> None:
        key = "; ".join(notes)
        if not key or key in self.said:
            return
        self.said.add(key)
        if self.log is not None:
            self.log(f"{source}: {key} for the model's {self.channels} channel(s) (and so for every image like it; "
                     "--color / --channels choose otherwise)")


def _constant(plane: np.ndarray) -> bool:
    return bool((plane == plane.flat[0]).all())


def _pick(image: np.ndarray, pick: tuple[int, ...], source: str) -> np.ndarray:
    c = image.shape[2]
    if max(pick) >= c:
        raise ConvscopeError(f"{source}: --channels {','.join(map(str, pick))} but the image has {c} channel(s) "
                             f"(0 to {c - 1})")
    return image[:, :, list(pick)]

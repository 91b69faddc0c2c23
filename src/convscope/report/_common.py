"""Helpers shared by the report modules: safe matplotlib text, PNG encoding, atomic figure saving."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

from matplotlib.figure import Figure

from convscope.io.atomic import atomic_path

#: Resolution of saved figures (dots per inch).
DPI = 120


def mpl_text(text: object, *, max_len: int | None = None) -> str:
    """``text`` as a string matplotlib shows literally: ``$`` does not start mathtext; long text is cut."""
    s = str(text)
    if max_len is not None and len(s) > max_len:
        s = s[: max_len - 1] + "\u2026"
    return s.replace("$", r"\$")


def figure_png(fig: Figure, *, dpi: int = DPI) -> bytes:
    """Render ``fig`` to PNG bytes (Agg, without pyplot), cropped to its content so no label is cut off."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", bbox_inches="tight", pad_inches=0.08)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = DPI) -> Path:
    """Write ``fig`` as a PNG to ``path`` atomically; return the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(figure_png(fig, dpi=dpi))
    return path


def png_data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI embedding ``png``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")

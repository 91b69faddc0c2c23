"""Progress of a long prediction: files done, and tiles done of the image being predicted, with the time left.

A progress callback is called as ``progress(what, done, total)`` with ``what`` = ``"files"`` or ``"tiles"``; the CLI
draws :class:`TerminalProgress` (tqdm bars with rates and the estimated time left, on a terminal only), the napari
plugin or a test passes its own callable.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm

Progress = Callable[[str, int, int], None]


class TerminalProgress:
    """Two tqdm bars on stderr: one over files, one over the tiles of the current image (each with its rate and
    the estimated time left).

    Parameters
    ----------
    file : text stream, optional
        Default: ``sys.stderr``.
    disable : bool or None
        None (default): shown only when ``file`` is a terminal, as tqdm decides.
    """

    def __init__(self, *, file: TextIO | None = None, disable: bool | None = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.disable = disable
        self._bars: dict[str, Any] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        bar = self._bars.get(what)
        if bar is None or bar.total != total or done < bar.n:
            if bar is not None:
                bar.close()
            unit = "img" if what == "files" else "tile"
            bar = tqdm(total=total, desc="predict" if what == "files" else "  tiles", unit=unit, file=self.file,
                       disable=self.disable, leave=what == "files", position=0 if what == "files" else 1,
                       dynamic_ncols=True)
            self._bars[what] = bar
        bar.update(done - bar.n)

    def close(self) -> None:
        """Close the bars (the files bar stays on screen)."""
        for what in ("tiles", "files"):
            bar = self._bars.pop(what, None)
            if bar is not None:
                bar.close()

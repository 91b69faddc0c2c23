"""Where a prediction writes, without losing anything: unique output names, an ``--out`` that is refused when it
would overwrite, and a CSV written as the images are predicted.

* :func:`output_names`: every input file gets its own output name, its path relative to the folder the inputs share
  (``a/x.png`` and ``b/x.png`` -> ``a/x``, ``b/x``); files that would still collide (``x.png`` + ``x.tif``) keep
  their suffix in the name (``x_png``, ``x_tif``).
* :func:`output_folder`: refuses an ``--out`` that is a file, holds input images, or is not empty (unless
  ``overwrite``); removes the folder again when it made it and the prediction failed before writing anything.
* :class:`RowsAsYouGo`: CSV rows appended and flushed as each image is done, to ``<out>.partial``, renamed onto
  ``out`` at the end; after a failure the rows done so far stay in ``<out>.partial`` and the error says so.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, TextIO

from convscope.errors import ConvscopeError
from convscope.io.atomic import write_error


def output_names(files: Sequence[Path]) -> list[PurePath]:
    """A unique relative name (no suffix) per input file, in the order of ``files``.

    Parameters
    ----------
    files : sequence of Path
        Input images (distinct files).

    Returns
    -------
    list of PurePath
        Each file's path relative to the deepest folder all files share, without its suffix; where two files
        would get the same name (same stem, other suffix) the suffix is kept as ``<stem>_<suffix>``.
    """
    absolute = [Path(os.path.abspath(f)) for f in files]
    if not absolute:
        return []
    common = Path(os.path.commonpath([p.parent for p in absolute]))
    names = [p.relative_to(common).with_suffix("") for p in absolute]
    clashes = {name for name, n in Counter(names).items() if n > 1}
    return [name.with_name(f"{name.name}_{p.suffix.lstrip('.').lower()}") if name in clashes else name
            for name, p in zip(names, absolute, strict=True)]


def _is_under(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


@contextmanager
def output_folder(out: Path, files: Sequence[Path], *, overwrite: bool = False) -> Iterator[Path]:
    """The ``--out`` folder of a segmentation, checked and created; removed again if this call made it and the
    block fails while it is still empty.

    Raises
    ------
    ConvscopeError
        ``out`` is a file, holds input images (inputs are never overwritten), or is a non-empty folder and
        ``overwrite`` is false.
    """
    if out.exists() and not out.is_dir():
        raise ConvscopeError(f"--out {out}: is a file; give a folder for the outputs")
    if any(_is_under(f, out) for f in files):
        raise ConvscopeError(f"--out {out}: holds input images; choose another folder (inputs are never overwritten)")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConvscopeError(f"--out {out}: is not empty; choose a new folder or pass --overwrite (files of the same "
                             "name are then replaced)")
    made = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(out, err) from None
    try:
        yield out
    except BaseException:
        if made and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


class RowsAsYouGo:
    """A CSV file written row by row as results come, complete at ``path`` only at the end.

    Rows go to ``<path>.partial`` (flushed after every :meth:`add`); leaving the ``with`` block normally renames
    it onto ``path``. An exception keeps the partial file when it holds rows and re-raises a
    :class:`ConvscopeError` that says where they are (an :class:`OSError` becomes one too).

    Parameters
    ----------
    path : Path
        The final CSV file.
    header : sequence of str
    overwrite : bool
        Replace an existing ``path`` (and a stale ``<path>.partial``); else they are refused.
    """

    def __init__(self, path: Path, header: Sequence[str], *, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.header = list(header)
        self.rows = 0
        for existing in (self.path, self.partial):
            if existing.exists() and not overwrite:
                raise ConvscopeError(f"--out {existing}: already exists; choose another name or pass --overwrite")
        self._file: TextIO | None = None

    def __enter__(self) -> RowsAsYouGo:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.partial.open("w", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            self._writer.writerow(self.header)
            self._file.flush()
        except OSError as err:
            raise write_error(self.path, err) from None
        return self

    def add(self, rows: Sequence[Sequence[Any]]) -> None:
        """Append ``rows`` and flush them to disk."""
        assert self._file is not None, "use RowsAsYouGo in a with block"
        try:
            self._writer.writerows(rows)
            self._file.flush()
        except OSError as err:
            raise write_error(self.path, err) from None
        self.rows += len(rows)

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._file is not None
        try:
            self._file.close()
        except OSError as close_err:
            err = err or close_err
        if err is None:
            try:
                os.replace(self.partial, self.path)
            except OSError as replace_err:
                raise write_error(self.path, replace_err) from None
            return
        if not self.rows:
            self.partial.unlink(missing_ok=True)
        if isinstance(err, ConvscopeError | OSError):
            message = str(err) if isinstance(err, ConvscopeError) else str(write_error(self.path, err))
            kept = (f"; the {self.rows} result row(s) written before it are in {self.partial}" if self.rows
                    else "")
            raise ConvscopeError(message + kept) from None

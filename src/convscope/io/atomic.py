"""Atomic writes: a temporary file in the target folder, then an atomic rename.

An OS error while writing (a full disk, a read-only folder, a parent that is a file) becomes a one-line
:class:`~convscope.errors.ConvscopeError` naming the file; the target is left as it was.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from convscope.errors import ConvscopeError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    A crash or an exception inside the block leaves ``path`` as it was (or absent) and removes the
    temporary file. The file gets the usual permissions (``0666`` less the umask), whoever wrote the temporary
    file. An :class:`OSError` (inside the block too) is raised as :class:`ConvscopeError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise write_error(path, err) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600, and some writers replace the file
        os.replace(tmp_path, path)
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def write_error(path: str | os.PathLike[str], err: OSError) -> ConvscopeError:
    """The one-line error of an :class:`OSError` met while writing ``path``, with the likely fix."""
    reason = err.strerror or type(err).__name__
    fixes = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space",
             errno.EACCES: "choose a folder you can write to", errno.EPERM: "choose a folder you can write to",
             errno.EROFS: "choose a folder you can write to", errno.ENOTDIR: "a parent of it is a file; choose "
             "another path", errno.EEXIST: "a parent of it is a file; choose another path"}
    fix = fixes.get(err.errno or 0, "check the path")
    return ConvscopeError(f"{path}: cannot write ({reason}); {fix} (nothing was replaced)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a new temporary folder beside ``path``; when the block succeeds it becomes ``path`` (an existing
    ``path`` is replaced only with ``overwrite``, and removed only once the new folder is complete).

    A crash or an exception inside the block leaves ``path`` as it was and removes the temporary folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise FileExistsError(path)
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

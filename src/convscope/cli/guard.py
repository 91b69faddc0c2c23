"""What the command line does around every command: warnings on one line, OS errors and SIGTERM as one line with
an exit code, and where an interrupted training run stands (so the user hears that it can be resumed)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

#: Exit code after SIGTERM (128 + 15, as a shell reports it).
EXIT_TERMINATED = 143


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM (not an :class:`Exception`, so that no
    ``except Exception`` swallows it on the way out)."""


_state: dict[str, Path | None] = {"run": None}


def training_run(path: Path) -> None:
    """Remember the run directory a command trains into, for the message after an interruption."""
    _state["run"] = Path(path)


def interrupted_message(how: str) -> str:
    """One line: ``how`` the command stopped and, for a training command, what the run keeps and how to resume."""
    from convscope.runs.layout import RunDir

    path = _state["run"]
    if path is None:
        return f"{how} (a training run can be continued with `convscope resume RUN`)"
    run = RunDir(path)
    if not run.checkpoint.is_file():
        return f"{how}: {path} finished no epoch, so there is nothing to resume; remove it and train again"
    epochs = len(run.read_history())
    return (f"{how}: {path} keeps its checkpoint after epoch {epochs}; `convscope resume {path}` continues "
            "the run")


def os_error_message(err: OSError) -> str:
    """An :class:`OSError` as one line naming the file."""
    where = f"{err.filename}: " if err.filename else ""
    return f"{where}{err.strerror or err} (check the path, its permissions and the free disk space)"


def _one_line(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    shown = _shown.setdefault(category, 0)
    _shown[category] = shown + 1
    if shown == 0:
        from tqdm import tqdm

        tqdm.write(f"warning: {str(message).splitlines()[0]}", file=sys.stderr)


_shown: dict[type[Warning], int] = {}


@contextmanager
def guarded() -> Iterator[None]:
    """Run a command with warnings shown as one line each (the first of each kind), ignite's log of the exception
    that ends a training run silenced (the CLI reports it) and SIGTERM raised as :class:`Terminated` in the main
    thread; the previous handlers and levels are restored afterwards."""
    _state["run"] = None
    _shown.clear()
    previous_show = warnings.showwarning
    warnings.showwarning = _one_line
    ignite = logging.getLogger("ignite")  # it logs the exception that ends a run; the CLI says it in one line
    previous_level = ignite.level
    ignite.setLevel(logging.CRITICAL)
    previous_term: Callable[..., Any] | int | None = None
    if _main_thread():
        previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line
            yield
    finally:
        warnings.showwarning = previous_show
        ignite.setLevel(previous_level)
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


__all__ = ["EXIT_TERMINATED", "Terminated", "guarded", "interrupted_message", "os_error_message", "training_run"]

"""What every widget shares: background work that reports user errors as one notification, the per-viewer session
(the model the Segment widget uses, so Correct & retrain can switch it), and layer pickers."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import napari
from magicgui.widgets import ComboBox
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal

from convscope.errors import ConvscopeError


@dataclass(frozen=True)
class Outcome:
    """The result of background work: ``value`` or a one-line ``error`` (never both)."""

    value: Any = None
    error: str | None = None


def _guarded(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Outcome:
    try:
        return Outcome(func(*args, **kwargs))
    except ConvscopeError as err:
        return Outcome(error=str(err))
    except Exception as err:  # an unexpected failure still reaches the user as one line, not a traceback dialog
        return Outcome(error=f"{type(err).__name__}: {err}")


def run_in_background(func: Callable[..., Any], *args: Any, on_done: Callable[[Any], None],
                      on_error: Callable[[str], None] | None = None, **kwargs: Any) -> Any:
    """Run ``func(*args, **kwargs)`` in a thread worker; ``on_done(value)`` in the GUI thread, or a user error as
    one napari notification (then ``on_error(message)``). Returns the started worker; its attribute ``outcome`` is
    None until the work is done and handled, then the :class:`Outcome`."""

    def finish(outcome: Outcome) -> None:
        worker.outcome = outcome
        if outcome.error is None:
            on_done(outcome.value)
            return
        show_error(outcome.error)
        if on_error is not None:
            on_error(outcome.error)

    worker = create_worker(_guarded, func, *args, **kwargs)
    worker.outcome = None
    worker.returned.connect(finish)
    worker.start()
    return worker


def guarded(func: Callable[[], Any]) -> Any:
    """Run ``func`` now; a user error becomes one notification (returns None)."""
    outcome = _guarded(func)
    if outcome.error is not None:
        show_error(outcome.error)
    return outcome.value


class Relay(QObject):
    """Carries values from a worker thread to the GUI thread (Qt queues cross-thread signals)."""

    message = Signal(object)


@dataclass
class Session:
    """Per-viewer state shared by the widgets: the Segment widget, once docked."""

    segment: Any = None
    listeners: list[Callable[[], None]] = field(default_factory=list)


_SESSIONS: weakref.WeakKeyDictionary[napari.Viewer, Session] = weakref.WeakKeyDictionary()


def session(viewer: napari.Viewer) -> Session:
    """The session of ``viewer`` (made on first use)."""
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = Session()
    return _SESSIONS[viewer]


def layer_picker(viewer: napari.Viewer, kind: type, label: str) -> ComboBox:
    """A drop-down of the viewer's layers of type ``kind``, kept up to date as layers come and go."""

    def choices(_widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kind)]

    box = ComboBox(label=label, choices=choices, nullable=False)
    for event in (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.layers.events.reordered):
        event.connect(lambda _e: box.reset_choices())
    return box


def info(message: str) -> None:
    """A one-line notification."""
    show_info(message)

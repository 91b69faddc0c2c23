"""The napari plugin: Segment, Correct & retrain, Train, Inspect and Evaluate widgets (npe2 manifest
``napari.yaml``), sample data, and ``convscope gui``. The top floor: nothing below imports from here.

Needs the extra: ``pip install 'convscope[napari]'`` (napari, magicgui, qtpy) and a Qt binding (napari's own
``pip install 'napari[all]'`` brings PyQt5).
"""

from __future__ import annotations

from convscope.errors import ConvscopeError

INSTALL_HINT = "the napari plugin needs its extra: pip install 'convscope[napari]' (and a Qt binding, e.g. PyQt5)"


def require_napari() -> None:
    """Raise :class:`ConvscopeError` with the install hint when napari, magicgui or a Qt binding is missing."""
    try:
        import magicgui  # noqa: F401
        import napari  # noqa: F401
        from qtpy import QtCore  # noqa: F401
    except Exception:  # ImportError, or qtpy's error for a missing binding
        raise ConvscopeError(INSTALL_HINT) from None

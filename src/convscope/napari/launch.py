"""``convscope gui``: napari with the convscope widgets docked."""

from __future__ import annotations

from collections.abc import Sequence

from convscope.napari import require_napari

#: Display name -> widget class path, the order they are docked (the names of the npe2 manifest).
WIDGETS = {
    "Segment": "convscope.napari.segment:SegmentWidget",
    "Correct & retrain": "convscope.napari.correct:CorrectWidget",
    "Train": "convscope.napari.train_widget:TrainWidget",
    "Inspect": "convscope.napari.inspect_widget:InspectWidget",
    "Evaluate": "convscope.napari.evaluate:EvaluateWidget",
}


def dock_all(viewer: object) -> dict[str, object]:
    """Dock every convscope widget in ``viewer`` (right side, tabbed); returns them by display name."""
    from importlib import import_module

    docked = {}
    for name, target in WIDGETS.items():
        module, cls = target.split(":")
        widget = getattr(import_module(module), cls)(viewer)
        viewer.window.add_dock_widget(widget, name=name, area="right", tabify=name != "Segment")  # type: ignore[attr-defined]
        docked[name] = widget
    return docked


def launch(images: Sequence[str] = (), *, run: bool = True) -> object:
    """Open napari with the widgets docked and ``images`` (images, or convscope outputs: a run directory is loaded
    in the Segment widget, a prediction's output opens with its source images; see
    :mod:`convscope.napari.reader`); blocks until the window closes when ``run``."""
    require_napari()
    import napari

    from convscope.napari.reader import get_reader

    viewer = napari.Viewer(title="convscope")
    dock_all(viewer)
    for path in images:
        viewer.open(path, plugin="convscope" if get_reader(path) is not None else None)
    if run:
        napari.run()
    return viewer

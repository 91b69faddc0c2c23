"""The plugin's packaging: the install hint without the extra, the npe2 manifest, sample data, `convscope gui`."""

from __future__ import annotations

import sys
from importlib.resources import files
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from convscope.cli.main import app
from convscope.errors import ConvscopeError
from convscope.napari import INSTALL_HINT, require_napari


def test_missing_extra_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "napari", None)  # import napari -> ImportError
    with pytest.raises(ConvscopeError, match=r"pip install 'convscope\[napari\]'"):
        require_napari()
    monkeypatch.delitem(sys.modules, "convscope.napari.launch", raising=False)
    result = CliRunner().invoke(app, ["gui"])
    assert result.exit_code == 1 and isinstance(result.exception, ConvscopeError)  # `convscope` prints it, exit 2
    assert str(result.exception) == INSTALL_HINT


def test_manifest_is_valid_and_names_importable_callables() -> None:
    pytest.importorskip("napari", reason="needs the napari extra")
    from importlib import import_module

    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(str(files("convscope.napari") / "napari.yaml"))
    manifest.validate_imports()
    assert [w.display_name for w in manifest.contributions.widgets] == [
        "Segment", "Correct & retrain", "Train", "Inspect", "Evaluate"]
    for command in manifest.contributions.commands:
        module, name = command.python_name.split(":")
        assert callable(getattr(import_module(module), name))
    (reader,) = manifest.contributions.readers
    assert reader.command == "convscope.get_reader" and reader.accepts_directories  # run and output folders
    assert reader.filename_patterns == ["*.csv"]  # predictions.csv, a classifier's CSV; not every image file


def test_sample_data() -> None:
    from convscope.napari import samples

    for make in (samples.synthetic_nuclei, samples.synthetic_bacteria, samples.dsb2018_nuclei):
        (image, _meta, kind), (labels, _lmeta, lkind) = make()
        assert (kind, lkind) == ("image", "labels")
        assert image.ndim == 2 and image.shape == labels.shape and image.std() > 0
        assert labels.dtype == np.uint16 and labels.max() >= 5
    assert (files("convscope.napari") / "data" / "LICENSE.md").read_text().count("CC0") >= 1


@pytest.mark.gui
def test_gui_docks_every_widget(make_napari_viewer: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("napari", reason="needs the napari extra")
    import napari

    from convscope.io.image import write_image
    from convscope.napari.launch import WIDGETS, launch

    write_image(tmp_path / "cells.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    made: list[Any] = []
    monkeypatch.setattr(napari, "Viewer", lambda **kw: made.append(make_napari_viewer(**kw)) or made[-1])
    viewer = launch([str(tmp_path / "cells.tif")], run=False)
    assert [layer.name for layer in viewer.layers] == ["cells"]
    assert set(WIDGETS) <= set(viewer.window.dock_widgets)


@pytest.mark.gui
def test_every_widget_docks_from_the_plugins_menu(make_napari_viewer: Any) -> None:
    """napari gives a plugin widget its viewer by the annotation of its parameter (``napari.viewer.Viewer``)."""
    pytest.importorskip("napari", reason="needs the napari extra")
    from convscope.napari.launch import WIDGETS

    viewer = make_napari_viewer()
    for name, target in WIDGETS.items():
        _dock, widget = viewer.window.add_plugin_dock_widget("convscope", name)
        assert type(widget).__name__ == target.split(":")[1] and widget.viewer is not None

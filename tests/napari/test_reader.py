"""The napari reader of convscope outputs, opened as a user opens them (``viewer.open(PATH, plugin="convscope")``,
what File > Open does once convscope is chosen): a `predict` output folder with its source images, an OME-Zarr
label image lazily, a classifier's CSV, a run directory into the Segment widget; None for anything else, and one
notification, not a traceback, for a broken output."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("napari", reason="needs the napari extra: pip install 'convscope[napari]'")
pytest.importorskip("pytestqt", reason="needs pytest-qt")

from convscope import Predictor, load_run
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.inference import predict_paths
from convscope.inference.outputs import Prediction, write_predictions
from convscope.io.image import read_image, write_image
from convscope.napari._common import session
from convscope.napari.reader import MAX_IMAGES, get_reader
from convscope.napari.segment import SegmentWidget

IMAGES = make_synthetic_nuclei(3, size=(64, 64), seed=7)[0]


@pytest.fixture
def notes() -> Iterator[list[str]]:
    """The napari notifications of the test, as text."""
    from napari.utils.notifications import notification_manager

    seen: list[str] = []

    def keep(notification: Any) -> None:
        seen.append(str(notification.message))

    notification_manager.notification_ready.connect(keep)
    yield seen
    notification_manager.notification_ready.disconnect(keep)


def predicted(project: Path, run: str | Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> Path:
    """`convscope predict RUN in --out out` run in ``project`` on 3 generated images in two subfolders (relative
    paths, as typed); then the test moves to another folder."""
    for i, image in enumerate(IMAGES):
        write_image(project / "in" / f"s{i % 2}" / f"n{i}.tif", image)
    monkeypatch.chdir(project)
    predict_paths(Predictor(load_run(run)), ["in"], "out", progress=lambda *_: None, **options)
    monkeypatch.chdir(project.parent)
    return project / "out"


def opened(viewer: Any, path: Path) -> dict[str, Any]:
    return {layer.name: layer for layer in viewer.open(path, plugin="convscope")}


def test_other_paths_are_left_to_other_readers(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.tif", IMAGES[0])
    (tmp_path / "table.csv").write_text("x,y\n1,2\n")
    (tmp_path / "other.zarr").mkdir()
    (tmp_path / "other.zarr" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    for path in ("images", "images/a.tif", "table.csv", "other.zarr", "missing", "missing.csv"):
        assert get_reader(str(tmp_path / path)) is None, path
    assert get_reader([str(tmp_path / "images"), str(tmp_path / "table.csv")]) is None


@pytest.mark.gui
def test_a_prediction_folder_opens_labels_over_their_source_images(make_napari_viewer: Any, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    notes: list[str]) -> None:
    out = predicted(tmp_path / "project", "nuclei", monkeypatch)
    assert get_reader(str(out)) is not None and get_reader(str(out / "predictions.csv")) is not None
    viewer = make_napari_viewer()
    layers = opened(viewer, out)
    assert list(layers) == ["s0/n0", "s0/n0 labels", "s0/n2", "s0/n2 labels", "s1/n1", "s1/n1 labels"]
    for name, index in (("s0/n0", 0), ("s1/n1", 1)):
        assert np.array_equal(layers[name].data, IMAGES[index])
        written = read_image(out / f"{name}_labels.tif")
        labels = layers[f"{name} labels"]
        assert type(labels).__name__ == "Labels" and np.array_equal(labels.data, written)
        assert labels.metadata["convscope"]["count"] == str(len(np.unique(written)) - 1)
        assert "diameter" in labels.metadata["convscope"]  # the built-in model records the diameter it used
    assert [layer.visible for layer in layers.values()] == [True, True, False, False, False, False]
    assert not notes
    # the CSV itself opens the same; the project moved as a whole: relative paths still lead to the sources
    shutil.move(tmp_path / "project", tmp_path / "moved")
    viewer.layers.clear()
    again = opened(viewer, tmp_path / "moved" / "out" / "predictions.csv")
    assert list(again) == list(layers) and np.array_equal(again["s0/n2"].data, IMAGES[2])


@pytest.mark.gui
def test_a_semantic_prediction_opens_class_maps_and_probabilities(make_napari_viewer: Any, semantic_run: Path,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = predicted(tmp_path / "project", semantic_run, monkeypatch, probabilities=True)
    layers = opened(make_napari_viewer(), out)
    assert list(layers)[:3] == ["s0/n0", "s0/n0 labels", "s0/n0 probability"]
    assert np.array_equal(layers["s0/n0 labels"].data, read_image(out / "s0" / "n0_mask.tif"))
    prob = layers["s1/n1 probability"]
    assert prob.data.dtype == np.float32 and tuple(prob.contrast_limits) == (0.0, 1.0)


@pytest.mark.gui
def test_a_damaged_prediction_folder_opens_what_is_there_and_says_what_is_not(make_napari_viewer: Any,
                                                                              tmp_path: Path, notes: list[str],
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = predicted(tmp_path / "project", "nuclei", monkeypatch)
    (out / "s0" / "n2_labels.tif").unlink()
    shutil.rmtree(tmp_path / "project" / "in" / "s1")
    viewer = make_napari_viewer()
    assert list(opened(viewer, out)) == ["s0/n0", "s0/n0 labels", "s1/n1 labels"]
    assert len(notes) == 1 and "1 file(s) its predictions.csv lists are missing (e.g. out/s0/n2_labels.tif)" in notes[0]
    assert "1 source image(s) not found (e.g. in/s1/n1.tif, as recorded)" in notes[0]
    (out / "s0" / "n0_labels.tif").write_bytes(b"not a TIFF")
    notes.clear()
    viewer.layers.clear()
    assert list(opened(viewer, out)) == ["s0/n0", "s1/n1 labels"]
    assert len(notes) == 1 and f"1 output file(s) are not readable (e.g. {out / 's0' / 'n0_labels.tif'})" in notes[0]
    # a CSV broken beyond use: one notification, no layer, no exception
    notes.clear()
    (out / "predictions.csv").write_text("path,labels,count,mean_area\nin/s0/n0.tif,out/s0/n0_labels.tif\n")
    viewer.layers.clear()
    assert viewer.open(out, plugin="convscope") == [] and len(viewer.layers) == 0
    assert len(notes) == 1 and "predictions.csv: a row of 2 values under 4 columns" in notes[0]


@pytest.mark.gui
def test_many_images_open_the_first_ones(make_napari_viewer: Any, tmp_path: Path, notes: list[str]) -> None:
    rows = ["path,labels,count,mean_area"]
    for i in range(MAX_IMAGES + 2):
        write_image(tmp_path / "out" / f"n{i:02d}_labels.tif", np.zeros((8, 8), np.uint16))
        rows.append(f"n{i:02d}.tif,{tmp_path / 'out' / f'n{i:02d}_labels.tif'},0,0.00")
    (tmp_path / "out" / "predictions.csv").write_text("\n".join(rows) + "\n")
    layers = opened(make_napari_viewer(), tmp_path / "out")
    assert len(layers) == MAX_IMAGES and "n00 labels" in layers
    assert any(f"opened the first {MAX_IMAGES} of {MAX_IMAGES + 2} images" in n for n in notes)


@pytest.mark.gui
def test_an_ome_zarr_label_image_opens_lazily_over_its_source(make_napari_viewer: Any, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ome_zarr", reason="needs the dask extra")
    import dask.array as da
    import zarr

    from convscope.inference.large import predict_large
    from convscope.io.large import read_label_level

    image = make_synthetic_nuclei(1, size=(288, 320), seed=11)[0][0]
    monkeypatch.chdir(tmp_path)
    zarr.create_array("slide.zarr", data=image, chunks=(100, 100))
    predict_large("nuclei", "slide.zarr", "slide_labels.ome.zarr", block_size=160, threads=1, progress=False,
                  log=lambda _m: None)
    monkeypatch.chdir(tmp_path.parent)
    layers = opened(make_napari_viewer(), tmp_path / "slide_labels.ome.zarr")
    assert list(layers) == ["slide", "slide labels"]
    labels, source = layers["slide labels"], layers["slide"]
    assert labels.multiscale and source.multiscale
    assert [level.shape for level in labels.data] == [(288, 320), (144, 160), (72, 80)]
    assert all(isinstance(level, da.Array) for level in (*labels.data, *source.data))  # nothing read up front
    assert np.array_equal(labels.data[0].compute(), read_label_level(tmp_path / "slide_labels.ome.zarr")[:])
    assert np.array_equal(source.data[0].compute(), image)
    assert labels.metadata["convscope"]["run"] == "nuclei" and labels.metadata["convscope"]["objects"] > 5


@pytest.mark.gui
def test_a_classifiers_csv_opens_its_images_named_by_class(make_napari_viewer: Any, tmp_path: Path,
                                                           notes: list[str]) -> None:
    write_image(tmp_path / "cells" / "c1.tif", IMAGES[0])
    rows = [Prediction(str(tmp_path / "cells" / "c1.tif"), "normal", 0.75, (0.25, 0.75)),
            Prediction(str(tmp_path / "cells" / "gone.tif"), "abnormal", 0.6, (0.6, 0.4))]
    write_predictions(rows, tmp_path / "classes.csv", class_names=("abnormal", "normal"))
    layers = opened(make_napari_viewer(), tmp_path / "classes.csv")
    assert list(layers) == ["c1: normal (0.75)"]
    assert layers["c1: normal (0.75)"].metadata["convscope"]["probabilities"] == {"abnormal": 0.25, "normal": 0.75}
    assert len(notes) == 1 and "1 image(s) not found or not readable (e.g. " in notes[0]


@pytest.mark.gui
def test_a_run_directory_loads_in_the_segment_widget(make_napari_viewer: Any, semantic_run: Path, tmp_path: Path,
                                                     notes: list[str]) -> None:
    viewer = make_napari_viewer()
    assert viewer.open(semantic_run, plugin="convscope") == [] and len(viewer.layers) == 0
    segment = session(viewer).segment
    assert isinstance(segment, SegmentWidget) and segment.model.path == semantic_run
    assert "loaded in the Segment widget" in notes[-1]
    viewer.open(semantic_run, plugin="convscope")
    assert session(viewer).segment is segment and len(viewer.window.dock_widgets) == 1  # not docked twice
    # a broken run: one notification naming the file
    broken = tmp_path / "broken"
    shutil.copytree(semantic_run, broken)
    (broken / "model" / "config.json").write_text("{not json")
    notes.clear()
    assert viewer.open(broken, plugin="convscope") == []
    assert len(notes) == 1 and "config.json: not readable JSON" in notes[0]
    assert segment.model.path == semantic_run

"""The napari widgets driven as a user would, in a real viewer under Xvfb: segment sample data, tune a threshold
without a network call, correct / save / retrain, train, inspect, evaluate; one screenshot per widget."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("napari", reason="needs the napari extra: pip install 'convscope[napari]'")
pytest.importorskip("pytestqt", reason="needs pytest-qt")

from convscope.errors import ConvscopeError
from convscope.io.image import read_image
from convscope.napari import correct as correct_module
from convscope.napari import samples
from convscope.napari.correct import CorrectWidget, next_free_stem, save_pair
from convscope.napari.evaluate import FP, MISS, TP, EvaluateWidget, outcome_map
from convscope.napari.inspect_widget import InspectWidget
from convscope.napari.segment import SegmentWidget
from convscope.napari.train_widget import TrainWidget
from convscope.runs.layout import RunDir

pytestmark = pytest.mark.gui
TIMEOUT = 120_000  # ms: training on 2 shared cores


def wait(qtbot: Any, worker: Any) -> Any:
    """Wait until a widget's background work has been handled; fail on its user error."""
    qtbot.waitUntil(lambda: worker.outcome is not None, timeout=TIMEOUT)
    assert worker.outcome.error is None, worker.outcome.error
    return worker.outcome.value


def screenshot(viewer: Any, name: str, tmp_path: Path) -> np.ndarray:
    """Full window first (a canvas-only shot taken first comes back black), then the canvas; both must show
    something. Saved to ``tmp_path`` and, with ``CONVSCOPE_SCREENSHOTS=DIR``, a small PNG to ``DIR``."""
    from PIL import Image

    viewer.window.show()
    full = viewer.screenshot(canvas_only=False, flash=False)
    canvas = viewer.screenshot(canvas_only=True, flash=False)
    for shot in (full, canvas):
        rgb = shot[..., :3].reshape(-1, 3)
        assert rgb.std() > 5, "blank screenshot"
        assert len(np.unique(rgb[:: max(1, len(rgb) // 20000)], axis=0)) > 20, "uniform screenshot"
    image = Image.fromarray(full[..., :3])
    image.thumbnail((900, 900))
    image.save(tmp_path / f"napari_{name}.png", optimize=True)
    if os.environ.get("CONVSCOPE_SCREENSHOTS"):
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=128).save(
            Path(os.environ["CONVSCOPE_SCREENSHOTS"]) / f"napari_{name}.png", optimize=True)
    return full


def add_sample(viewer: Any, sample: Any = samples.synthetic_nuclei) -> tuple[Any, Any]:
    (image, image_meta, _), (labels, label_meta, _) = sample()
    return viewer.add_image(image, **image_meta), viewer.add_labels(labels, **label_meta)


def segmented(viewer: Any, qtbot: Any, run: Path) -> SegmentWidget:
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    segment.load(run)
    wait(qtbot, segment.segment())
    return segment


def test_segment_then_threshold_changes_labels_without_a_network_call(make_napari_viewer: Any, qtbot: Any,
                                                                      tiny_run: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from convscope.tasks import stardist

    # the one-epoch run is sure of nothing (rays under a pixel, the same probability everywhere): the guards of
    # decoding drop or cap all its candidates; this test is about the widget re-decoding its cache, not the model
    monkeypatch.setattr(stardist, "MIN_RAY", 0.0)
    monkeypatch.setattr(stardist, "MAX_CANDIDATE_SHARE", 1)
    viewer = make_napari_viewer()
    image, _truth = add_sample(viewer)
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    segment.load(tiny_run)
    assert segment.normalization.value.startswith("percentile 1-99.8")
    sliders = {w.label: w for w in segment.thresholds}
    tuned = RunDir(tiny_run).read_model_config()["thresholds"]
    assert sliders["prob threshold"].value == pytest.approx(tuned["prob"], abs=0.01)
    calls = {"n": 0}
    predict = segment.model.backend.predict

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return predict(*args, **kwargs)

    segment.model.backend.predict = counting
    segment.show_probability.value = True
    wait(qtbot, segment.segment())
    assert calls["n"] == 1
    labels = viewer.layers["nuclei labels"]
    assert labels.data.shape == image.data.shape and labels.data.dtype == np.uint32
    assert f"{image.name} probability" in viewer.layers
    before = labels.data.copy()
    prob = segment.cache[0][0]
    # far from the tuned value: other labels
    sliders["prob threshold"].value = float(np.clip(np.quantile(prob, 0.5), 0.02, 0.98))
    assert calls["n"] == 1  # re-decoded from the cache
    assert not np.array_equal(labels.data, before)
    assert viewer.layers["nuclei labels"] is labels  # the same layer, updated (it was not edited)
    assert segment.segment() is None and calls["n"] == 1  # pressing Segment again only decodes
    screenshot(viewer, "segment", tmp_path)


def test_segment_a_stack_plane_by_plane(make_napari_viewer: Any, qtbot: Any, tiny_run: Path) -> None:
    from convscope.datasets.nuclei import make_synthetic_nuclei

    viewer = make_napari_viewer()
    images, _ = make_synthetic_nuclei(3, size=(64, 64), seed=3)
    viewer.add_image(images, name="stack")
    segment = segmented(viewer, qtbot, tiny_run)
    labels = viewer.layers["stack labels"].data
    assert labels.shape == (3, 64, 64) and len(segment.cache) == 3
    ids = [set(np.unique(p)) - {0} for p in labels]
    assert all(not (a & b) for a, b in itertools.pairwise(ids))  # ids unique across planes


def test_user_error_is_one_notification_not_a_traceback(make_napari_viewer: Any, tmp_path: Path) -> None:
    from napari.utils.notifications import notification_manager

    viewer = make_napari_viewer()
    segment = SegmentWidget(viewer)
    seen: list[Any] = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        segment.run_dir.value = str(tmp_path)
        segment.load_button.clicked.emit()
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert len(seen) == 1 and "not a convscope run directory" in str(seen[0].message)
    assert segment.model is None


def test_save_pairs_never_overwrites(tmp_path: Path) -> None:
    image, labels = np.zeros((8, 8), np.uint16), np.zeros((8, 8), np.uint16)
    labels[2:4, 2:4] = 1
    assert save_pair(tmp_path, "my image", image, labels) == "my_image"
    assert save_pair(tmp_path, "my image", image, labels + (labels > 0)) == "my_image_v2"
    assert next_free_stem(tmp_path, "my image") == "my_image_v3"
    assert read_image(tmp_path / "masks" / "my_image.tif").max() == 1
    assert read_image(tmp_path / "masks" / "my_image_v2.tif").max() == 2


def test_correct_save_and_retrain_switches_segment_to_the_new_run(make_napari_viewer: Any, qtbot: Any,
                                                                   tiny_run: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    viewer = make_napari_viewer()
    image, _truth = add_sample(viewer)
    segment = segmented(viewer, qtbot, tiny_run)
    correct = CorrectWidget(viewer)
    viewer.window.add_dock_widget(correct, name="Correct & retrain")
    labels = viewer.layers["nuclei labels"]
    correct.labels_box.value = labels
    correct.image.value = image
    correct.folder.value = str(tmp_path / "training")
    # delete one object: the one under a pixel of the largest object
    ids, counts = np.unique(labels.data[labels.data > 0], return_counts=True)
    if len(ids) == 0:  # an untrained model may find nothing: paint one to delete
        labels.data[10:20, 10:20] = 5
        ids, counts = np.array([5]), np.array([100])
    victim = int(ids[counts.argmax()])
    y, x = np.argwhere(labels.data == victim)[0]
    assert correct.delete_under_cursor((float(y), float(x))) == victim
    assert not (labels.data == victim).any()
    # paint a new object
    new = correct.new_object()
    assert new == int(labels.data.max()) + 1 and labels.selected_label == new and labels.mode == "paint"
    labels.paint((30, 30), new)
    assert (labels.data == new).any()
    painted = labels.data.copy()
    # a failing retrain loses nothing
    correct.add_to_training_set()
    correct.epochs.value = 1

    def failing(*_args: Any, **_kwargs: Any) -> None:
        raise ConvscopeError("/disk: no space left on device; free some space")

    monkeypatch.setattr(correct_module, "finetune", failing)
    worker = correct.retrain()
    qtbot.waitUntil(lambda: worker.outcome is not None, timeout=TIMEOUT)
    assert "no space left" in worker.outcome.error
    assert np.array_equal(labels.data, painted) and correct.retrain_button.enabled
    monkeypatch.undo()
    # two more pairs (a second save of the same image is a new version), retrain one short epoch
    correct.add_to_training_set()
    other = viewer.add_image(samples.synthetic_bacteria()[0][0], name="more")
    correct.image.value = other
    correct.add_to_training_set()
    assert sorted(p.name for p in (tmp_path / "training" / "masks").iterdir()) == [
        "more.tif", "nuclei.tif", "nuclei_v2.tif"]
    saved = read_image(tmp_path / "training" / "masks" / "nuclei.tif")
    assert np.array_equal(saved, painted)
    out = wait(qtbot, correct.retrain())
    run = RunDir.open(out)
    assert out == tmp_path / "training" / "runs" / f"{tiny_run.name}_ft1"
    for path in (run.history, run.curves, run.report, run.metrics):
        assert path.is_file()
    assert set(run.read_model_config()["thresholds"]) == {"prob", "nms"}
    assert segment.model.path == out and correct.progress.value == correct.progress.max
    wait(qtbot, segment.worker)  # re-segmented with the new run
    assert "nuclei labels (edited)" in viewer.layers  # what was painted is kept as its own layer
    assert np.array_equal(viewer.layers["nuclei labels (edited)"].data, painted)
    other.visible = False
    viewer.layers.selection.active = viewer.layers["nuclei labels (edited)"]
    screenshot(viewer, "correct", tmp_path)


def test_train_widget_trains_a_folder_with_a_live_curve(make_napari_viewer: Any, qtbot: Any, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from convscope.datasets.nuclei import make_synthetic_nuclei
    from convscope.io.image import write_image

    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", opened.append)
    images, labels = make_synthetic_nuclei(4, size=(96, 96), seed=5)
    for i, (im, lab) in enumerate(zip(images, labels, strict=True)):
        write_image(tmp_path / "pairs" / "images" / f"n{i}.tif", im)
        write_image(tmp_path / "pairs" / "masks" / f"n{i}.tif", lab)
    viewer = make_napari_viewer()
    viewer.add_image(images[0], name="nuclei")
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train")
    widget.source.value = "images/ + masks/ folder"
    widget.folder.value = str(tmp_path / "pairs")
    widget.out.value = str(tmp_path / "new_run")
    widget.epochs.value = 2
    widget.overrides.value = ("model.options.depth=1 model.options.base_filters=4 model.options.features=8 "
                              "data.patch_size=32 data.patches_per_epoch=16 train.num_threads=1 train.progress=false")
    out = wait(qtbot, widget.start())
    assert RunDir.open(out).report.is_file()
    assert [r["epoch"] for r in widget.curve.rows] == [1, 2]
    assert opened == [(tmp_path / "new_run" / "report.html").resolve().as_uri()]
    screenshot(viewer, "train", tmp_path)


def test_train_widget_cancel_stops_training(make_napari_viewer: Any, qtbot: Any, tmp_path: Path,
                                            tiny_recipe: str) -> None:
    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(tiny_recipe)
    widget.recipe.value = str(recipe)
    widget.out.value = str(tmp_path / "cancelled")
    widget.epochs.value = 50
    widget.open_report.value = False
    worker = widget.start()
    assert not widget.start_button.enabled and widget.cancel_button.enabled
    qtbot.waitUntil(lambda: len(widget.history) >= 1, timeout=TIMEOUT)
    widget.cancel_button.clicked.emit()
    qtbot.waitUntil(lambda: worker.outcome is not None, timeout=TIMEOUT)
    assert "cancelled" in worker.outcome.error
    assert len(RunDir(tmp_path / "cancelled").read_history()) < 50
    assert widget.start_button.enabled and not widget.cancel_button.enabled


def test_inspect_feature_maps_and_filters(make_napari_viewer: Any, qtbot: Any, tiny_run: Path,
                                          tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    add_sample(viewer)
    segmented(viewer, qtbot, tiny_run)
    inspect = InspectWidget(viewer)
    viewer.window.add_dock_widget(inspect, name="Inspect")
    inspect.layer.reset_choices()
    choices = list(inspect.layer.choices)
    assert len(choices) >= 3
    inspect.layer.value = choices[1]
    maps = wait(qtbot, inspect.show_feature_maps())
    layer = viewer.layers[f"features {choices[1]}"]
    assert layer.data.ndim == 3 and layer.data.shape == maps.shape and maps.std() > 0
    kernels = inspect.show_filters()
    base_filters = RunDir(tiny_run).read_model_config()["model"]["options"]["base_filters"]
    assert kernels.shape[0] == base_filters and kernels.shape[1] == kernels.shape[2]
    viewer.layers.selection.active = layer
    screenshot(viewer, "inspect", tmp_path)


def test_evaluate_against_ground_truth(make_napari_viewer: Any, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    (image, meta, _), (truth, tmeta, _) = samples.dsb2018_nuclei()
    viewer.add_image(image, **meta)
    viewer.add_labels(truth, **tmeta)
    pred = truth.copy()
    first, second = np.unique(truth)[1:3]
    pred[pred == first] = 0  # a miss
    pred[40:46, 0:6] = pred.max() + 1  # a false positive (on background or not: a new object)
    viewer.add_labels(pred, name="prediction")
    widget = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Evaluate")
    assert widget.truth.value.name == "dsb2018 nuclei ground truth"
    widget.prediction.value = viewer.layers["prediction"]
    rows = widget.evaluate()
    assert [r[0] for r in rows] == [0.5, 0.6, 0.7, 0.8, 0.9]
    n = len(np.unique(truth)) - 1
    assert rows[0][5] >= n - 2 and rows[0][7] >= 1 and rows[0][6] >= 1
    colored = viewer.layers["TP / FP / miss"].data
    assert (colored[truth == first] == MISS).all()
    assert (colored[pred == second] == TP).all()
    assert (colored[40:46, 0:6] != 0).all() and FP in colored
    screenshot(viewer, "evaluate", tmp_path)


def test_outcome_map_on_a_shifted_object() -> None:
    truth = np.zeros((20, 20), np.uint16)
    truth[2:8, 2:8] = 1
    pred = np.roll(truth, 5, axis=0)
    out = outcome_map(truth, pred)
    assert (out[pred > 0] == FP).all() and (out[(truth > 0) & (pred == 0)] == MISS).all()


def test_builtin_model_with_object_diameter(make_napari_viewer: Any, qtbot: Any) -> None:
    from convscope.metrics.matching import matching

    viewer = make_napari_viewer()
    (image, meta, _), (truth, _, _) = samples.dsb2018_nuclei()
    ones = np.ones((2, 2), image.dtype)
    viewer.add_image(np.kron(image, ones), **meta)  # nuclei twice the size they are
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    assert "nuclei" in segment.choice.choices
    segment.choice.value = "nuclei"
    segment.load_button.clicked.emit()
    assert segment.model is not None and not segment.diameter.native.isHidden()
    segment.diameter.value = 2 * segment.model.diameter
    wait(qtbot, segment.segment())
    labels = viewer.layers["dsb2018 nuclei labels"].data
    assert labels.shape == (256, 256) and segment.sizes[0].scale == pytest.approx(0.5)
    assert "image scaled by 0.5" in segment.status.value and "(given)" in segment.status.value
    assert matching(np.kron(truth, np.ones((2, 2), truth.dtype)), labels, thresh=0.5).f1 >= 0.7
    segment.diameter.value = 0.0  # estimate it: a new prediction, not the cached one
    wait(qtbot, segment.segment())
    assert "(estimated)" in segment.status.value and segment.sizes[0].scale < 1.0


def test_segment_a_semantic_run_draws_the_class_map_at_the_slider_threshold(make_napari_viewer: Any, qtbot: Any,
                                                                            semantic_run: Path) -> None:
    from convscope import Predictor, load_run

    viewer = make_napari_viewer()
    image, _truth = add_sample(viewer)
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    segment.load(semantic_run)
    assert segment.about.value == "semantic (nucleus)" and segment.diameter.native.isHidden()
    sliders = {w.label: w for w in segment.thresholds}
    assert list(sliders) == ["prob threshold"]  # a binary U-Net: the foreground probability threshold
    slider = sliders["prob threshold"]
    assert slider.value == pytest.approx(RunDir(semantic_run).read_model_config()["threshold"], abs=0.01)
    segment.show_probability.value = True
    wait(qtbot, segment.segment())
    labels = viewer.layers["nuclei labels"]
    prob = viewer.layers["nuclei probability"].data
    assert labels.data.shape == prob.shape == image.data.shape
    # the class map is what `convscope predict` writes for this image
    assert np.array_equal(labels.data, Predictor(load_run(semantic_run)).segment(image.data))
    assert set(np.unique(labels.data)) <= {0, 1}
    # a slider at the median probability: half the pixels are foreground, exactly those above it
    slider.value = float(np.clip(np.quantile(prob, 0.5), 0.02, 0.98))
    foreground = labels.data > 0
    assert viewer.layers["nuclei labels"] is labels
    assert not (foreground != (prob > slider.value))[np.abs(prob - slider.value) > 1e-6].any()
    assert f"{int(foreground.sum())} foreground pixels (prob {slider.value:.2f})" in segment.status.value
    slider.value = 0.98
    assert (labels.data > 0).sum() <= foreground.sum()


def test_segment_a_classifier_names_the_class_of_an_image_layer(make_napari_viewer: Any, qtbot: Any,
                                                                classification_run: Path, tmp_path: Path) -> None:
    from convscope import Predictor, load_run
    from convscope.datasets.synthetic import make_synthetic_cells
    from convscope.inference import predict_paths
    from convscope.io.image import write_image

    cells = make_synthetic_cells(3, size=40, seed=11).images[..., 0]  # 40 x 40: the run resizes to 32 x 32
    rgb = np.stack([cells[0], cells[0] // 2, cells[0] // 4], -1)  # grey model, RGB image: converted as files are
    for name, image in (("cell", cells[0]), ("rgb", rgb)):
        write_image(tmp_path / "in" / f"{name}.tif", image)
    files = predict_paths(Predictor(load_run(classification_run)), [tmp_path / "in"], tmp_path / "classes.csv",
                          progress=lambda *_: None)
    expected = {Path(r.path).stem: r for r in files}
    viewer = make_napari_viewer()
    layers = {"cell": viewer.add_image(cells[0], name="cell"), "rgb": viewer.add_image(rgb, name="rgb")}
    stack = viewer.add_image(cells, name="stack")
    segment = SegmentWidget(viewer)
    viewer.window.add_dock_widget(segment, name="Segment")
    segment.load(classification_run)
    assert segment.about.value == "classification (normal)" and len(segment.thresholds) == 0
    names = load_run(classification_run).class_names
    for name, layer in layers.items():
        segment.image.value = layer
        wait(qtbot, segment.segment())
        result = layer.metadata["convscope"]
        assert result["class"] == expected[name].label
        assert list(result["probabilities"].values()) == pytest.approx(expected[name].probabilities, abs=1e-5)
        assert list(result["probabilities"]) == list(names)
        assert segment.status.value.startswith(f"{name}: {expected[name].label} (p = ")
    segment.image.value = stack
    wait(qtbot, segment.segment())
    planes = stack.metadata["convscope"]["planes"]
    assert len(planes) == 3 and all(sum(p["probabilities"].values()) == pytest.approx(1.0) for p in planes)
    mean = np.mean([list(p["probabilities"].values()) for p in planes], 0)
    assert list(stack.metadata["convscope"]["probabilities"].values()) == pytest.approx(mean)
    assert "3 planes" in segment.status.value
    assert not [layer for layer in viewer.layers if layer.name.endswith("labels")]  # a classifier draws no labels

"""The instance-segmentation parts of the report: matching curves, outline overlays, headline, tables."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from convscope.metrics.matching import evaluate_label_pairs, matching_table
from convscope.report import write_report
from convscope.report.figures import ERROR_COLORS
from convscope.report.instances import (
    BOTH_COLOR,
    PRED_COLOR,
    TRUE_COLOR,
    instance_headline,
    instance_per_image_table,
    instance_threshold_text,
    matching_section,
    outline_overlay,
    outlines,
    percentile_normalize,
    plot_matching_curves,
)
from convscope.report.run import write_run_report
from convscope.report.segmentation import select_best_worst
from convscope.runs.layout import RunDir

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.9)
PER_IMAGE_KEYS = ("precision", "recall", "f1", "accuracy", "panoptic_quality")


def square(shape=(12, 12), top=2, left=3, side=6, label=1) -> np.ndarray:
    y = np.zeros(shape, np.uint16)
    y[top : top + side, left : left + side] = label
    return y


def label_images() -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Three 24 x 24 images: a perfect one, one with a shifted object and a missed one, one with an invention."""
    t0 = square((24, 24), 2, 2, 8, 1) + square((24, 24), 12, 12, 8, 2)
    t1 = square((24, 24), 2, 2, 8, 1) + square((24, 24), 14, 4, 6, 2)
    p1 = square((24, 24), 4, 4, 8, 7)  # IoU 36 / 92 with object 1: not matched at 0.5; object 2 missed
    t2 = square((24, 24), 4, 4, 10, 3)
    p2 = square((24, 24), 4, 4, 10, 1) + square((24, 24), 18, 18, 4, 2)
    return [t0, t1, t2], [t0.copy(), p1, p2], ["/data/perfect.tif", "/data/bad.tif", "/data/extra.tif"]


def instance_split() -> dict:
    truths, preds, names = label_images()
    split = evaluate_label_pairs(truths, preds, names=names, thresholds=THRESHOLDS)
    # the layout the instance task writes: plain per-image keys at IoU 0.5
    split["per_image"] = [
        {"name": r["name"], "n_true": r["n_true"], "n_pred": r["n_pred"],
         **{k: r[f"{k}@0.5"] for k in PER_IMAGE_KEYS}}
        for r in split["per_image"]
    ]
    return split


def instance_metrics() -> dict:
    return {"test": instance_split(), "thresholds": {"prob": 0.48, "nms": 0.3},
            "params": {"trainable": 10, "non_trainable": 0}}


def embedded_pngs(html: str) -> list[np.ndarray]:
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return [imread(io.BytesIO(base64.b64decode(m)), format="png") for m in found]


# ------------------------------------------------------------------------------------------------ curves


def test_plot_matching_curves(tmp_path):
    truths, preds, _ = label_images()
    table = matching_table(truths, preds)
    fig = plot_matching_curves(table, tmp_path / "matching.png")
    assert isinstance(fig, Figure)
    assert (tmp_path / "matching.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert ax.get_ylim() == (0.0, 1.0)
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["precision", "recall", "F1", "accuracy (AP, DSB2018)", "panoptic quality", "IoU 0.5"]
    accuracy = ax.get_lines()[3]
    assert list(accuracy.get_xdata()) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    assert accuracy.get_ydata()[4] == pytest.approx(table["0.5"]["accuracy"])
    marker = ax.get_lines()[5]
    assert list(marker.get_xdata()) == [0.5, 0.5] and marker.get_linestyle() == ":"
    with pytest.raises(ValueError, match="no thresholds"):
        plot_matching_curves({})


def test_plot_matching_curves_skips_missing_metrics_and_orders_keys():
    table = {"0.9": {"precision": 0.2}, "0.5": {"precision": 0.8}, "criterion": {}}
    ax = plot_matching_curves(table).axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["precision", "IoU 0.5"]
    assert list(ax.get_lines()[0].get_ydata()) == [0.8, 0.2]


# ---------------------------------------------------------------------------------------------- overlays


def test_outlines_are_the_inner_boundary_of_each_object():
    y = square()
    edge = outlines(y)
    assert edge.dtype == bool and edge.shape == y.shape
    ring = np.zeros_like(edge)
    ring[2:8, 3:9] = True
    ring[3:7, 4:8] = False
    np.testing.assert_array_equal(edge, ring)
    touching = np.zeros((3, 4), np.int32)
    touching[:, :2], touching[:, 2:] = 1, 2  # two objects side by side, filling the image
    assert outlines(touching).tolist() == [[False, True, True, False]] * 3  # the image border is not an outline
    thick = outlines(square((12, 12), 2, 2, 8), thickness=2)
    assert thick[2:10, 2:10].sum() == 64 - 16 and not thick[4:8, 4:8].any()
    with pytest.raises(ValueError, match="label image"):
        outlines(np.zeros((3, 3), np.float32))


def test_outline_overlay_colours_exactly_the_borders():
    true = square()
    pred = square(left=4)  # shifted one pixel right: the top and bottom rows partly coincide
    image = np.zeros((12, 12, 1), np.uint16)
    rgb = outline_overlay(image, true, pred)
    assert rgb.shape == (12, 12, 3) and rgb.dtype == np.uint8
    true_edge, pred_edge = outlines(true), outlines(pred)
    colours = {tuple(c) for c in rgb.reshape(-1, 3)}
    assert colours == {(0, 0, 0), TRUE_COLOR, PRED_COLOR, BOTH_COLOR}
    assert len({TRUE_COLOR, PRED_COLOR, BOTH_COLOR}) == 3
    np.testing.assert_array_equal(np.all(rgb == TRUE_COLOR, axis=-1), true_edge & ~pred_edge)
    np.testing.assert_array_equal(np.all(rgb == PRED_COLOR, axis=-1), pred_edge & ~true_edge)
    np.testing.assert_array_equal(np.all(rgb == BOTH_COLOR, axis=-1), true_edge & pred_edge)
    assert tuple(rgb[2, 3]) == TRUE_COLOR and tuple(rgb[2, 9]) == PRED_COLOR and tuple(rgb[2, 5]) == BOTH_COLOR
    assert tuple(rgb[5, 5]) == (0, 0, 0)  # the interior of both squares is the image
    assert not (true_edge | pred_edge)[3:7, 5:8].any()


def test_outline_overlay_image_display():
    true = pred = np.zeros((4, 5), np.uint8)
    ramp = np.arange(20, dtype=np.uint16).reshape(4, 5) * 1000
    gray = outline_overlay(ramp, true, pred)
    assert np.all(gray[..., 0] == gray[..., 1]) and gray[0, 0, 0] == 0 and gray[-1, -1, 0] == 255
    assert np.array_equal(outline_overlay(ramp[..., None], true, pred), gray)
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # a red image stays red
    shown = outline_overlay(rgb, true, pred)
    assert shown[0, 0, 0] > shown[0, 0, 1]
    assert outline_overlay(np.zeros((4, 5, 2)), true, pred).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="differ in size"):
        outline_overlay(ramp, true, pred[:3])


def test_percentile_normalize_clips_outliers():
    image = np.zeros(1000)
    image[:500] = 100.0
    image[0] = 1e6  # one hot pixel does not darken the rest
    out = percentile_normalize(image)
    assert out[1] == 1.0 and out[0] == 1.0 and out[-1] == 0.0
    assert not percentile_normalize(np.full((3, 3), 7)).any()


# ------------------------------------------------------------------------------------------------ tables


def test_headline_threshold_text_and_matching_section():
    metrics = instance_metrics()
    row = metrics["test"]["matching"]["0.5"]
    label, text = instance_headline(metrics)
    assert label == "Test object matching"
    assert text == f"accuracy {row['accuracy']:.4f} / F1 {row['f1']:.4f} at IoU 0.5 (test, 3 images)"
    assert instance_threshold_text(metrics) == "probability 0.48, NMS 0.30, tuned on the validation images"
    assert instance_threshold_text({"test": metrics["test"], "thresholds": {"flow": 0.4, "x": "a"}}) == (
        "flow error 0.40, tuned on the validation images")
    assert instance_headline({"val": {"accuracy": 0.9}}) is None
    section = matching_section(metrics["test"], lambda fig: "SRC")
    assert section["key_columns"] == ["IoU 0.5", "IoU 0.75"] and not section["missing"]
    rows = dict(section["key_rows"])
    assert rows["Accuracy (AP, DSB2018)"][0] == f"{row['accuracy']:.4f}"
    assert rows["True positives (objects matched)"] == ["3", "3"]
    assert rows["False negatives (true, missed)"] == ["2", "2"]
    assert [r["threshold"] for r in section["full_rows"]] == [f"{t:g}" for t in THRESHOLDS]
    assert section["curves"] == "SRC"
    default = matching_section({"matching": matching_table(*label_images()[:2])}, lambda fig: "")
    assert default["key_columns"] == ["IoU 0.5"] and default["missing"] == ["0.75"]


def test_per_image_table_lowest_accuracy_first():
    split = instance_split()
    table = instance_per_image_table(split, {"/data/bad.tif": "worst"})
    assert [r["name"] for r in table["rows"]] == ["bad.tif", "extra.tif", "perfect.tif"]
    assert table["rows"][0]["shown"] == "worst" and table["rows"][0]["title"] == "/data/bad.tif"
    assert table["columns"][:2] == ["Accuracy", "F1"]
    assert table["rows"][2]["cells"] == ["1.0000"] * 5 + ["2", "2"]
    assert table["rows"][1]["cells"][0] == "0.5000"  # 1 tp, 1 fp
    raw = evaluate_label_pairs(*label_images()[:2], names=label_images()[2])  # "accuracy@0.5" keys work too
    assert [r["cells"] for r in instance_per_image_table(raw)["rows"]] == [r["cells"] for r in table["rows"]]


# ------------------------------------------------------------------------------------------------ report


def instance_examples() -> list[dict]:
    truths, preds, names = label_images()
    split = instance_split()
    accuracy = [row["accuracy"] for row in split["per_image"]]
    worst, best = select_best_worst(accuracy, k=1)
    image = np.zeros((24, 24, 1), np.uint16)  # black: outlines are drawn in their exact colours
    return [
        {"image": image, "true_labels": truths[i], "pred_labels": preds[i], "name": names[i],
         "accuracy": accuracy[i], "f1": split["per_image"][i]["f1"], "group": group}
        for group, indices in (("worst", worst), ("best", best))
        for i in indices
    ]


def test_write_run_report_instance(tmp_path):
    run = RunDir(tmp_path)
    run.config.write_text("task: instance\nmodel:\n  name: stardist_unet\n")
    metrics = instance_metrics()
    metrics["val"] = instance_split()
    row = metrics["test"]["matching"]["0.5"]
    html = write_run_report(run, history=[], metrics=metrics, diagnosis=None,
                            examples={"test": instance_examples(), "val": []}).read_text(encoding="utf-8")
    assert f"accuracy {row['accuracy']:.4f} / F1 {row['f1']:.4f} at IoU 0.5 (test, 3 images)" in html
    assert "Detection thresholds" in html and "probability 0.48, NMS 0.30, tuned on the validation images" in html
    assert "Foreground threshold" not in html and "Thresholds metrics" not in html  # not taken for a split
    assert "Object matching" in html and "IoU 0.75" in html and "Accuracy (AP, DSB2018)" in html
    assert "All IoU thresholds" in html and "Per image at IoU 0.5, lowest accuracy first" in html
    section = html[html.index('id="split-test"'):html.index('id="overlays"')]
    assert section.index(">bad.tif<") < section.index(">extra.tif<") < section.index(">perfect.tif<")
    assert "Worst 1 of 3 test images by accuracy at IoU 0.5" in html
    assert "Best 1 of 3 test images by accuracy at IoU 0.5" in html
    assert "outlines of the true objects in green" in html and "false positives were predicted" not in html
    assert "Misclassified images" not in html and "Pixel accuracy vs Dice" not in html
    pngs = embedded_pngs(html)
    assert len(pngs) == 4  # test and validation matching curves, worst and best galleries
    for figure in pngs[2:]:
        rgb = np.round(figure[..., :3] * 255).astype(int)
        for colour in (TRUE_COLOR, PRED_COLOR):
            assert np.any(np.all(np.abs(rgb - colour) <= 1, axis=-1))  # outlines drawn in their colours
        assert not np.any(np.all(np.abs(rgb - ERROR_COLORS[1]) <= 1, axis=-1))  # no semantic error colours


def test_instance_report_without_overlays_or_075(tmp_path):
    truths, preds, names = label_images()
    split = evaluate_label_pairs(truths, preds, names=names)
    html = write_report(tmp_path / "r.html", title="inst", config_yaml="", history=[],
                        metrics={"val": split, "thresholds": {"prob": 0.5, "nms": 0.4}}).read_text(encoding="utf-8")
    assert "Validation object matching" in html and "probability 0.50, NMS 0.40" in html
    assert "Not evaluated at IoU 0.75." in html and 'id="overlays"' not in html
    assert len(embedded_pngs(html)) == 1

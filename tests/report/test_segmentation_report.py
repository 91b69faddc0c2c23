"""The semantic-segmentation parts of the report: error overlays, per-image table, all-background lesson."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from matplotlib.image import imread

from convscope.metrics.pixel import segmentation_report
from convscope.report import write_report
from convscope.report.figures import (
    ERROR_COLORS,
    overlay_errors,
    pixel_errors,
    plot_overlays,
    shrink_for_display,
)
from convscope.report.run import write_run_report
from convscope.report.segmentation import baseline_lesson, per_image_table, select_best_worst, short_name
from convscope.runs.layout import RunDir

TP, FP, FN = ERROR_COLORS[1], ERROR_COLORS[2], ERROR_COLORS[3]


def masks() -> tuple[np.ndarray, np.ndarray]:
    true = np.zeros((4, 5), np.uint8)
    pred = np.zeros((4, 5), np.uint8)
    true[0, 0] = pred[0, 0] = 1  # true positive
    pred[1, 1] = 1  # false positive
    true[2, 2] = 1  # false negative
    return true, pred


def test_pixel_errors_codes_and_wrong_class_is_a_false_positive():
    true, pred = masks()
    codes = pixel_errors(true, pred)
    assert codes.dtype == np.uint8
    assert (codes[0, 0], codes[1, 1], codes[2, 2], codes[3, 4]) == (1, 2, 3, 0)
    assert np.count_nonzero(codes) == 3
    assert pixel_errors(np.array([[2, 1]]), np.array([[1, 1]])).tolist() == [[2, 1]]
    with pytest.raises(ValueError, match="same shape"):
        pixel_errors(true, pred[:3])


def test_overlay_errors_colours_exactly():
    true, pred = masks()
    image = np.zeros((4, 5, 1), np.uint16)
    image[3, 4] = 1000  # min-max scaled: 0 -> black, 1000 -> white
    rgb = overlay_errors(image, true, pred, alpha=1.0)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == TP and tuple(rgb[1, 1]) == FP and tuple(rgb[2, 2]) == FN
    assert tuple(rgb[3, 4]) == (255, 255, 255) and tuple(rgb[3, 3]) == (0, 0, 0)  # true negatives stay grey
    assert len({TP, FP, FN}) == 3
    blended = overlay_errors(image, true, pred, alpha=0.6)  # coloured pixels over black: 0.6 * colour
    for (y, x), color in zip([(0, 0), (1, 1), (2, 2)], [TP, FP, FN], strict=True):
        assert tuple(blended[y, x]) == tuple(round(0.6 * c) for c in color)
    rgb_image = np.stack([np.zeros((4, 5)), np.zeros((4, 5)), np.eye(4, 5) * 9], axis=-1)
    assert overlay_errors(rgb_image, true, pred).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="differ in size"):
        overlay_errors(np.zeros((3, 5)), true, pred)


def test_shrink_for_display_keeps_thin_lines():
    image = np.zeros((1000, 600, 3), np.uint8)
    image[500, :, 0] = 255  # a one-pixel line
    small = shrink_for_display(image, 250)
    assert small.shape == (250, 150, 3) and small.dtype == np.uint8
    assert small[125, :, 0].min() > 0
    small_enough = image[:100, :200]
    assert shrink_for_display(small_enough, 250) is small_enough


def test_select_best_worst():
    dice = [0.9, 0.2, 0.5, np.nan, 0.95, 0.7, 0.8, 0.6]
    worst, best = select_best_worst(dice, 3)
    assert worst == [3, 1, 2] and best == [4, 0, 6]
    assert select_best_worst([0.5, 0.9], 3) == ([0], [1])  # few images: each shown once
    assert select_best_worst([0.5], 3) == ([0], [])


def semantic_metrics() -> dict:
    true = [np.zeros((8, 8), np.uint8) for _ in range(3)]
    pred = [np.zeros((8, 8), np.uint8) for _ in range(3)]
    true[0][:4, :4] = 1
    pred[0][:4, :3] = 1
    true[1][:2] = 1
    pred[1][:2] = 1
    true[2][4:, 4:] = 1
    pred[2][6:, 6:] = 1
    split = segmentation_report(true, pred, class_names=("background", "bacteria"),
                                image_names=["/data/good.tif", "/data/best.tif", "/data/bad.tif"]).to_dict()
    for row, t, p in zip(split["per_image"], true, pred, strict=True):
        row["true_foreground_fraction"], row["predicted_foreground_fraction"] = t.mean(), p.mean()
    return {"test": split, "threshold": 0.55, "params": {"trainable": 10, "non_trainable": 0}}


def test_per_image_table_lowest_dice_first():
    table = per_image_table(semantic_metrics()["test"], {"/data/bad.tif": "worst"})
    assert [r["name"] for r in table["rows"]] == ["bad.tif", "good.tif", "best.tif"]
    assert [r["rank"] for r in table["rows"]] == [1, 2, 3]
    assert table["rows"][0]["title"] == "/data/bad.tif" and table["rows"][0]["shown"] == "worst"
    assert table["rows"][2]["cells"] == ["1.0000", "1.0000", "100.0%", "25.0%", "25.0%"]
    assert table["columns"][0] == "Dice"


def test_baseline_lesson_names_the_classes():
    lesson = baseline_lesson(semantic_metrics())
    assert lesson["split"] == "test"
    assert lesson["rows"][0][1:] == ("75.0%", "0.0000", "0.0000")  # 144 of 192 pixels are background
    assert "finds no bacteria at all already reaches 75% pixel accuracy" in lesson["sentence"]


def embedded_pngs(html: str) -> list[np.ndarray]:
    found = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    return [imread(io.BytesIO(base64.b64decode(m)), format="png") for m in found]


def overlays() -> list[dict]:
    true, pred = masks()
    true, pred = np.kron(true, np.ones((8, 8), np.uint8)), np.kron(pred, np.ones((8, 8), np.uint8))
    image = np.zeros((32, 40, 1), np.uint8)  # black: the TP colour is exactly 0.6 * TP
    common = {"image": image, "true_mask": true, "pred_mask": pred, "split": "test"}
    return [
        {**common, "name": "/data/bad.tif", "dice": 0.1, "iou": 0.05, "group": "worst"},
        {**common, "name": "/data/best.tif", "dice": 1.0, "iou": 1.0, "group": "best"},
    ]


def test_semantic_report_lesson_threshold_table_and_overlays(tmp_path):
    metrics = semantic_metrics()
    html = write_report(tmp_path / "report.html", title="seg", config_yaml="task: semantic\n", history=[],
                        metrics=metrics, overlays=overlays()).read_text(encoding="utf-8")
    assert "Pixel accuracy vs Dice" in html and "Predicting \u201cbackground\u201d everywhere" in html
    assert "75.0%" in html and "Pixel accuracy of an all-background prediction" in html
    assert "Foreground threshold" in html and "0.55 (tuned on the validation images" in html
    assert "Test Dice" in html
    assert "Per image, lowest Dice first" in html
    assert html.index(">bad.tif<") < html.index(">good.tif<") < html.index(">best.tif<")
    assert "Worst 1 of 3 test images by Dice" in html and "Best 1 of 3 test images by Dice" in html
    assert "number of pixels" in html and "number of images" not in html
    pngs = embedded_pngs(html)
    assert len(pngs) == 3  # confusion matrix, worst and best overlay figures
    tp = np.round(0.6 * np.array(TP)) / 255
    for figure in pngs[1:]:
        rgb = figure[..., :3]
        assert np.any(np.all(np.abs(rgb - tp) < 1.5 / 255, axis=-1))  # true-positive pixels drawn exactly


def test_plot_overlays_downsamples_large_images_and_checks_titles():
    big = np.zeros((2000, 1500, 3), np.uint8)
    fig = plot_overlays([big], ["a"], max_side=300)
    assert fig.axes[0].images[0].get_array().shape[:2] == (286, 215)
    with pytest.raises(ValueError, match="titles"):
        plot_overlays([big], [])


def test_write_run_report_passes_segmentation_examples(tmp_path):
    run = RunDir(tmp_path)
    path = write_run_report(run, history=[], metrics=semantic_metrics(), diagnosis=None,
                            examples={"test": overlays(), "val": []})
    html = path.read_text(encoding="utf-8")
    assert 'id="overlays"' in html and "Misclassified images" not in html
    assert len(embedded_pngs(html)) == 3


def test_multiclass_report_has_no_threshold_and_speaks_of_objects(tmp_path):
    true = np.array([[0, 1, 2, 0]] * 4, np.uint8)
    pred = np.array([[0, 1, 1, 0]] * 4, np.uint8)
    split = segmentation_report([true], [pred], class_names=("bg", "a", "b")).to_dict()
    metrics = {"val": split, "threshold": 0.5}
    assert "finds no objects at all" in baseline_lesson(metrics)["sentence"]
    html = write_report(tmp_path / "r.html", title="mc", config_yaml="", history=[], metrics=metrics,
                        overlays=[]).read_text(encoding="utf-8")
    assert "Foreground threshold" not in html and "Validation Dice" in html and 'id="overlays"' not in html


def test_short_name_elides_the_middle_of_long_names():
    long = "/data/72b18a405555ad491721e29454e5cd325055ce27b1e7849555ed495f21d2327.png"
    short = short_name(long)
    assert len(short) == 24 and short.startswith("72b18a405") and short.endswith("2327.png") and "..." in short
    assert short_name("/data/img_01.tif") == "img_01.tif"

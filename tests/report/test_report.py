from __future__ import annotations

import base64
import io
import re
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from convscope.metrics import classification_report
from convscope.metrics.overfitting import diagnose_overfitting
from convscope.report import (
    history_metrics,
    plot_confusion_matrix,
    plot_examples,
    plot_learning_curves,
    scale_for_display,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script>"

TRAIN = [1.0, 0.75, 0.55, 0.42, 0.33, 0.26, 0.20, 0.15]
VAL = [1.0, 0.8, 0.6, 0.5, 0.45, 0.44, 0.50, 0.58]


def make_history(extra: str | None = None) -> list[dict[str, float]]:
    rows = []
    for i, (t, v) in enumerate(zip(TRAIN, VAL, strict=True)):
        row = {
            "epoch": i + 1,
            "train_loss": t,
            "val_loss": v,
            "train_accuracy": 1 - t / 2,
            "val_accuracy": 1 - v / 2,
        }
        if extra:
            row[f"train_{extra}"], row[f"val_{extra}"] = 1 - t / 3, 1 - v / 3
        row.update(lr=1e-3, seconds=2.0 + i)
        rows.append(row)
    return rows


def make_metrics(names: list[str]) -> dict:
    val = classification_report([0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 2, 0], names).to_dict()
    val["loss"] = 0.43219
    return {
        "val": val,
        "test": {**val, "accuracy": 0.8765, "loss": 0.5123},
        "overfitting": {},
        "params": {"trainable": 1234567, "non_trainable": 0},
    }


def assert_png(path_or_bytes, min_side: int = 150, min_bytes: int = 5_000) -> np.ndarray:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > min_bytes
    pixels = imread(io.BytesIO(data), format="png")
    assert min(pixels.shape[:2]) >= min_side
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    return pixels


def save(fig: Figure, path):
    fig.savefig(path, format="png", dpi=100)
    return path


def test_history_metrics_loss_first_then_accuracy_then_others():
    assert history_metrics(make_history("dice")) == ["loss", "accuracy", "dice"]


def test_plot_learning_curves_writes_a_png(tmp_path):
    history = make_history("dice")
    diagnosis = diagnose_overfitting(history)
    assert diagnosis.overfitting
    fig = plot_learning_curves(history, tmp_path / "curves" / "learning_curves.png", diagnosis=diagnosis)
    pixels = assert_png(tmp_path / "curves" / "learning_curves.png")
    assert pixels.shape[1] > pixels.shape[0]  # three panels side by side
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["Loss", "Accuracy", "Dice"]
    assert all(ax.get_xlabel() == "Epoch" for ax in visible)
    assert not list(tmp_path.glob("curves/.*.tmp"))  # atomic write left nothing behind


def test_plot_learning_curves_accepts_diagnosis_dict_and_single_epoch(tmp_path):
    history = make_history()
    plot_learning_curves(history, tmp_path / "a.png", diagnosis=diagnose_overfitting(history).to_dict())
    plot_learning_curves(history[:1], tmp_path / "b.png")
    assert_png(tmp_path / "b.png")


@pytest.mark.parametrize("k", [2, 10])
def test_plot_confusion_matrix(tmp_path, k):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 50, size=(k, k)) + np.eye(k, dtype=int) * 100
    cm[0] = 0  # a class without images must not produce NaN
    names = [f"class ${i}$ with a long name" for i in range(k)]  # '$' must not trigger mathtext
    fig = plot_confusion_matrix(cm, names)
    assert isinstance(fig, Figure)
    assert_png(save(fig, tmp_path / "cm.png"))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert f"{cm[1, 1]}\n" in "".join(texts)
    # the axis labels and class names lie inside the saved image (nothing cut off at the edges)
    fig.savefig(io.BytesIO(), format="png", dpi=100)
    ax = fig.axes[0]
    inside = fig.bbox.padded(1)
    for artist in [ax.xaxis.label, ax.yaxis.label, *ax.get_yticklabels(), *ax.get_xticklabels()]:
        box = artist.get_window_extent()
        assert inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1), artist.get_text()


def test_plot_confusion_matrix_cell_text():
    cm = np.array([[998, 2, 0], [0, 5, 5], [0, 0, 0]])
    texts = [t.get_text() for t in plot_confusion_matrix(cm, ["a", "b", "c"]).axes[0].texts]
    assert texts[:3] == ["998\n>99%", "2\n<1%", "0"]  # a few images never show as 0%, nor most as 100%
    assert texts[3:6] == ["0", "5\n50%", "5\n50%"]


def test_plot_confusion_matrix_checks_shape():
    with pytest.raises(ValueError, match="class names"):
        plot_confusion_matrix(np.zeros((2, 2), dtype=int), ["a", "b", "c"])


def test_plot_examples_any_dtype(tmp_path):
    rng = np.random.default_rng(1)
    images = [
        rng.integers(0, 65535, size=(28, 28), dtype=np.uint16),
        rng.random((40, 30, 3)).astype(np.float32) * 1000 - 500,
        rng.random((20, 20, 1)) > 0.5,
        np.full((16, 16), 7, dtype=np.uint8),  # constant
        rng.random((16, 16, 2)),
    ]
    titles = [f"true abnormal / pred normal (0.{i}1)" for i in range(len(images))]
    fig = plot_examples(images, titles, ncols=3)
    assert len(fig.axes) == 5
    assert_png(save(fig, tmp_path / "ex.png"))
    assert_png(save(plot_examples([], []), tmp_path / "none.png"), min_side=50, min_bytes=1_000)
    with pytest.raises(ValueError, match="titles"):
        plot_examples(images, titles[:1])


def test_scale_for_display():
    out = scale_for_display(np.array([[100, 200], [300, 500]], dtype=np.uint16))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, [[0, 0.25], [0.5, 1.0]])
    np.testing.assert_array_equal(scale_for_display(np.full((3, 3), 9.0)), np.zeros((3, 3)))
    assert scale_for_display(np.zeros((4, 4, 4))).shape == (4, 4, 3)
    with pytest.raises(ValueError, match="shape"):
        scale_for_display(np.zeros((4, 4, 5)))


def embedded_pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def test_write_report_contains_metrics_images_and_escapes(tmp_path):
    names = ["normal", EVIL, "mitotic"]
    history = make_history()
    diagnosis = diagnose_overfitting(history).to_dict()
    metrics = make_metrics(names)
    metrics["overfitting"] = diagnosis
    curves = plot_learning_curves(history, tmp_path / "learning_curves.png", diagnosis=diagnosis)
    examples = [
        {
            "image": np.arange(64, dtype=np.uint8).reshape(8, 8),
            "true": EVIL,
            "pred": "normal",
            "confidence": 0.91,
            "name": "img_001.tif",
            "split": "test",
        },
        {"true": "normal", "pred": "mitotic", "confidence": 0.55},
    ]
    out = write_report(
        tmp_path / "run" / "report.html",
        title=f"run {EVIL}",
        config_yaml=f"task: classification\nmodel:\n  name: vgg3\ndata:\n  dataset: '{EVIL}'\n",
        history=history,
        metrics=metrics,
        diagnosis=diagnosis,
        figures={"learning_curves": tmp_path / "learning_curves.png", "extra": curves},
        examples=examples,
    )
    html = out.read_text(encoding="utf-8")
    # metric values
    assert "0.8765" in html and "0.5123" in html and "0.4322" in html
    assert "1,234,567" in html and "vgg3" in html
    assert "Validation metrics" in html and "Test metrics" in html
    assert "macro f1" in html.lower() and "Support" in html
    # diagnosis, highlighted
    assert 'class="verdict warn"' in html and "epoch 7" in html
    # embedded images: curves, 2 confusion matrices, 1 thumbnail, 1 extra figure; all valid PNGs
    pngs = embedded_pngs(html)
    assert len(pngs) == 5
    assert all(p[:8] == PNG_SIGNATURE for p in pngs)
    assert "true normal, predicted mitotic (55% confident)" in html and "img_001.tif" in html
    assert "Macro F1" in html  # acronyms keep their capitals mid-phrase
    assert "Validation loss" in html and "Learning rate" in html  # history columns in words
    # escaping: no raw script tag anywhere, the name is shown escaped
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html
    # no external resources
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<details>" in html and "Resolved recipe" in html


def test_write_report_explains_examples_and_evaluated_weights(tmp_path):
    history = make_history()
    diagnosis = diagnose_overfitting(history).to_dict()
    metrics = make_metrics(["normal", "abnormal", "mitotic"])  # test split: 2 of 7 images misclassified
    examples = [
        {"image": np.eye(8), "true": "normal", "pred": "abnormal", "confidence": c, "name": str(i), "split": "test"}
        for i, c in enumerate([0.9996, 0.61])
    ]
    html = write_report(
        tmp_path / "report.html",
        title="run",
        config_yaml="",
        history=history,
        metrics=metrics,
        diagnosis=diagnosis,
        examples=examples[:1],
        weights_epoch=diagnosis["best_epoch"],
    ).read_text(encoding="utf-8")
    assert "The 1 first of the 2 misclassified test images." in html
    assert "confidence</span> &gt;99%" in html and "100%<" not in html  # a 0.9996 guess is not certainty
    assert "test image #0" in html
    assert f"weights of epoch {diagnosis['best_epoch']}" in html
    assert "Test accuracy" in html and "87.6% of 7 images" in html
    html = write_report(
        tmp_path / "report.html", title="run", config_yaml="", history=history, metrics=metrics, examples=examples
    ).read_text(encoding="utf-8")
    assert "The 2 misclassified test images, the most confident mistakes first" in html


def test_write_report_generic_metrics_and_missing_parts(tmp_path):
    history = make_history("dice")
    metrics = {"val": {"dice": 0.81234, "iou": 0.7, "loss": 0.2, "n_images": 12}}
    out = write_report(
        tmp_path / "report.html",
        title="seg",
        config_yaml="not: [valid",
        history=history,
        metrics=metrics,
        diagnosis=None,
        figures={},
        examples=None,
    )
    html = out.read_text(encoding="utf-8")
    assert "Dice" in html and "0.8123" in html and "IoU" in html
    assert "Test metrics" not in html and "Misclassified images" not in html
    assert len(embedded_pngs(html)) == 1  # learning curves drawn from the history
    assert 'class="verdict' not in html


def test_no_pyplot_figures_leak(tmp_path):
    plot_confusion_matrix(np.eye(3, dtype=int), ["a", "b", "c"])
    plot_learning_curves(make_history(), tmp_path / "c.png")
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_report_accuracy_never_rounds_a_mistake_away() -> None:
    from convscope.report.html import percent

    assert percent(0.9995) == "99.95%" and percent(0.99999) == "99.999%"
    assert percent(1.0) == "100.0%" and percent(0.876) == "87.6%" and percent(0.0004) == "0.04%"


def test_report_shows_fast_validation_seconds(tmp_path):
    history = make_history()
    for row in history:
        row["validation_seconds"] = 0.043
    html = write_report(tmp_path / "r.html", title="run", config_yaml="", history=history,
                        metrics=make_metrics(["a", "b", "c"])).read_text(encoding="utf-8")
    assert "<td>0.043</td>" in html.replace('<td class="num">', "<td>") and "<td>0.0</td>" not in html


def test_report_gaps_say_which_side_is_better(tmp_path):
    diagnosis = {"verdict": "no overfitting detected", "overfitting": False, "best_epoch": 14, "n_epochs": 15,
                 "best_val_loss": 0.0183, "train_loss_at_best": 0.0384, "generalisation_gap": -0.0201,
                 "accuracy_gap": -0.0076, "final_gap": 0.0182, "advice": "", "summary": ""}
    html = write_report(tmp_path / "r.html", title="run", config_yaml="", history=make_history(),
                        metrics=make_metrics(["a", "b", "c"]), diagnosis=diagnosis).read_text(encoding="utf-8")
    assert "0.0201 lower on validation: validation better" in html  # loss lower on validation
    assert "0.0076 higher on validation: validation better" in html  # accuracy higher on validation
    assert "0.0182 higher on validation: validation worse" in html
    assert "-0.0201" not in html and "Gap:" not in html


def test_a_gallery_shows_every_mistake_when_there_are_a_few_more_than_the_limit():
    from convscope.tasks.classification import N_EXAMPLES, ClassificationTask

    task = ClassificationTask(class_names=("a", "b", "c"))
    n = 60
    labels = np.zeros(n, np.int64)
    images = [np.zeros((4, 4, 1), np.uint8)] * n
    for wrong, shown in ((N_EXAMPLES + 1, N_EXAMPLES + 1), (N_EXAMPLES + N_EXAMPLES // 4, N_EXAMPLES + N_EXAMPLES // 4),
                         (n, N_EXAMPLES)):
        probs = np.tile([0.8, 0.1, 0.1], (n, 1))
        probs[:wrong] = np.linspace(0.5, 0.9, wrong)[:, None] * [0, 1, 0] + [0.05, 0, 0.05]
        assert len(task._mistakes(images, labels, probs, [str(i) for i in range(n)])) == shown

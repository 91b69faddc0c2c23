"""The report's "Do I need deep learning?" sentence follows the gap between network and baseline."""

from __future__ import annotations

import pytest

from convscope.report.baseline import baseline_section


def _semantic(dice: float, n: int = 4, **extra) -> dict:
    return {"dice": dice, "iou": dice / (2 - dice), "pixel_accuracy": 0.9, "n_images": n, **extra}


def _instances(f1: float, n: int = 4, **extra) -> dict:
    return {"n_images": n, "matching": {"0.5": {"f1": f1, "accuracy": f1 / 2, "panoptic_quality": f1 / 3}}, **extra}


@pytest.mark.parametrize(("net", "base", "start"), [
    (0.95, 0.70, "Yes: the network is 0.250 above"),
    (0.85, 0.80, "Somewhat: the network is 0.050 above"),
    (0.80, 0.79, "Probably not"),
    (0.60, 0.80, "No: the network is below"),
])
def test_sentence_follows_the_gain(net: float, base: float, start: str) -> None:
    section = baseline_section(_semantic(net), _semantic(base, baseline="Otsu threshold"), network_name="unet")
    assert section.sentence.startswith(start)
    assert f"Dice {net:.3f} against {base:.3f} for Otsu threshold on the same 4 test images" in section.sentence
    assert section.gain == pytest.approx(net - base)
    assert [r["method"] for r in section.rows] == ["unet", "Otsu threshold"]


def test_instances_use_f1_at_iou_half() -> None:
    section = baseline_section(_instances(0.9), _instances(0.5, baseline="Otsu + distance-transform watershed"))
    assert section.metric == "F1 at IoU 0.5" and section.rows[1]["PQ@0.5"] == pytest.approx(0.5 / 3)
    assert section.sentence.startswith("Yes")


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"scored with .* but the baseline"):
        baseline_section(_semantic(0.9), _instances(0.5))
    with pytest.raises(ValueError, match="baseline on 3"):
        baseline_section(_semantic(0.9), _semantic(0.8, n=3))

"""convscope learning-curve: one run per fraction, same budget, curve files written atomically and reused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from convscope.config import load_recipe
from convscope.errors import ConvscopeError
from convscope.evaluation.learning_curve import count_train_images, learning_curve, parse_fractions


@pytest.mark.slow
def test_curve_trains_each_fraction_with_the_same_budget(tiny_recipe: Path, tmp_path: Path) -> None:
    config = load_recipe(tiny_recipe, ["train.epochs=1"])
    n_full = count_train_images(config, None)
    out = tmp_path / "curve"
    points = learning_curve(config, [0.25, 1.0], out, log=lambda _m: None)
    assert [p.n_train for p in points] == [round(0.25 * n_full), n_full]
    assert [p.epochs for p in points] == [4, 1]  # steps budget: 1 / 0.25 epochs on a quarter of the images
    assert all(0.0 <= p.test <= 1.0 for p in points)
    rows = list(csv.DictReader((out / "curve.csv").open()))
    assert [int(r["n_train"]) for r in rows] == [p.n_train for p in points]
    saved = json.loads((out / "curve.json").read_text())
    assert saved["metric"] == "accuracy" and saved["n_train_full"] == n_full
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    config_yaml = (out / f"n{points[0].n_train}" / "config.yaml").read_text()
    assert f"max_train_images: {points[0].n_train}" in config_yaml
    logs: list[str] = []  # a second call reads the finished points back instead of training again
    again = learning_curve(config, [0.25, 1.0], out, log=logs.append)
    assert [p.test for p in again] == [p.test for p in points]
    assert all("read back" in m for m in logs)


def test_parse_fractions() -> None:
    assert parse_fractions("1,0.1, 0.5,0.1") == [0.1, 0.5, 1.0]
    for bad in ("0,1", "1.5", "a,b", ""):
        with pytest.raises(ConvscopeError, match="--fractions"):
            parse_fractions(bad)


def test_segmentation_max_train_images_keeps_val_and_test(tmp_path: Path) -> None:
    from convscope.config import DataConfig
    from convscope.datasets.segmentation import load_segmentation

    cfg = DataConfig(dataset="synthetic_nuclei", synthetic_count=12, synthetic_size=32)
    full = load_segmentation(cfg, seed=1)
    part = load_segmentation(cfg.model_copy(update={"max_train_images": 5}), seed=1)
    assert len(part.train) == 5 and len(part.val) == len(full.val) and len(part.test) == len(full.test)
    assert set(part.train.paths) < set(full.train.paths)

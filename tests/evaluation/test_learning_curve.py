"""convscope learning-curve: one run per fraction, same budget, curve files written atomically and reused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from convscope.config import load_recipe, parse_config
from convscope.errors import ConvscopeError
from convscope.evaluation.learning_curve import (
    allowed_steps,
    count_train_images,
    learning_curve,
    parse_fractions,
    point_config,
)
from convscope.training.tensors import ShuffledBatches


@pytest.mark.slow
def test_curve_trains_each_fraction_with_the_same_budget(tiny_recipe: Path, tmp_path: Path) -> None:
    config = load_recipe(tiny_recipe, ["train.epochs=1"])
    n_full = count_train_images(config, None)
    out = tmp_path / "curve"
    points = learning_curve(config, [0.25, 1.0], out, log=lambda _m: None)
    assert [p.n_train for p in points] == [round(0.25 * n_full), n_full]
    assert [p.epochs for p in points] == [1, 1]  # steps budget: same epochs, each of n_full images
    assert points[0].steps == points[1].steps > 0
    assert all(0.0 <= p.test <= 1.0 for p in points)
    rows = list(csv.DictReader((out / "curve.csv").open()))
    assert [int(r["n_train"]) for r in rows] == [p.n_train for p in points]
    saved = json.loads((out / "curve.json").read_text())
    assert saved["metric"] == "accuracy" and saved["n_train_full"] == n_full
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG"
    config_yaml = (out / f"n{points[0].n_train}" / "config.yaml").read_text()
    assert f"max_train_images: {points[0].n_train}" in config_yaml
    assert f"images_per_epoch: {n_full}" in config_yaml
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


@pytest.mark.parametrize("n_full", [1000, 54001, 997])
def test_steps_budget_is_equal_for_every_fraction(n_full: int) -> None:
    config = parse_config({"task": "classification", "train": {"epochs": 3, "batch_size": 32}})
    sizes = [max(1, round(f * n_full)) for f in (0.1, 0.25, 0.3, 0.5, 1.0)]
    steps = {allowed_steps(point_config(config, n, n_full, "steps"), n) for n in sizes}
    assert steps == {allowed_steps(config, n_full)}
    per_pass = [allowed_steps(point_config(config, n, n_full, "epochs"), n) for n in sizes]
    assert per_pass == sorted(per_pass) and per_pass[0] < per_pass[-1]  # "epochs": fewer steps for fewer images


def test_segmentation_steps_do_not_depend_on_the_number_of_images() -> None:
    config = parse_config({"task": "semantic", "train": {"epochs": 2}, "data": {"patches_per_epoch": 64}})
    assert allowed_steps(point_config(config, 5, 50, "steps"), 5) == allowed_steps(config, 50)


def test_an_epoch_of_more_samples_than_images_cycles_through_all_of_them() -> None:
    batches = ShuffledBatches(10, 4, seed=3, samples=26)
    batches.set_epoch(2)
    seen = torch.cat(list(batches))
    assert len(batches) == 7 and len(seen) == 26
    counts = torch.bincount(seen, minlength=10)
    assert counts.min() >= 2 and counts.max() <= 3  # whole passes, then part of one
    plain = ShuffledBatches(10, 4, seed=3)
    plain.set_epoch(2)
    assert torch.equal(torch.cat(list(plain)), seen[:10])  # one pass: the order of the plain batches

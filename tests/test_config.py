from __future__ import annotations

from pathlib import Path

import pytest

from convscope.config import apply_overrides, dump_config, load_recipe, parse_config
from convscope.errors import ConvscopeError


def test_defaults_have_the_contract_sections() -> None:
    cfg = parse_config({})
    dumped = dump_config(cfg, {"provenance": {"torch": "x"}})
    for key in ("data:", "model:", "train:", "epochs:", "batch_size:", "learning_rate:", "seed:", "provenance:"):
        assert key in dumped


def test_unknown_key_names_key_and_suggests() -> None:
    with pytest.raises(ConvscopeError, match=r"unknown key 'train.epoch' \(did you mean 'train.epochs'\?\)"):
        parse_config({"train": {"epoch": 3}}, source="r.yaml")


def test_bad_value_names_key() -> None:
    with pytest.raises(ConvscopeError, match=r"'train\.batch_size'"):
        parse_config({"train": {"batch_size": 0}})


def test_set_overrides_dotted_keys_and_rejects_unknown(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  epochs: 5\n")
    cfg = load_recipe(recipe, ["train.epochs=2", "augment.rotation=180", "model.options.dropout=0.5"])
    assert cfg.train.epochs == 2 and cfg.augment.rotation == 180 and cfg.model.options == {"dropout": 0.5}
    with pytest.raises(ConvscopeError, match=r"--set train.epochz: unknown key \(did you mean 'train.epochs'"):
        load_recipe(recipe, ["train.epochz=2"])
    with pytest.raises(ConvscopeError, match="expected key=value"):
        apply_overrides({}, ["train.epochs"])


def test_missing_and_invalid_recipe(tmp_path: Path) -> None:
    with pytest.raises(ConvscopeError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConvscopeError, match="not valid YAML"):
        load_recipe(bad)

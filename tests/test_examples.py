"""Every recipe in examples/ is valid and names a registered model and data set of its task."""

from __future__ import annotations

from pathlib import Path

import pytest

from convscope import load_recipe
from convscope.datasets import dataset_info
from convscope.models import get_entry

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def test_course_recipes_exist() -> None:
    names = {p.stem for p in EXAMPLES}
    expected = {f"ex4_mnist_{m}" for m in ("dense_10", "dense_10_10", "dense_15_15", "cnn")}
    expected |= {f"ex5_rbc_{m}" for m in ("vgg1", "vgg2", "vgg3", "vgg16_transfer", "vgg16_finetune")}
    expected |= {f"ex6_unet_{d}" for d in ("bacteria_synthetic", "isbi2012", "dsb2018")}
    expected |= {f"ex7_stardist_{d}" for d in ("synthetic", "dsb2018")}
    assert expected <= names


@pytest.mark.parametrize("recipe", EXAMPLES, ids=lambda p: p.stem)
def test_recipe_is_valid(recipe: Path) -> None:
    config = load_recipe(recipe)
    assert config.task in get_entry(config.model.name).tasks
    assert config.task in dataset_info(config.data.dataset).tasks

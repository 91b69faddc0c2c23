"""A built-in model as a starting point and a judge: `model.weights: nuclei`, `convscope finetune nuclei`,
`convscope evaluate nuclei --data DIR` (the user's labelled folder, nothing written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from convscope import evaluate_labelled, train
from convscope.config import parse_config
from convscope.errors import ConvscopeError
from convscope.io.image import write_image
from convscope.napari import samples
from convscope.pretrained import get_pretrained
from convscope.runs import load_run
from convscope.tasks import task_from_recipe
from convscope.training.finetune import finetune_recipe
from convscope.training.fit import build_model


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """images/ + masks/: the shipped DSB 2018 crop as it is, flipped, and twice its size (nuclei twice as big)."""
    (image, _, _), (truth, _, _) = samples.dsb2018_nuclei()
    folder = tmp_path_factory.mktemp("labelled")
    big = np.ones((2, 2), np.uint8)
    pairs = {"crop": (image, truth), "flipped": (image[:, ::-1], truth[:, ::-1]),
             "big": (np.kron(image, big), np.kron(truth, big.astype(truth.dtype)))}
    for stem, (x, y) in pairs.items():
        write_image(folder / "images" / f"{stem}.png", np.ascontiguousarray(x))
        write_image(folder / "masks" / f"{stem}.tif", np.ascontiguousarray(y).astype(np.uint16))
    return folder


def test_builtin_scored_on_a_labelled_folder_rescales_each_image(labelled: Path) -> None:
    before = sorted(p.name for p in labelled.rglob("*"))
    found = evaluate_labelled("nuclei", labelled, log=lambda _m: None)
    assert found.result.kind == "instances" and found.result.metrics["n_images"] == 3
    assert found.result.metrics["matching"]["0.5"]["f1"] >= 0.7
    by_name = dict(zip([r["name"] for r in found.result.metrics["per_image"]], found.diameters, strict=True))
    assert by_name["big.png"] == pytest.approx(2 * by_name["crop.png"], rel=0.25)  # estimated per image
    given = evaluate_labelled("nuclei", labelled, diameter=15.0, log=lambda _m: None)
    assert given.diameters == [15.0, 15.0, 15.0]
    assert sorted(p.name for p in labelled.rglob("*")) == before  # nothing written


def test_recipe_can_start_from_builtin_weights() -> None:
    builtin = get_pretrained("nuclei")
    raw = dict(builtin.recipe)
    raw["model"] = {**raw["model"], "weights": "nuclei"}
    config = parse_config(raw)
    task = task_from_recipe(config, ("background", "object"))
    model = build_model(config, task, tuple(builtin.model_config["input_shape"]))
    reference = builtin.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items() if v.is_floating_point())


def test_recipe_weights_of_another_architecture_is_one_line_error() -> None:
    raw = dict(get_pretrained("nuclei").recipe)
    raw["model"] = {"name": "stardist", "weights": "nuclei", "options": {"depth": 2, "base_filters": 8}}
    config = parse_config(raw)
    task = task_from_recipe(config, ("background", "object"))
    with pytest.raises(ConvscopeError, match="does not fit model 'stardist'"):
        build_model(config, task, (128, 128, 1))


@pytest.mark.slow
def test_finetune_from_builtin_writes_a_complete_run(labelled: Path, tmp_path: Path) -> None:
    config = finetune_recipe("nuclei", labelled, epochs=1)
    assert config.model.weights == "nuclei" and config.data.path == labelled.resolve()
    assert config.train.learning_rate == pytest.approx(get_pretrained("nuclei").recipe["train"]["learning_rate"])
    small = config.model_copy(update={"data": config.data.model_copy(update={"patches_per_epoch": 8,
                                                                             "patch_size": 64})})
    train(small, tmp_path / "run", log=lambda _m: None)
    run = load_run(tmp_path / "run", device="cpu")
    assert run.finished and (tmp_path / "run" / "report.html").is_file()

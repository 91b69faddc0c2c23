from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from convscope import load_recipe, train
from convscope.errors import ConvscopeError
from convscope.inference import Predictor, expand_inputs, write_predictions


@pytest.fixture
def run_dir(tiny_recipe: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    train(load_recipe(tiny_recipe, ["train.epochs=1"]), out, log=lambda _m: None)
    return out


def test_predict_arrays_and_files_agree(run_dir: Path, tmp_path: Path) -> None:
    predictor = Predictor.from_run(run_dir)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    probs = predictor.predict(images)
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1)
    folder = tmp_path / "new_images"
    folder.mkdir()
    for i, img in enumerate(images):
        iio.imwrite(folder / f"img{i}.png", img[:, :, 0])
    rows = predictor.predict_paths([folder])
    assert [Path(r.path).name for r in rows] == ["img0.png", "img1.png", "img2.png"]
    assert np.allclose([r.probabilities for r in rows], probs, atol=1e-6)


def test_wrong_size_names_the_file(run_dir: Path, tmp_path: Path) -> None:
    iio.imwrite(tmp_path / "big.png", np.zeros((40, 40), np.uint8))
    with pytest.raises(ConvscopeError, match=r"big\.png: image is 40x40x1 but the model takes 32x32x1"):
        Predictor.from_run(run_dir).predict_paths([tmp_path / "big.png"])


def test_inputs_and_outputs_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConvscopeError, match="no such file"):
        expand_inputs([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvscopeError, match="no images"):
        expand_inputs([tmp_path / "empty"])
    image = tmp_path / "a.png"
    image.write_bytes(b"x")
    with pytest.raises(ConvscopeError, match="is one of the inputs"):
        write_predictions([], image, class_names=["a", "b"], inputs=[image])
    assert image.read_bytes() == b"x"

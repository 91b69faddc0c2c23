"""convscope data check: findings on small synthetic folders (pairs, binary masks, leakage, images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from convscope.datasets.check import check_data, relabel_folder
from convscope.datasets.facts import difference_hash, image_facts, mask_facts
from convscope.errors import ConvscopeError
from convscope.io import read_image, write_image


def _discs(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """Instance labels: n separate discs (radius 5) on a grid, ids 1..n."""
    labels = np.zeros((size, size), np.uint16)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx = 10 + 20 * (i // 3), 10 + 20 * (i % 3)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 25] = i + 1
    return labels


def _paired(root: Path, n: int = 6, *, binary: bool = False, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i in range(n):
        labels = _discs(3 + i % 4)
        image = (rng.integers(0, 40, labels.shape) + 150 * (labels > 0)).astype(np.uint8)
        write_image(root / "images" / f"im{i}.png", image)
        write_image(root / "masks" / f"im{i}.png", ((labels > 0) * 255).astype(np.uint8) if binary else labels)
    return root


def _severity(result, check: str) -> str:
    return next(f.severity for folder in result.folders for f in folder.findings if f.check == check)


def test_binary_masks_are_errors_for_instance_tasks_only(tmp_path: Path) -> None:
    root = _paired(tmp_path / "bin", binary=True)
    assert check_data(root, task="semantic").errors == []
    result = check_data(root, task="stardist", patch_size=32)
    assert _severity(result, "instance ids") == "error"
    assert "binary" in result.verdict and "--relabel" in result.verdict
    assert _severity(check_data(root, task="flows", patch_size=32), "instance ids") == "error"


def test_instance_labels_pass_and_give_diameter_suggestions(tmp_path: Path) -> None:
    result = check_data(_paired(tmp_path / "inst"), task="stardist", patch_size=32)
    assert result.errors == []
    assert _severity(result, "instance ids") == "ok"
    objects = next(f.finding for f in result.folders[0].findings if f.check == "objects")
    assert "median diameter 10.2 px" in objects  # a disc of radius 5 has 81 pixels: sqrt(4 * 81 / pi) = 10.16
    assert result.suggestions["--diameter"].startswith("10 ")


def test_relabel_writes_instance_copies_and_never_the_inputs(tmp_path: Path) -> None:
    root = _paired(tmp_path / "bin", binary=True)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert relabel_folder(root, tmp_path / "fixed") == 6
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    labels = read_image(tmp_path / "fixed" / "masks" / "im0.tif")
    assert labels.dtype == np.uint16 and labels.max() == 3
    assert check_data(tmp_path / "fixed", task="stardist", patch_size=32).errors == []
    with pytest.raises(ConvscopeError, match="not empty"):
        relabel_folder(root, tmp_path / "fixed")
    with pytest.raises(ConvscopeError, match="inside the input"):
        relabel_folder(root, root / "relabelled")


def test_pair_problems_are_listed(tmp_path: Path) -> None:
    root = _paired(tmp_path / "p")
    (root / "masks" / "im1.png").unlink()
    write_image(root / "images" / "im2.tif", read_image(root / "images" / "im2.png"))
    write_image(root / "masks" / "orphan.png", _discs(2))
    findings = [f.finding for f in check_data(root).folders[0].findings if f.check == "pairs"]
    assert any("without a mask" in f and "im1.png" in f for f in findings)
    assert any("without an image" in f and "orphan.png" in f for f in findings)
    assert any("im2.png + im2.tif" in f for f in findings)


def test_split_ids_empty_masks_and_border(tmp_path: Path) -> None:
    labels = _discs(3)
    labels[labels == 3] = 1  # one id for two separate discs
    labels[0:4, 0:4] = 2  # an object cut by the image edge (joins disc 2? no: disc 2 is at (10, 30))
    facts = mask_facts(labels)
    assert facts.split_ids >= 1 and facts.border_ids >= 1
    assert mask_facts(np.zeros((8, 8), np.uint8)).empty
    assert mask_facts((_discs(3) > 0).astype(np.uint8)).binary
    assert not mask_facts((_discs(1) > 0).astype(np.uint8)).binary  # one object, one value: fine


def test_image_facts_alpha_nan_constant_and_stacks(tmp_path: Path) -> None:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = np.arange(16, dtype=np.uint8)[None, :, None]
    rgba[..., 3] = 255
    facts = image_facts(rgba)
    assert facts.alpha == "constant" and not facts.constant and facts.vmax == 15
    nan = np.ones((8, 8), np.float32)
    nan[0, 0] = np.nan
    assert image_facts(nan).non_finite == 1 and image_facts(nan).constant
    root = tmp_path / "stack"
    _paired(root, n=3)
    tifffile.imwrite(root / "images" / "im0.tif", np.zeros((64, 64, 7), np.uint16), photometric="minisblack",
                     planarconfig="contig")
    (root / "images" / "im0.png").unlink()
    checks = {f.check: f for f in check_data(root, patch_size=32).folders[0].findings}
    assert "z-stack?" in checks and checks["channels"].severity == "error"


def test_difference_hash_survives_rescaling_and_brightness() -> None:
    rng = np.random.default_rng(1)
    base = np.kron(rng.integers(0, 255, (8, 9)), np.ones((16, 16))).astype(np.uint8)
    assert difference_hash(base) == difference_hash(np.kron(base, np.ones((2, 2))).astype(np.uint8))
    assert difference_hash(base) == difference_hash((base // 2 + 10).astype(np.uint8))
    assert difference_hash(base) != difference_hash(base[:, ::-1])


def test_leakage_across_classification_splits(class_folder: Path) -> None:
    src = class_folder / "train" / "bright" / "bright_0.png"
    (class_folder / "test" / "bright" / "copy.png").write_bytes(src.read_bytes())
    result = check_data(class_folder)
    leak = {f.check: f for f in result.folders[-1].findings}
    assert leak["leakage (exact)"].severity == "warning" and "copy.png" in leak["leakage (exact)"].finding
    assert _severity(check_data(class_folder), "class balance") == "ok"
    assert _severity(check_data(class_folder, task="stardist"), "task") == "error"


def test_near_duplicates_need_the_hash_and_the_thumbnail(class_folder: Path) -> None:
    src = read_image(class_folder / "train" / "dark" / "dark_1.png")
    write_image(class_folder / "test" / "dark" / "brighter.png", (src // 2 + 40).astype(np.uint8))
    leak = {f.check: f for f in check_data(class_folder).folders[-1].findings}
    assert leak["leakage (exact)"].severity == "ok"
    assert leak["leakage (near)"].severity == "warning" and "dark_1.png = test:brighter.png" in leak[
        "leakage (near)"].finding
    assert "1 near-duplicate pair(s)" in leak["leakage (near)"].finding  # the random crops are not near duplicates


def test_class_imbalance_is_a_warning(class_folder: Path) -> None:
    for p in sorted((class_folder / "train" / "dark").iterdir())[2:]:
        p.unlink()
    assert _severity(check_data(class_folder), "class balance") == "warning"


def test_unknown_task_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConvscopeError, match="unknown task"):
        check_data(tmp_path, task="detection")
    with pytest.raises(ConvscopeError, match="not found"):
        check_data(tmp_path / "nope")


@pytest.mark.realdata
def test_isbi2012_binary_masks_found_for_instance_training(shared_data: Path) -> None:
    result = check_data("isbi2012", data_dir=shared_data, task="stardist")
    assert result.errors and "30 of 30 masks are binary" in result.errors[0].finding
    assert check_data("isbi2012", data_dir=shared_data, task="semantic").errors == []

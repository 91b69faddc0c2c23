"""dsb2018 image kinds: each kind split on its own, the fluorescence split unchanged by adding kinds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from convscope.config import DataConfig
from convscope.datasets.paired import seeded_split
from convscope.datasets.segmentation import FRACTIONS, SPLIT_SEED, dsb2018_split_ids, image_kinds
from convscope.errors import ConvscopeError


def _kinds() -> dict[str, str]:
    table = {f"f{i:03d}": "fluorescence_gray" for i in range(40)}
    table.update({f"b{i:03d}": "brightfield_gray" for i in range(12)})
    table.update({f"s{i:03d}": "color_stained" for i in range(20)})
    return table


def test_default_kinds_is_fluorescence_only() -> None:
    assert DataConfig(dataset="dsb2018").kinds == ("fluorescence_gray",)


def test_each_kind_is_split_on_its_own() -> None:
    table = _kinds()
    fluo = [i for i, k in table.items() if k == "fluorescence_gray"]
    alone = seeded_split(fluo, fractions=FRACTIONS, seed=SPLIT_SEED)
    both = dsb2018_split_ids(table, ["fluorescence_gray", "brightfield_gray"])
    for split_alone, split_both in zip(alone, both, strict=True):
        assert [i for i in split_both if i.startswith("f")] == split_alone
    bright = [i for i in both[2] if i.startswith("b")]
    assert len(bright) == 2  # round(0.15 * 12)
    assert not any(i.startswith("s") for part in both for i in part)
    assert set(both[0]).isdisjoint(both[2]) and set(both[1]).isdisjoint(both[2])


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ConvscopeError, match="no image of kind"):
        dsb2018_split_ids({"a": "fluorescence_gray"}, ["brightfield_gray"])


def test_image_kinds_reads_the_table(tmp_path: Path) -> None:
    (tmp_path / "image_types.csv").write_text("id,height,width,kind,n_nuclei\na,8,8,color_stained,1\n")
    assert image_kinds(tmp_path) == {"a": "color_stained"}
    with pytest.raises(ConvscopeError, match=r"image_types\.csv"):
        image_kinds(tmp_path / "missing")


@pytest.mark.realdata
def test_real_fluorescence_test_split_is_todays(shared_data: Path) -> None:
    """Adding brightfield images leaves the 81 fluorescence test images of every reported number in place."""
    folder = shared_data / "dsb2018"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (real data sets live in ../shared/data)")
    table = image_kinds(folder)
    _, _, test = dsb2018_split_ids(table, ["fluorescence_gray", "brightfield_gray"])
    fluo_test = [i for i in test if table[i] == "fluorescence_gray"]
    # the sorted fluorescence test ids of the split before data.kinds existed (main at b6be738)
    assert len(fluo_test) == 81
    assert hashlib.sha256("\n".join(fluo_test).encode()).hexdigest()[:16] == "4a9c406ab2562205"
    assert len(test) - len(fluo_test) == 2  # round(0.15 * 16) brightfield images

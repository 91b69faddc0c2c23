"""Reading back what `convscope predict` wrote: output files found in a moved folder, source images found from the
folder predict ran in, and only convscope's own CSVs recognised."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from convscope.errors import ConvscopeError
from convscope.inference.outputs import Prediction, write_predictions
from convscope.inference.written import (
    is_class_table,
    label_image_attributes,
    prediction_table,
    read_class_table,
    read_prediction_folder,
)
from convscope.io.image import write_image

IMAGE = np.arange(64, dtype=np.uint16).reshape(8, 8)


def _instance_folder(project: Path) -> Path:
    """What `convscope predict RUN in --out labels` run in ``project`` writes for in/a/x.tif and in/b/x.tif
    (relative paths, as given on the command line; outputs in subfolders)."""
    rows = ["path,labels,count,mean_area"]
    for sub in ("a", "b"):
        write_image(project / "in" / sub / "x.tif", IMAGE)
        write_image(project / "labels" / sub / "x_labels.tif", (IMAGE > 30).astype(np.uint16))
        rows.append(f"in/{sub}/x.tif,labels/{sub}/x_labels.tif,1,33.00")
    (project / "labels" / "predictions.csv").write_text("\n".join(rows) + "\n")
    return project / "labels"


def test_outputs_and_sources_are_found_from_anywhere_after_the_project_moved(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _instance_folder(tmp_path / "project")
    shutil.move(tmp_path / "project", tmp_path / "moved")
    monkeypatch.chdir(tmp_path)  # neither the folder predict ran in nor the output folder
    found = read_prediction_folder(tmp_path / "moved" / "labels")
    assert found.kind == "instances" and found.complete and not found.missing
    assert [i.name for i in found.images] == ["a/x", "b/x"]
    assert [i.source for i in found.images] == [tmp_path / "moved" / "in" / s / "x.tif" for s in "ab"]
    assert found.images[1].files == {"labels": tmp_path / "moved" / "labels" / "b" / "x_labels.tif"}
    assert found.images[0].values == {"count": "1", "mean_area": "33.00"}


def test_missing_outputs_and_sources_are_reported_not_raised(tmp_path: Path) -> None:
    folder = _instance_folder(tmp_path / "project")
    (folder / "a" / "x_labels.tif").unlink()
    shutil.rmtree(tmp_path / "project" / "in" / "b")
    found = read_prediction_folder(folder)
    assert found.missing == ("labels/a/x_labels.tif",)
    assert [(i.name, i.source, i.recorded) for i in found.images] == [("b/x", None, "in/b/x.tif")]


def test_an_interrupted_prediction_is_read_as_far_as_it_went(tmp_path: Path) -> None:
    folder = _instance_folder(tmp_path / "project")
    (folder / "predictions.csv").rename(folder / "predictions.csv.partial")
    assert prediction_table(folder) == folder / "predictions.csv.partial"
    found = read_prediction_folder(folder)
    assert not found.complete and len(found.images) == 2


def test_semantic_probability_maps_and_foreign_outputs(tmp_path: Path) -> None:
    write_image(tmp_path / "img.tif", IMAGE)
    sem = tmp_path / "sem"
    write_image(sem / "img_mask.tif", (IMAGE > 30).astype(np.uint8))
    write_image(sem / "img_prob.tif", IMAGE.astype(np.float32) / 64)
    (sem / "predictions.csv").write_text(f"path,mask,foreground_fraction\n{tmp_path / 'img.tif'},"
                                         f"{sem / 'img_mask.tif'},0.5\n")
    image = read_prediction_folder(sem).images[0]
    assert image.source == tmp_path / "img.tif" and set(image.files) == {"mask", "probability"}
    other = tmp_path / "other"
    for output in ("prob", "dist"):
        write_image(other / f"img_{output}.tif", IMAGE.astype(np.float32))
    (other / "predictions.csv").write_text(f"path,prob,dist\nimg.tif,{other / 'img_prob.tif'},"
                                           f"{other / 'img_dist.tif'}\n")
    found = read_prediction_folder(other)
    assert found.kind == "outputs" and found.images[0].name == "img"
    assert found.images[0].source == tmp_path / "img.tif"  # a relative source: beside the output folder
    assert set(found.images[0].files) == {"prob", "dist"}


def test_only_convscope_outputs_are_recognised(tmp_path: Path) -> None:
    (tmp_path / "predictions.csv").write_text("id,area\n1,30\n")
    assert prediction_table(tmp_path) is None and not is_class_table(tmp_path / "predictions.csv")
    assert prediction_table(tmp_path / "nowhere") is None
    (tmp_path / "zarr.json").write_text('{"attributes": {"ome": {"multiscales": []}}}')
    assert label_image_attributes(tmp_path) is None
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert not is_class_table(tmp_path / "bad.csv")
    with pytest.raises(ConvscopeError, match=r"no predictions\.csv of `convscope predict`"):
        read_prediction_folder(tmp_path)


def test_a_classifiers_csv_is_read_with_its_images(tmp_path: Path) -> None:
    write_image(tmp_path / "cells" / "c1.tif", IMAGE)
    rows = [Prediction(str(tmp_path / "cells" / "c1.tif"), "normal", 0.75, (0.25, 0.75)),
            Prediction("gone.tif", "abnormal", 0.6, (0.6, 0.4))]
    write_predictions(rows, tmp_path / "classes.csv", class_names=("abnormal", "normal"))
    assert is_class_table(tmp_path / "classes.csv")
    table = read_class_table(tmp_path / "classes.csv")
    assert table.class_names == ("abnormal", "normal")
    assert [(p, source) for p, source in table.rows] == [(rows[0], tmp_path / "cells" / "c1.tif"), (rows[1], None)]
    (tmp_path / "broken.csv").write_text("path,class,probability,p_a,p_b\nx.tif,a,high,0.5,0.5\n")
    with pytest.raises(ConvscopeError, match=r"broken\.csv: a broken row"):
        read_class_table(tmp_path / "broken.csv")

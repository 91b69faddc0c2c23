"""What `convscope predict` wrote, read back (napari's reader opens it): the output folder of a segmentation
(``predictions.csv`` and the images it lists), a classifier's CSV, and what an OME-Zarr label image of block-wise
prediction records.

Paths in these CSVs are written as they were given on the command line, so relative ones are relative to the folder
`convscope predict` ran in. A row's output file is looked up in the output folder itself (which may have been moved
since); the folder predict ran in is recovered from it (``labels/a_labels.tif`` found as
``/home/me/project/labels/a_labels.tif`` -> ``/home/me/project``) and the source image is looked up there, then in
the current folder and beside the output folder.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

from convscope.errors import ConvscopeError
from convscope.inference.outputs import (
    CLASS_COLUMNS,
    LABEL_COLUMNS,
    LABELS_ENDING,
    MASK_COLUMNS,
    MASK_ENDING,
    PREDICTIONS_CSV,
    PROBABILITY_ENDING,
    Prediction,
)

Kind = Literal["instances", "semantic", "outputs"]
#: The column of ``predictions.csv`` naming each image's file, and how that file's name ends, by kind of folder.
_FILE_COLUMN = {"instances": ("labels", LABELS_ENDING), "semantic": ("mask", MASK_ENDING)}


@dataclass(frozen=True)
class WrittenImage:
    """One input image's outputs in a prediction folder.

    Attributes
    ----------
    name : str
        The output name: the image's path relative to the inputs' common folder, without suffix (``a/x``).
    recorded : str
        The source image's path as the CSV records it.
    source : Path or None
        The source image, where it was found; None when it is not found (moved, or on another machine).
    files : dict of str to Path
        The output files found: ``labels`` (instances, uint16/uint32 TIFF), ``mask`` [and ``probability``]
        (semantic), or one per output of another tool's bioimage.io model (float32 TIFF).
    values : dict of str to str
        The CSV's other columns (``count``, ``mean_area``, ``foreground_fraction``, ``diameter``, ``scale``).
    """

    name: str
    recorded: str
    source: Path | None
    files: dict[str, Path]
    values: dict[str, str]


@dataclass(frozen=True)
class PredictionFolder:
    """The ``--out`` folder of `convscope predict` on a segmentation or instance run (or a foreign model).

    Attributes
    ----------
    folder : Path
    kind : {"instances", "semantic", "outputs"}
        ``outputs``: float maps of another tool's bioimage.io model.
    images : tuple of WrittenImage
        In the CSV's order; rows whose output files are all missing are left out (see ``missing``).
    missing : tuple of str
        Output files the CSV lists that are not in the folder.
    complete : bool
        False when only ``predictions.csv.partial`` is there (the prediction stopped before the end).
    """

    folder: Path
    kind: Kind
    images: tuple[WrittenImage, ...]
    missing: tuple[str, ...]
    complete: bool


@dataclass(frozen=True)
class ClassTable:
    """A classifier's CSV (``path, class, probability, p_<class>...``) with each row's image where it was found."""

    path: Path
    class_names: tuple[str, ...]
    rows: tuple[tuple[Prediction, Path | None], ...]


def prediction_table(folder: str | Path) -> Path | None:
    """``predictions.csv`` (else ``predictions.csv.partial``) of ``folder`` when it is one `convscope predict`
    wrote; None otherwise (also for a folder that is not one)."""
    folder = Path(folder)
    for name in (PREDICTIONS_CSV, PREDICTIONS_CSV + ".partial"):
        table = folder / name
        if table.is_file() and _folder_kind(table) is not None:
            return table
    return None


def is_class_table(path: str | Path) -> bool:
    """Whether ``path`` is a CSV a classifier's `convscope predict` wrote."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        header = _read_rows(path, 1)[0]
    except (ConvscopeError, IndexError):
        return False
    return tuple(header[:3]) == CLASS_COLUMNS and len(header) > 3 and all(c.startswith("p_") for c in header[3:])


def read_prediction_folder(folder: str | Path) -> PredictionFolder:
    """The images of a prediction folder with their output files and sources (see the module docstring).

    Raises
    ------
    ConvscopeError
        ``folder`` holds no ``predictions.csv`` of convscope, or it is not readable.
    """
    folder = Path(folder)
    table = prediction_table(folder)
    if table is None:
        raise ConvscopeError(f"{folder}: no predictions.csv of `convscope predict` here; give the --out folder of a "
                             "prediction")
    kind = _folder_kind(table)
    assert kind is not None
    header, *rows = _read_rows(table)
    images, missing = [], []
    for row in rows:
        if len(row) != len(header):
            raise ConvscopeError(f"{table}: a row of {len(row)} values under {len(header)} columns; predict again "
                                 "with --overwrite")
        image, lost = _written_image(folder, kind, dict(zip(header, row, strict=True)))
        missing += lost
        if image is not None:
            images.append(image)
    return PredictionFolder(folder, kind, tuple(images), tuple(missing), table.name == PREDICTIONS_CSV)


def read_class_table(path: str | Path) -> ClassTable:
    """A classifier's CSV with each image found (as given if absolute; else from the current folder, then beside
    the CSV).

    Raises
    ------
    ConvscopeError
        ``path`` is not such a CSV, or a row is broken.
    """
    path = Path(path)
    if not is_class_table(path):
        raise ConvscopeError(f"{path}: not a CSV of classes written by `convscope predict`")
    header, *rows = _read_rows(path)
    names = tuple(c[2:] for c in header[3:])
    found = []
    for row in rows:
        try:
            probabilities = tuple(float(v) for v in row[3:])
            prediction = Prediction(row[0], row[1], float(row[2]), probabilities)
        except (ValueError, IndexError):
            raise ConvscopeError(f"{path}: a broken row ({','.join(row)[:80]}); predict again with --overwrite"
                                 ) from None
        if len(probabilities) != len(names):
            raise ConvscopeError(f"{path}: a row with {len(probabilities)} probabilities for {len(names)} classes; "
                                 "predict again with --overwrite")
        found.append((prediction, find_source(row[0], None, path.parent)))
    return ClassTable(path, names, tuple(found))


def label_image_attributes(path: str | Path) -> dict[str, Any] | None:
    """What block-wise prediction recorded in an OME-Zarr label image it wrote (``run``, ``source``, ``task``,
    ``objects`` ...), read from the folder's metadata file (``zarr.json``, or ``.zattrs`` of zarr v2) without
    zarr; None for anything else."""
    path = Path(path)
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        try:
            meta = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        attributes = meta.get(key, {}) if key and isinstance(meta, dict) else meta
        if not isinstance(attributes, dict):
            return None
        ome = attributes.get("ome", attributes)
        recorded = attributes.get("convscope")
        if isinstance(recorded, dict) and isinstance(ome, dict) and "image-label" in ome and "multiscales" in ome:
            return recorded
        return None
    return None


def find_source(recorded: str, ran_in: Path | None, beside: Path) -> Path | None:
    """The image (a file, or an OME-Zarr folder) recorded as ``recorded``: as it is if absolute; else in the folder
    predict ran in (``ran_in``, when known), the current folder, then ``beside`` (the output's folder); None if
    not found."""
    path = Path(recorded)
    if path.is_absolute():
        return path if path.exists() else None
    for base in (ran_in, Path.cwd(), beside):
        if base is not None and (base / path).exists():
            return base / path
    return None


def _written_image(folder: Path, kind: Kind, row: dict[str, str]) -> tuple[WrittenImage | None, list[str]]:
    """One CSV row found in ``folder``: the image (None when none of its files is there) and the files missing."""
    columns = [_FILE_COLUMN[kind]] if kind in _FILE_COLUMN else [(c, f"_{c}.tif") for c in row if c != "path"]
    files: dict[str, Path] = {}
    missing, ran_in, name = [], None, ""
    for column, ending in columns:
        found, ran_from, relative = _in_folder(row[column], folder)
        if found is None:
            missing.append(row[column])
            continue
        files[column] = found
        ran_in = ran_in or ran_from
        name = name or _strip(relative, ending)
    if not files:
        return None, missing
    if kind == "semantic" and (probability := _sibling(files["mask"], PROBABILITY_ENDING)) is not None:
        files["probability"] = probability
    values = {k: v for k, v in row.items() if k != "path" and k not in dict(columns)}
    return WrittenImage(name, row["path"], find_source(row["path"], ran_in, folder.parent), files, values), missing


def _in_folder(recorded: str, folder: Path) -> tuple[Path | None, Path | None, PurePath]:
    """The file ``recorded`` (an output path as predict wrote it) inside ``folder``, the folder predict ran in when
    ``recorded`` tells it, and the file's path relative to ``folder``. The longest tail of ``recorded`` that exists
    under ``folder`` is taken, so outputs in subfolders (``a/x_labels.tif``) are found after the folder moved."""
    path = PurePath(recorded)
    parts = [p for p in path.parts if p not in (path.anchor, "", ".")]
    for k in range(len(parts), 0, -1):
        tail = parts[-k:]
        if ".." in tail or not folder.joinpath(*tail).is_file():
            continue
        return folder.joinpath(*tail), _ran_in(folder, path, parts[:-k]), PurePath(*tail)
    return None, None, PurePath(path.name)


def _ran_in(folder: Path, recorded: PurePath, prefix: Sequence[str]) -> Path | None:
    """The folder predict ran in: ``folder`` without the trailing ``prefix`` (the ``--out`` as given), when the
    output path was recorded relative."""
    if recorded.is_absolute() or ".." in prefix:
        return None
    absolute = folder.resolve().parts
    if len(prefix) >= len(absolute) or tuple(absolute[len(absolute) - len(prefix):]) != tuple(prefix):
        return None
    return Path(*absolute[: len(absolute) - len(prefix)])


def _strip(relative: PurePath, ending: str) -> str:
    text = relative.as_posix()
    return text[: -len(ending)] if text.endswith(ending) else relative.with_suffix("").as_posix()


def _sibling(mask: Path, ending: str) -> Path | None:
    candidate = mask.with_name(mask.name[: -len(MASK_ENDING)] + ending)
    return candidate if mask.name.endswith(MASK_ENDING) and candidate.is_file() else None


def _folder_kind(table: Path) -> Kind | None:
    """The kind of prediction a ``predictions.csv`` belongs to, from its header (and, for another tool's model,
    its first row's file names); None when convscope did not write it."""
    try:
        head = _read_rows(table, 2)
    except ConvscopeError:
        return None
    if not head:
        return None
    header = tuple(head[0])
    if header[:4] == LABEL_COLUMNS:
        return "instances"
    if header[:3] == MASK_COLUMNS:
        return "semantic"
    if len(header) > 1 and header[0] == "path" and len(head) > 1 and len(head[1]) == len(header) and all(
            PurePath(v).name.endswith(f"_{c}.tif") for c, v in zip(header[1:], head[1][1:], strict=True)):
        return "outputs"
    return None


def _read_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    """The non-empty rows of a CSV file, the first ``limit`` only if given (a one-line :class:`ConvscopeError`
    when it is not readable text)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = (row for row in csv.reader(fh) if row)
            return list(rows if limit is None else itertools.islice(rows, limit))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConvscopeError(f"{path}: not a readable CSV ({type(err).__name__}); predict again with --overwrite"
                             ) from None

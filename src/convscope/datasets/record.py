"""Which data a run was trained on: the folder (absolute) and a hash of its content, written to ``RUN/data.json`` by
training and used again by ``convscope evaluate RUN`` (``--data`` overrides), which warns when the content changed.

The hash is SHA-256 over the sorted relative paths, sizes and bytes of the folder's files (hidden files skipped);
generated data sets have no folder and no hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convscope.config import DataConfig
from convscope.datasets.mnist import has_mnist
from convscope.datasets.segmentation import SYNTHETIC
from convscope.datasets.sources import cache_dir, data_root
from convscope.errors import ConvscopeError

#: Data sets generated in memory: nothing on disk to record.
GENERATED = ("synthetic_cells", *SYNTHETIC)
#: Data sets read from ``data.path`` (for them ``--data`` at evaluation is that folder).
OWN_FOLDER = ("folder", "paired")
_CHUNK = 1 << 20


def data_folder(cfg: DataConfig, data_dir: Path | None) -> Path | None:
    """The folder the data set of ``cfg`` is read from (as the loaders resolve it), or None for generated data or
    a folder that cannot be found."""
    if cfg.dataset in GENERATED:
        return None
    if cfg.path is not None:
        return Path(cfg.path).expanduser()
    root = data_root(data_dir)
    if root is not None and (root / cfg.dataset).is_dir():
        return root / cfg.dataset
    if cfg.dataset == "mnist" and has_mnist(cache_dir() / "mnist"):
        return cache_dir() / "mnist"
    return None


def folder_digest(folder: Path) -> str:
    """Hex SHA-256 over the sorted relative paths, sizes and bytes of the files under ``folder``."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                            p.relative_to(folder).parts))
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def data_record(cfg: DataConfig, data_dir: Path | None) -> dict[str, Any]:
    """What ``RUN/data.json`` holds: the data set, the data root used (``--data`` or ``$CONVSCOPE_DATA``), the
    folder read (absolute) and its content hash (None for generated data)."""
    root = data_root(data_dir)
    folder = data_folder(cfg, data_dir)
    return {"dataset": cfg.dataset, "root": str(root.resolve()) if root is not None else None,
            "folder": str(folder.resolve()) if folder is not None else None,
            "sha256": folder_digest(folder) if folder is not None and folder.is_dir() else None}


def recorded_data(cfg: DataConfig, record: dict[str, Any] | None, data_dir: Path | None, *, run: Path,
                  log: Callable[[str], None]) -> tuple[DataConfig, Path | None]:
    """The data section and ``--data`` folder to evaluate a run on: the data it was trained on (``record``,
    from ``RUN/data.json``) unless ``data_dir`` is given; ``log`` hears a warning when the content hash differs.

    For ``folder`` and ``paired`` data sets ``data_dir`` replaces ``data.path``; for registered ones it is the
    folder holding ``<name>/``.

    Raises
    ------
    ConvscopeError
        The recorded folder is gone and no ``data_dir`` was given.
    """
    record = record or {}
    if data_dir is not None and not Path(data_dir).is_dir():
        raise ConvscopeError(f"--data {data_dir}: folder not found; pass an existing folder")
    if data_dir is not None and cfg.dataset in OWN_FOLDER:
        cfg = cfg.model_copy(update={"path": Path(data_dir)})
    elif data_dir is None and record.get("folder"):
        folder = Path(record["folder"])
        if not folder.is_dir():
            raise ConvscopeError(f"{run}: trained on the data in {folder}, which is gone; pass --data DIR (the data "
                                 "folder to evaluate on)")
        if cfg.dataset in OWN_FOLDER:
            cfg = cfg.model_copy(update={"path": folder})
        elif record.get("root"):
            data_dir = Path(record["root"])
    folder = data_folder(cfg, data_dir)
    if record.get("sha256") and folder is not None and folder.is_dir() and folder_digest(folder) != record["sha256"]:
        log(f"warning: the data in {folder} differ from those {run} was trained on (content hash); its splits and "
            "scores may not be comparable")
    return cfg, data_dir

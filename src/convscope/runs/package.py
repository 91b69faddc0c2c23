"""bioimage.io model packages as runs. A package convscope exported carries the run's ``model/config.json`` and
recipe in its rdf (``config: convscope:``) and its network's weights as ``pytorch_state_dict``: it is unpacked once
into a run directory in the cache (``$CONVSCOPE_CACHE/packages/<hash>``) and then loads, predicts and fine-tunes like
the run it came from. Packages of other tools are recognised here and run by :mod:`convscope.export.package`.

Reading a package needs no extra: the rdf is YAML, the weights a torch state dict read with
``torch.load(weights_only=True)`` (no code runs) and checked against the sha256 the rdf records.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file

from convscope.errors import ConvscopeError
from convscope.io.atomic import write_json, write_text
from convscope.models.weights import weights_cache
from convscope.runs.layout import RunDir

#: Version tag of the description convscope writes into its exports (rdf ``config: convscope: format``).
EXPORT_FORMAT = "convscope-export/1"
#: File names of a package's rdf.
RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
#: The prefix of the exported network's parameters (``ExportedNetwork.net``).
NETWORK_PREFIX = "net."


def is_package(source: str | Path) -> bool:
    """Whether ``source`` is a bioimage.io model package: a ``.zip``, an rdf file, or a folder holding one."""
    path = Path(source)
    if path.suffix.lower() == ".zip":
        return True
    if path.name in RDF_NAMES or path.name.endswith(".bioimageio.yaml"):
        return True
    return path.is_dir() and any((path / name).is_file() for name in RDF_NAMES)


def read_package_file(source: str | Path, name: str) -> bytes:
    """The bytes of the file ``name`` of the package ``source``; an error naming both when it is missing."""
    path = Path(source)
    try:
        if path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as archive:
                return archive.read(name)
        folder = path if path.is_dir() else path.parent
        return (folder / name).read_bytes()
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise ConvscopeError(f"{source}: cannot read '{name}' from the package ({err}); is it a complete bioimage.io "
                             "model package?") from None


def read_rdf(source: str | Path) -> dict[str, Any]:
    """The rdf of the package ``source`` as a mapping."""
    path = Path(source)
    if not path.exists():
        raise ConvscopeError(f"{source}: no such package file or folder")
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile) as err:
            raise ConvscopeError(f"{source}: not a readable zip file ({err})") from None
        found = [n for n in names if n in RDF_NAMES or n.endswith(".bioimageio.yaml")]
        if not found:
            raise ConvscopeError(f"{source}: no rdf.yaml in this zip; not a bioimage.io model package")
        text = read_package_file(path, found[0])
    elif path.is_dir():
        text = read_package_file(path, next(n for n in RDF_NAMES if (path / n).is_file()))
    else:
        text = path.read_bytes()
    try:
        rdf = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConvscopeError(f"{source}: its rdf is not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise ConvscopeError(f"{source}: not a bioimage.io model (its rdf has type {rdf.get('type')!r})"
                             if isinstance(rdf, dict) else f"{source}: its rdf is not a YAML mapping")
    return rdf


def convscope_section(rdf: dict[str, Any]) -> dict[str, Any] | None:
    """The rdf's ``config: convscope:`` section when convscope wrote the package, else None."""
    section = (rdf.get("config") or {}).get("convscope")
    return section if isinstance(section, dict) and section.get("format") == EXPORT_FORMAT else None


def is_convscope_package(source: str | Path) -> bool:
    """Whether ``source`` is a package convscope exported (its network is one of convscope's architectures)."""
    return is_package(source) and convscope_section(read_rdf(source)) is not None


def package_diameter(source: str | Path) -> float | None:
    """The median object diameter (pixels) of the training data a convscope package records (built-in models), or
    None."""
    value = (convscope_section(read_rdf(source)) or {}).get("diameter")
    return float(value) if value is not None else None


def package_name(source: str | Path) -> str:
    """A short name of the package: the zip's stem, or its folder's name."""
    path = Path(source)
    return path.stem if path.suffix.lower() == ".zip" else (path if path.is_dir() else path.parent).resolve().name


def unpack_package(source: str | Path) -> RunDir:
    """The run directory of the convscope package ``source``, unpacked into the cache on first use.

    Raises
    ------
    ConvscopeError
        Not a package, a package of another tool (it cannot be loaded as a run), or weights that differ from the
        sha256 the rdf records.
    """
    rdf = read_rdf(source)
    section = convscope_section(rdf)
    if section is None:
        raise ConvscopeError(f"{source}: a bioimage.io model of another tool (no convscope architecture); "
                             "`convscope predict` runs it, but it cannot be evaluated or fine-tuned")
    entry = (rdf.get("weights") or {}).get("pytorch_state_dict") or {}
    if not entry.get("source"):
        raise ConvscopeError(f"{source}: its rdf has no pytorch_state_dict weights; re-export the run")
    data = read_package_file(source, str(entry["source"]))
    digest = hashlib.sha256(data).hexdigest()
    if entry.get("sha256") and entry["sha256"] != digest:
        raise ConvscopeError(f"{source}: weights sha256 {digest[:12]}... differ from the rdf's "
                             f"{str(entry['sha256'])[:12]}...; the package is damaged")
    key = hashlib.sha256(yaml.safe_dump(section, sort_keys=True).encode() + data).hexdigest()[:20]
    folder = weights_cache().parent / "packages" / key
    if not RunDir(folder).model_config.is_file():
        _write_run(folder, section, _network_state(data, source))
    return RunDir.open(folder)


def open_run_dir(source: str | Path) -> RunDir:
    """A run directory, or the run directory of a convscope package (:func:`unpack_package`)."""
    return unpack_package(source) if is_package(source) else RunDir.open(source)


def _network_state(data: bytes, source: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of the package's network without the exported wrapper's prefix; no code is executed."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # a pickle that needs code, or a damaged file
        raise ConvscopeError(f"{source}: cannot load its pytorch_state_dict weights safely ({type(err).__name__})"
                             ) from None
    if not isinstance(state, dict) or not all(k.startswith(NETWORK_PREFIX) for k in state):
        raise ConvscopeError(f"{source}: its weights are not those of a convscope export; re-export the run")
    return {k[len(NETWORK_PREFIX):]: v.contiguous() for k, v in state.items()}


def _write_run(folder: Path, section: dict[str, Any], state: dict[str, torch.Tensor]) -> None:
    """Write the run directory (config.yaml, model/config.json, model/weights.safetensors) in a temporary folder
    and rename it to ``folder``."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    run = RunDir(tmp)
    run.model_dir.mkdir(parents=True)
    write_text(run.config, yaml.safe_dump(section["recipe"], sort_keys=False))
    write_json(run.model_config, section["model_config"])
    save_file(state, str(run.weights))
    try:
        tmp.rename(folder)
    except OSError:  # another process unpacked it first
        shutil.rmtree(tmp, ignore_errors=True)
        if not RunDir(folder).model_config.is_file():
            raise

"""Know your data before training: ``convscope data check DIR``.

:func:`check_data` reads a data folder (a ``paired`` folder of ``images/`` + ``masks/``, the ``image/`` + ``label/``
layout of ``isbi2012``, a class-per-subfolder classification folder with optional ``train/`` and ``test/``, the MNIST
IDX files) or a registered data set name, and returns a :class:`DataCheck`: one :class:`FolderReport` per folder,
each finding with its severity and the fix, and suggested settings. Nothing is written; :func:`relabel_folder`
writes relabelled copies of the masks to a new folder when asked.

Severities: ``ok``; ``note`` (worth knowing); ``warning`` (results may be wrong or weaker; training still runs);
``error`` (the task cannot work with these files: the CLI exits with code 2).
"""

from __future__ import annotations

import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from convscope.datasets.facts import (
    MAX_PLAIN_CHANNELS,
    ImageFacts,
    MaskFacts,
    image_facts,
    mask_facts,
    relabel_components,
)
from convscope.datasets.folders import find_class_files
from convscope.datasets.mnist import load_mnist
from convscope.datasets.paired import seeded_split
from convscope.datasets.segmentation import FRACTIONS, SPLIT_SEED, fluorescence_ids
from convscope.datasets.sources import data_root
from convscope.errors import ConvscopeError
from convscope.io.image import IMAGE_SUFFIXES, read_image, write_image

Severity = Literal["ok", "note", "warning", "error"]
TASKS: tuple[str, ...] = ("classification", "semantic", "stardist", "flows")
INSTANCE_TASKS: tuple[str, ...] = ("stardist", "flows")
_RANK = {"ok": 0, "note": 1, "warning": 2, "error": 3}
_MASK_SUFFIXES = (".png", ".tif", ".tiff")
_PAIRED_LAYOUTS = (("images", "masks"), ("image", "label"))
_IDX_FILE = "train-images-idx3-ubyte"
_EXAMPLES = 2
_IMBALANCE = 3.0
_TINY_FOREGROUND = 0.05


@dataclass(frozen=True)
class Finding:
    """One line of a folder's table.

    Attributes
    ----------
    check : str
        What was checked ("pairs", "mask ids", "leakage", ...).
    severity : {"ok", "note", "warning", "error"}
    finding : str
        What was found, with counts and an example file.
    fix : str
        What to do about it ("" when nothing is needed).
    """

    check: str
    severity: Severity
    finding: str
    fix: str = ""


@dataclass(frozen=True)
class FolderReport:
    """The findings for one folder.

    Attributes
    ----------
    folder : str
        The folder checked (or ``"<target>: across splits"`` for leakage between folders).
    layout : str
        ``paired``, ``classification``, ``mnist`` or ``splits``.
    n_images : int
    findings : tuple of Finding
    """

    folder: str
    layout: str
    n_images: int
    findings: tuple[Finding, ...]

    @property
    def severity(self) -> Severity:
        """The worst severity among the findings."""
        return max((f.severity for f in self.findings), key=_RANK.__getitem__, default="ok")

    @property
    def verdict(self) -> str:
        """One phrase: ``ok``, ``usable (N notes)``, ``usable, with N warnings`` or ``not usable: N errors``."""
        counts = Counter(f.severity for f in self.findings)
        if counts["error"]:
            return f"not usable: {counts['error']} error(s)"
        if counts["warning"]:
            return f"usable, with {counts['warning']} warning(s)"
        return f"usable ({counts['note']} note(s))" if counts["note"] else "ok"


@dataclass(frozen=True)
class DataCheck:
    """The result of :func:`check_data`.

    Attributes
    ----------
    target : str
        The folder or data set name checked.
    task : str or None
        The task the data were checked for (None: what the layout allows).
    folders : tuple of FolderReport
    suggestions : dict of str to str
        Suggested recipe settings (``data.patch_size``, ``stardist.n_rays``, ``--diameter`` ...) with the reason.
    """

    target: str
    task: str | None
    folders: tuple[FolderReport, ...]
    suggestions: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for folder in self.folders for f in folder.findings if f.severity == "error"]

    @property
    def verdict(self) -> str:
        errors = self.errors
        task = f" for {self.task}" if self.task else ""
        if errors:
            return f"not usable{task}: {errors[0].finding}; {errors[0].fix}"
        worst = max((f.severity for f in self.folders), key=_RANK.__getitem__, default="ok")
        return f"usable{task}" + (", read the warnings" if worst == "warning" else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: target, task, verdict, folders (with their findings) and suggestions."""
        return {"target": self.target, "task": self.task, "verdict": self.verdict,
                "folders": [{**asdict(f), "verdict": f.verdict} for f in self.folders],
                "suggestions": dict(self.suggestions)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataCheck:
        """The inverse of :meth:`to_dict` (the derived verdicts are recomputed)."""
        folders = tuple(FolderReport(f["folder"], f["layout"], int(f["n_images"]),
                                     tuple(Finding(**x) for x in f["findings"])) for f in data["folders"])
        return cls(data["target"], data.get("task"), folders, dict(data.get("suggestions") or {}))

    def table(self) -> str:
        """Plain-text tables, one per folder, then the suggested settings."""
        lines: list[str] = []
        for folder in self.folders:
            lines.append(f"{folder.folder}  [{folder.layout}, {folder.n_images} images]  verdict: {folder.verdict}")
            lines.append(f"  {'check':<18}{'':<9}{'finding'}")
            for f in folder.findings:
                lines.append(f"  {f.check:<18}{f.severity:<9}{f.finding}")
                if f.fix:
                    lines.append(f"  {'':<18}{'':<9}-> {f.fix}")
            lines.append("")
        if self.suggestions:
            lines.append("suggested settings")
            lines.extend(f"  {key:<22}{value}" for key, value in self.suggestions.items())
            lines.append("")
        lines.append(f"verdict: {self.verdict}")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The tables as Markdown (for a README or a report)."""
        lines: list[str] = []
        for folder in self.folders:
            lines += [f"**{folder.folder}** ({folder.layout}, {folder.n_images} images): {folder.verdict}", "",
                      "| check | severity | finding | fix |", "|---|---|---|---|"]
            lines += [f"| {f.check} | {f.severity} | {f.finding} | {f.fix} |" for f in folder.findings]
            lines.append("")
        if self.suggestions:
            lines += ["| setting | suggestion |", "|---|---|"]
            lines += [f"| `{k}` | {v} |" for k, v in self.suggestions.items()]
            lines.append("")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------

def check_data(
    target: str | os.PathLike[str], *, task: str | None = None, data_dir: str | os.PathLike[str] | None = None,
    patch_size: int = 256, workers: int = 2,
) -> DataCheck:
    """Check a data folder or a registered data set for training.

    Parameters
    ----------
    target : str or PathLike
        A folder (``images/`` + ``masks/``, ``image/`` + ``label/``, class subfolders with optional ``train/``
        and ``test/``, or the MNIST IDX files), or a registered name (``dsb2018``, ``isbi2012``, ``rbc``,
        ``mnist``) looked up in ``data_dir`` / ``$CONVSCOPE_DATA``.
    task : {"classification", "semantic", "stardist", "flows"}, optional
        Judge the masks for this task (binary masks are errors for ``stardist`` and ``flows``).
    data_dir : str or PathLike, optional
        The ``--data`` folder for a registered name.
    patch_size : int
        The training patch side to compare image sizes with (``data.patch_size``).
    workers : int
        Threads reading files.

    Returns
    -------
    DataCheck

    Raises
    ------
    ConvscopeError
        An unknown task, a missing folder, or a folder of no known layout.
    """
    if task is not None and task not in TASKS:
        raise ConvscopeError(f"--task {task}: unknown task; use {', '.join(TASKS)}")
    folder, name = _resolve(target, data_dir)
    layout = _layout(folder)
    if layout == "paired" or layout == "label":
        dirs = _PAIRED_LAYOUTS[0] if layout == "paired" else _PAIRED_LAYOUTS[1]
        return _check_paired(folder, name, dirs, task, patch_size, workers)
    if layout == "mnist":
        return _check_mnist(folder, name, task)
    return _check_classification(folder, name, task, workers)


def _resolve(target: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None) -> tuple[Path, str]:
    text = str(target)
    path = Path(text).expanduser()
    if path.is_dir():
        return path, path.name
    if os.sep not in text and "/" not in text:
        root = data_root(Path(data_dir) if data_dir is not None else None)
        if root is not None and (root / text).is_dir():
            return root / text, text
        if root is None:
            raise ConvscopeError(f"{text}: not a folder; for a registered data set pass --data DIR (holding "
                                 f"{text}/) or set CONVSCOPE_DATA")
    raise ConvscopeError(f"{text}: folder not found; pass a data folder or a data set name with --data DIR")


def _layout(folder: Path) -> str:
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        return "paired"
    if (folder / "image").is_dir() and (folder / "label").is_dir():
        return "label"
    if any((folder / (_IDX_FILE + ext)).is_file() for ext in ("", ".gz")):
        return "mnist"
    if any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir()):
        return "classification"
    raise ConvscopeError(f"{folder}: no known layout; use images/ + masks/ (segmentation), one subfolder per class "
                         "(classification, optionally under train/ and test/), or the MNIST IDX files")


def _examples(items: Sequence[str]) -> str:
    shown = ", ".join(Path(i).name for i in items[:_EXAMPLES])
    return shown + (f" and {len(items) - _EXAMPLES} more" if len(items) > _EXAMPLES else "")


def _map(func: Callable, items: Sequence, workers: int) -> list:
    if workers <= 1 or len(items) < 8:
        return [func(i) for i in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(func, items, chunksize=16))


# ---------------------------------------------------------------------------------------------------------
# Paired folders: images/ + masks/
# ---------------------------------------------------------------------------------------------------------

def _files_by_stem(folder: Path, suffixes: Sequence[str]) -> tuple[dict[str, Path], list[tuple[Path, Path]]]:
    found: dict[str, Path] = {}
    duplicates: list[tuple[Path, Path]] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if path.stem in found:
            duplicates.append((found[path.stem], path))
            continue
        found[path.stem] = path
    return found, duplicates


@dataclass(frozen=True)
class _Pair:
    stem: str
    image: ImageFacts | None
    mask: MaskFacts | None
    image_path: str
    mask_path: str
    problem: str = ""


def _read_pair(item: tuple[str, Path, Path]) -> _Pair:
    stem, image_path, mask_path = item
    try:
        image = read_image(image_path)
        mask = read_image(mask_path)
    except ConvscopeError as err:
        return _Pair(stem, None, None, str(image_path), str(mask_path), str(err))
    if mask.ndim == 3:
        colour = mask[:, :, : 3 if mask.shape[2] >= 3 else 1]
        if mask.shape[2] > 4 or not (colour == colour[:, :, :1]).all():
            return _Pair(stem, image_facts(image), None, str(image_path), str(mask_path),
                         f"{mask_path}: mask has {mask.shape[2]} channels that differ")
        mask = mask[:, :, 0]
    if mask.shape != image.shape[:2]:
        return _Pair(stem, image_facts(image), None, str(image_path), str(mask_path),
                     f"{mask_path}: mask is {mask.shape[0]}x{mask.shape[1]} but its image is "
                     f"{image.shape[0]}x{image.shape[1]}")
    return _Pair(stem, image_facts(image), mask_facts(mask), str(image_path), str(mask_path))


def _check_paired(folder: Path, name: str, dirs: tuple[str, str], task: str | None, patch_size: int,
                  workers: int) -> DataCheck:
    image_dir, mask_dir = folder / dirs[0], folder / dirs[1]
    images, dup_images = _files_by_stem(image_dir, IMAGE_SUFFIXES)
    masks, dup_masks = _files_by_stem(mask_dir, _MASK_SUFFIXES)
    findings = _pair_findings(images, masks, dup_images + dup_masks, image_dir, mask_dir)
    stems = sorted(set(images) & set(masks))
    pairs = _map(_read_pair, [(s, images[s], masks[s]) for s in stems], workers)
    unreadable = [p.problem for p in pairs if p.problem]
    if unreadable:
        findings.append(Finding("files", "error", f"{len(unreadable)} pair(s) unusable: {unreadable[0]}",
                                "replace or remove those files"))
    good = [p for p in pairs if not p.problem]
    if task == "classification":
        findings.append(Finding("task", "error", "an images/ + masks/ folder holds segmentation data, not classes",
                                "use task semantic, stardist or flows, or one subfolder per class"))
    findings += _image_findings([p.image for p in good], [p.image_path for p in good], patch_size,
                                segmentation=True)
    findings += _mask_findings(good, name, task)
    report = FolderReport(str(folder), "paired" if dirs == _PAIRED_LAYOUTS[0] else "paired (image/ + label/)",
                          len(images), tuple(findings))
    splits = _paired_splits(folder, name, [p.stem for p in good])
    by_split = {s: [p.image for p in good if splits.get(p.stem) == s] for s in ("train", "val", "test")}
    paths = {s: [p.image_path for p in good if splits.get(p.stem) == s] for s in by_split}
    leakage = FolderReport(f"{folder}: across the seeded train/val/test split", "splits", len(good),
                           tuple(_leakage_findings(by_split, paths)))
    return DataCheck(str(folder), task, (report, leakage), _segmentation_suggestions(good, task, patch_size))


def _pair_findings(images: dict[str, Path], masks: dict[str, Path], duplicates: list[tuple[Path, Path]],
                   image_dir: Path, mask_dir: Path) -> list[Finding]:
    findings: list[Finding] = []
    lonely_images = [str(images[s]) for s in images if s not in masks]
    lonely_masks = [str(masks[s]) for s in masks if s not in images]
    if not images:
        findings.append(Finding("pairs", "error", f"no images in {image_dir}",
                                f"add images ({' '.join(IMAGE_SUFFIXES)})"))
    if duplicates:
        shown = ", ".join(f"{a.name} + {b.name}" for a, b in duplicates[:_EXAMPLES])
        findings.append(Finding("pairs", "error", f"{len(duplicates)} stem(s) used by two files ({shown})",
                                "keep one file per name (x.png and x.tif would pair ambiguously)"))
    if lonely_images:
        findings.append(Finding("pairs", "error", f"{len(lonely_images)} image(s) without a mask "
                                f"({_examples(lonely_images)})", f"add the masks to {mask_dir} or remove the images"))
    if lonely_masks:
        findings.append(Finding("pairs", "error", f"{len(lonely_masks)} mask(s) without an image "
                                f"({_examples(lonely_masks)})", f"add the images to {image_dir} or remove the masks"))
    if images and not (lonely_images or lonely_masks or duplicates):
        findings.append(Finding("pairs", "ok", f"{len(images)} images, each with one mask (matched by file stem)"))
    return findings


def _image_findings(facts: Sequence[ImageFacts], paths: Sequence[str], patch_size: int | None, *,
                    segmentation: bool) -> list[Finding]:
    findings: list[Finding] = []
    if not facts:
        return findings
    dtypes = Counter(f.dtype for f in facts)
    channels = Counter(f.shape[2] for f in facts)
    lo, hi = min(f.vmin for f in facts), max(f.vmax for f in facts)
    kinds = ", ".join(f"{n} {d}" for d, n in dtypes.most_common())
    severity: Severity = "ok"
    fix = ""
    if len(dtypes) > 1:
        severity, fix = "error", "convert all images to one bit depth (all uint8 or all uint16)"
    elif next(iter(dtypes)) not in ("uint8", "uint16"):
        severity, fix = "error", "save the images as uint8 or uint16 (float and signed images are not read)"
    findings.append(Finding("image dtype", severity, f"{kinds}; values {lo:g} to {hi:g}", fix))
    bright = [p for f, p in zip(facts, paths, strict=True) if f.dtype == "uint16" and f.vmax < 256]
    if bright:
        findings.append(Finding("image range", "note", f"{len(bright)} uint16 image(s) use only 0..255 "
                                f"({_examples(bright)})", "fine: normalisation is per image (percentiles)"))
    chan = ", ".join(f"{n} x {c}" for c, n in sorted(channels.items()))
    findings.append(Finding("channels", "error" if len(channels) > 1 else "ok", f"channels per image: {chan}",
                            "set data.color=gray or data.color=rgb" if len(channels) > 1 else ""))
    constant_alpha = [p for f, p in zip(facts, paths, strict=True) if f.alpha == "constant"]
    varying_alpha = [p for f, p in zip(facts, paths, strict=True) if f.alpha == "varying"]
    if constant_alpha:
        findings.append(Finding("alpha", "note", f"{len(constant_alpha)} image(s) have a constant alpha channel "
                                f"({_examples(constant_alpha)})", "harmless: set data.color=gray or rgb to drop it"))
    if varying_alpha:
        findings.append(Finding("alpha", "warning", f"{len(varying_alpha)} image(s) have a varying alpha channel "
                                f"({_examples(varying_alpha)})", "check that the alpha is not a data channel; "
                                "data.color=rgb drops it"))
    stacks = [p for f, p in zip(facts, paths, strict=True) if f.shape[2] > MAX_PLAIN_CHANNELS]
    if stacks:
        findings.append(Finding("z-stack?", "warning", f"{len(stacks)} image(s) have more than {MAX_PLAIN_CHANNELS} "
                                f"channels ({_examples(stacks)}): a z-stack or time series read as channels?",
                                "save one 2-D plane (or a projection) per file"))
    nan = [p for f, p in zip(facts, paths, strict=True) if f.non_finite]
    if nan:
        findings.append(Finding("NaN/inf", "error", f"{len(nan)} image(s) hold NaN or inf ({_examples(nan)})",
                                "replace the non-finite pixels"))
    constant = [p for f, p in zip(facts, paths, strict=True) if f.constant]
    if constant:
        findings.append(Finding("constant", "warning", f"{len(constant)} image(s) hold one value only "
                                f"({_examples(constant)})", "remove blank images (nothing to learn from)"))
    heights = [f.shape[0] for f in facts]
    widths = [f.shape[1] for f in facts]
    sizes = f"{min(heights)}x{min(widths)} to {max(heights)}x{max(widths)} (HxW)"
    if segmentation and patch_size is not None:
        small = [p for f, p in zip(facts, paths, strict=True) if min(f.shape[:2]) < patch_size]
        if small:
            findings.append(Finding("sizes", "warning", f"{sizes}; {len(small)} image(s) smaller than the "
                                    f"{patch_size}-pixel patch ({_examples(small)})",
                                    f"set data.patch_size to at most {min(min(heights), min(widths)) // 16 * 16} "
                                    "or pad the images"))
        else:
            findings.append(Finding("sizes", "ok", f"{sizes}; every image holds a {patch_size}-pixel patch"))
    elif len(set(zip(heights, widths, strict=True))) > 1:
        findings.append(Finding("sizes", "warning", f"{sizes}: sizes differ", "set data.resize=[H, W]"))
    else:
        findings.append(Finding("sizes", "ok", sizes))
    return findings


def _mask_findings(pairs: Sequence[_Pair], name: str, task: str | None) -> list[Finding]:
    findings: list[Finding] = []
    if not pairs:
        return findings
    facts = [p.mask for p in pairs]
    paths = [p.mask_path for p in pairs]
    dtypes = Counter(f.dtype for f in facts)
    findings.append(Finding("mask dtype", "ok", ", ".join(f"{n} {d}" for d, n in dtypes.most_common())))
    negative = [p for f, p in zip(facts, paths, strict=True) if f.negative]
    if negative:
        findings.append(Finding("mask values", "error", f"{len(negative)} mask(s) hold negative values "
                                f"({_examples(negative)})", "use 0 for background and positive ids"))
    binary = [p for f, p in zip(facts, paths, strict=True) if f.binary]
    instance_like = sum(f.n_values > 1 for f in facts)
    if binary:
        severity: Severity = "error" if task in INSTANCE_TASKS else "note"
        objects = sum(f.n_components for f in facts if f.binary)
        findings.append(Finding(
            "instance ids", severity,
            f"{len(binary)} of {len(facts)} masks are binary: one value for {objects:,} separate objects "
            f"({_examples(binary)})",
            "instance training needs one id per object: label the objects, or `convscope data check DIR "
            "--relabel OUT` (connected components; touching objects stay merged)" if severity == "error"
            else "fine for semantic segmentation; not instance labels (stardist/flows)"))
    elif instance_like:
        findings.append(Finding("instance ids", "ok", f"{instance_like} of {len(facts)} masks are instance labels "
                                "(ids need not be sequential)"))
    if task == "semantic" and instance_like and name not in ("dsb2018",):
        findings.append(Finding("semantic", "error", f"{instance_like} mask(s) hold several values but semantic "
                                "training of a paired folder reads 0 and one foreground value",
                                "save masks as 0 / one foreground value (e.g. mask > 0)"))
    split = [p for f, p in zip(facts, paths, strict=True) if f.split_ids and f.n_values > 1]
    if split:
        n = sum(f.split_ids for f in facts if f.n_values > 1)
        findings.append(Finding("split ids", "warning" if task in INSTANCE_TASKS or task is None else "note",
                                f"{n} id(s) in {len(split)} mask(s) cover several separate regions "
                                f"({_examples(split)})", "give each object its own id (--relabel does)"))
    merged = [p for f, p in zip(facts, paths, strict=True) if f.merged_ids]
    if merged:
        n = sum(f.merged_ids for f in facts)
        findings.append(Finding("touching ids", "note", f"{n} large non-convex object(s) in {len(merged)} mask(s) "
                                f"may be touching objects sharing an id ({_examples(merged)})",
                                "look at them; split touching objects into separate ids"))
    empty = [p for f, p in zip(facts, paths, strict=True) if f.empty]
    if empty:
        findings.append(Finding("empty masks", "note" if len(empty) < len(facts) else "error",
                                f"{len(empty)} of {len(facts)} masks are empty ({_examples(empty)})",
                                "fine as negatives if intended; otherwise add the labels"))
    n_objects = sum(f.n_components if f.binary else f.n_values for f in facts)
    border = sum(f.border_ids for f in facts)
    if n_objects:
        findings.append(Finding("border", "note" if border / n_objects > 0.1 else "ok",
                                f"{border:,} of {n_objects:,} objects touch the image edge (cut by the field of view)",
                                "keep stardist.border 0 to find them; matching counts them like the others"
                                if border / n_objects > 0.1 else ""))
    fg = np.array([f.foreground_fraction for f in facts])
    findings.append(Finding("foreground", "note" if fg.mean() < _TINY_FOREGROUND else "ok",
                            f"foreground fraction: mean {fg.mean():.3f}, range {fg.min():.3f} to {fg.max():.3f}",
                            "raise data.foreground_bias; use a Dice loss" if fg.mean() < _TINY_FOREGROUND else ""))
    diameters = _diameters(facts)
    if diameters.size and (instance_like or task in INSTANCE_TASKS):
        findings.append(Finding("objects", "ok", f"{diameters.size:,} objects, {diameters.size / len(facts):.1f} per "
                                f"image; median diameter {np.median(diameters):.1f} px (10-90 %: "
                                f"{np.percentile(diameters, 10):.1f} to {np.percentile(diameters, 90):.1f})"))
    return findings


def _diameters(facts: Iterable[MaskFacts]) -> np.ndarray:
    """Equivalent-circle diameters of the objects of instance-labelled masks (binary masks left out)."""
    areas = [f.areas for f in facts if f.n_values > 1 or (f.n_values == 1 and not f.binary)]
    return np.sqrt(4.0 * np.concatenate(areas) / np.pi) if areas else np.zeros(0)


def _paired_splits(folder: Path, name: str, stems: Sequence[str]) -> dict[str, str]:
    """The seeded train/val/test split the loaders use (by image), as stem -> split."""
    if name == "dsb2018" and (folder / "image_types.csv").is_file():
        keep = fluorescence_ids(folder)
        stems = [s for s in stems if s in keep]
    if len(stems) < 3:
        return {s: "train" for s in stems}
    train, val, test = seeded_split(stems, fractions=FRACTIONS, seed=SPLIT_SEED)
    return {**{s: "train" for s in train}, **{s: "val" for s in val}, **{s: "test" for s in test}}


def _segmentation_suggestions(pairs: Sequence[_Pair], task: str | None, patch_size: int) -> dict[str, str]:
    if not pairs:
        return {}
    smallest = min(min(p.image.shape[:2]) for p in pairs)
    out: dict[str, str] = {}
    diameters = _diameters(p.mask for p in pairs)
    if diameters.size and task != "semantic":
        d = float(np.median(diameters))
        patch = int(min(max(64, 16 * np.ceil(4 * d / 16)), smallest // 16 * 16, 512))
        out["data.patch_size"] = f"{patch} (4 x the median diameter, a multiple of 16, within the smallest image)"
        out["stardist.n_rays"] = ("64 (objects over 60 px across)" if d > 60 else "32 (StarDist's default suits "
                                  f"{d:.0f}-px objects; check with `convscope stardist-fidelity`)")
        out["stardist.grid"] = "1 (small objects)" if d < 12 else "2"
        out["--diameter"] = f"{d:.0f} (median object diameter in pixels, for a built-in model)"
    else:
        patch = min(patch_size, smallest // 16 * 16)
        out["data.patch_size"] = f"{patch} (a multiple of 16 that fits every image)"
    return out


# ---------------------------------------------------------------------------------------------------------
# Leakage: exact and near-duplicate images across splits
# ---------------------------------------------------------------------------------------------------------

def _leakage_findings(by_split: dict[str, list[ImageFacts]], paths: dict[str, list[str]]) -> list[Finding]:
    """Exact (same pixels) and near duplicates shared by two splits, and within one.

    Near duplicates share their perceptual hash and their 16 x 16 thumbnails correlate at 0.95 or more (the hash
    alone collides for small, similar images such as MNIST digits).
    """
    findings: list[Finding] = []
    for kind in ("exact", "near"):
        groups: dict[object, list[tuple[str, str, ImageFacts]]] = defaultdict(list)
        for split, facts in by_split.items():
            for f, p in zip(facts, paths[split], strict=True):
                groups[f.digest if kind == "exact" else f.phash].append((split, p, f))
        pairs = [pair for g in groups.values() if len(g) > 1 for pair in _duplicate_pairs(g, kind == "near")]
        across = [(a, b) for a, b in pairs if a[0] != b[0]]
        within = [(a, b) for a, b in pairs if a[0] == b[0]]
        if across:
            (sa, pa, _), (sb, pb, _) = across[0]
            findings.append(Finding(f"leakage ({kind})", "warning",
                                    f"{len(across)} {kind}-duplicate pair(s) span splits "
                                    f"({sa}:{Path(pa).name} = {sb}:{Path(pb).name})",
                                    "remove the duplicates, or keep each group in one split; test scores are "
                                    "optimistic otherwise"))
        else:
            findings.append(Finding(f"leakage ({kind})", "ok", f"no {kind}-duplicate images across "
                                    f"{', '.join(s for s in by_split if by_split[s])}"))
        if within:
            (_, pa, _), (_, pb, _) = within[0]
            findings.append(Finding(f"duplicates ({kind})", "note",
                                    f"{len(within)} {kind}-duplicate pair(s) within one split "
                                    f"({Path(pa).name} = {Path(pb).name})",
                                    "a carved validation split may then hold copies of training images"))
    return findings


_MAX_GROUP = 2000
_NEAR_CORRELATION = 0.95


def _duplicate_pairs(group: list[tuple[str, str, ImageFacts]], confirm: bool) -> list[tuple]:
    """Pairs of a hash group; near-duplicate pairs confirmed by thumbnail correlation (large groups sampled)."""
    group = group[:_MAX_GROUP]
    if not confirm:
        return [(group[0], other) for other in group[1:]]
    thumbs = np.stack([f.thumbnail.ravel() for _, _, f in group])
    close = np.triu(thumbs @ thumbs.T >= _NEAR_CORRELATION, k=1)
    return [(group[i], group[j]) for i, j in zip(*np.nonzero(close), strict=True)]


# ---------------------------------------------------------------------------------------------------------
# Classification folders and MNIST
# ---------------------------------------------------------------------------------------------------------

def _check_classification(folder: Path, name: str, task: str | None, workers: int) -> DataCheck:
    splits = [(s, folder / s) for s in ("train", "test") if (folder / s).is_dir()] or [("train", folder)]
    reports: list[FolderReport] = []
    by_split: dict[str, list[ImageFacts]] = {}
    paths: dict[str, list[str]] = {}
    classes: dict[str, tuple[str, ...]] = {}
    for split, split_dir in splits:
        try:
            names, files = find_class_files(split_dir)
        except ConvscopeError as err:
            reports.append(FolderReport(str(split_dir), "classification", 0,
                                        (Finding("layout", "error", str(err), "fix the folder layout"),)))
            continue
        classes[split] = names
        flat = [p for group in files for p in group]
        read = _map(_read_facts, flat, workers)
        bad = [msg for _, msg in read if msg]
        good = [(f, str(p)) for (f, msg), p in zip(read, flat, strict=True) if not msg]
        findings = []
        if task in ("semantic", *INSTANCE_TASKS):
            findings.append(Finding("task", "error", f"class subfolders hold classification data, not masks "
                                    f"for {task}", "use images/ + masks/ for segmentation"))
        if bad:
            findings.append(Finding("files", "error", f"{len(bad)} unreadable file(s): {bad[0]}",
                                    "replace or remove them"))
        findings.append(class_balance([len(g) for g in files], names))
        findings += _image_findings([f for f, _ in good], [p for _, p in good], None, segmentation=False)
        reports.append(FolderReport(str(split_dir), "classification", len(flat), tuple(findings)))
        by_split[split], paths[split] = [f for f, _ in good], [p for _, p in good]
    if len(classes) == 2 and len(set(classes.values())) > 1:
        reports.append(FolderReport(str(folder), "classification", 0, (Finding(
            "classes", "error", "train/ and test/ have different class folders",
            "use the same class subfolders in both"),)))
    reports.append(FolderReport(f"{folder}: across {' / '.join(by_split)}", "splits",
                                sum(len(v) for v in by_split.values()), tuple(_leakage_findings(by_split, paths))))
    return DataCheck(str(folder), task, tuple(reports), {})


def _read_facts(path: Path) -> tuple[ImageFacts | None, str]:
    try:
        return image_facts(read_image(path)), ""
    except ConvscopeError as err:
        return None, str(err)


def class_balance(counts: Sequence[int], names: Sequence[str]) -> Finding:
    """Images per class; a warning when the largest class has more than 3 x the images of the smallest."""
    shown = ", ".join(f"{n} {c}" for c, n in zip(names, counts, strict=True))
    ratio = max(counts) / max(min(counts), 1)
    if ratio > _IMBALANCE:
        rare = names[int(np.argmin(counts))]
        return Finding("class balance", "warning", f"{shown} (largest / smallest = {ratio:.1f})",
                       f"read per-class recall, not accuracy; add '{rare}' images")
    return Finding("class balance", "ok", shown)


def _check_mnist(folder: Path, name: str, task: str | None) -> DataCheck:
    train, test = load_mnist(folder)
    reports = []
    by_split: dict[str, list[ImageFacts]] = {}
    paths: dict[str, list[str]] = {}
    for split, data in (("train", train), ("test", test)):
        facts = [image_facts(im) for im in data.images]
        counts = np.bincount(data.labels, minlength=len(data.class_names)).tolist()
        findings = [class_balance(counts, data.class_names)]
        if task in ("semantic", *INSTANCE_TASKS):
            findings.insert(0, Finding("task", "error", f"MNIST holds classes, not masks for {task}",
                                       "use task classification"))
        findings += _image_findings(facts, list(data.paths), None, segmentation=False)
        reports.append(FolderReport(f"{folder} ({split})", "mnist", len(facts), tuple(findings)))
        by_split[split], paths[split] = facts, list(data.paths)
    reports.append(FolderReport(f"{folder}: across train / test", "splits", len(train) + len(test),
                                tuple(_leakage_findings(by_split, paths))))
    return DataCheck(str(folder), task, tuple(reports), {})


# ---------------------------------------------------------------------------------------------------------
# Relabelling
# ---------------------------------------------------------------------------------------------------------

def relabel_folder(target: str | os.PathLike[str], out: str | os.PathLike[str], *,
                   data_dir: str | os.PathLike[str] | None = None) -> int:
    """Write a paired copy of a segmentation folder whose masks are instance labels (connected components).

    ``out/images/`` gets copies of the images, ``out/masks/<stem>.tif`` the relabelled masks (uint16, ids 1..n,
    every 4-connected region of one value its own object). The inputs are never written.

    Returns
    -------
    int
        The number of masks written.

    Raises
    ------
    ConvscopeError
        ``out`` exists and is not empty, lies inside the input folder, or the input is not a segmentation folder.
    """
    folder, _ = _resolve(target, data_dir)
    layout = _layout(folder)
    if layout not in ("paired", "label"):
        raise ConvscopeError(f"{folder}: --relabel needs a segmentation folder (images/ + masks/)")
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConvscopeError(f"{out}: exists and is not empty; pass a new folder for the relabelled copy "
                             "(nothing is overwritten)")
    if out.resolve().is_relative_to(folder.resolve()):
        raise ConvscopeError(f"{out}: inside the input folder {folder}; write the relabelled copy elsewhere")
    image_dir, mask_dir = _PAIRED_LAYOUTS[0] if layout == "paired" else _PAIRED_LAYOUTS[1]
    images, _ = _files_by_stem(folder / image_dir, IMAGE_SUFFIXES)
    masks, _ = _files_by_stem(folder / mask_dir, _MASK_SUFFIXES)
    (out / "images").mkdir(parents=True, exist_ok=True)
    written = 0
    for stem in sorted(set(images) & set(masks)):
        mask = read_image(masks[stem])
        write_image(out / "masks" / f"{stem}.tif", relabel_components(mask if mask.ndim == 2 else mask[:, :, 0]))
        shutil.copy2(images[stem], out / "images" / images[stem].name)
        written += 1
    return written

"""Named data sets, fixed seeded splits, and the one entry point the trainer uses.

``load_classification(cfg)`` resolves where the images are (``data.path``, else ``--data DIR/<name>`` or
``$CONVSCOPE_DATA/<name>``, else the download cache for downloadable sets), loads the splits, carves a
validation split out of train (stratified, seeded) and, when the data has no test split, a fixed test split.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.config import DataConfig
from convscope.datasets.base import ClassificationData, ImageSet
from convscope.datasets.folders import convert_color, load_folder_splits, resize_images
from convscope.datasets.mnist import download_mnist, has_mnist, load_mnist
from convscope.datasets.sources import DATA_ENV, cache_dir, data_root
from convscope.datasets.synthetic import make_synthetic_cells
from convscope.errors import ConvscopeError

__all__ = [
    "TEST_SPLIT_SEED",
    "ClassificationData",
    "DatasetInfo",
    "ImageSet",
    "dataset_info",
    "list_datasets",
    "load_classification",
    "split_indices",
    "stratified_subsample",
]

#: Seed of the test split carved from data sets without one: fixed, so every run is tested on the same images.
TEST_SPLIT_SEED = 20240601
_SYNTHETIC_TEST_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class DatasetInfo:
    """A registered data set.

    Attributes
    ----------
    name : str
        The ``data.dataset`` value.
    tasks : tuple of str
        The recipe ``task`` values it serves: ``classification``, ``semantic``, ``stardist``.
    description : str
        One line for ``convscope data list``.
    source : str
        Where the data comes from (origin and licence, or "generated").
    has_test_split : bool
        True if the data ships its own test split; otherwise one is carved with ``data.test_fraction``.
    downloadable : bool
        True if a missing copy is downloaded into the cache.
    """

    name: str
    tasks: tuple[str, ...]
    description: str
    source: str
    has_test_split: bool
    downloadable: bool


#: The tasks of data sets with instance label images.
LABELLED = ("semantic", "stardist", "flows")

_DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    DatasetInfo(
        "mnist", ("classification",), "handwritten digits 0-9, 28x28 gray, 60,000 train + 10,000 test",
        "LeCun, Cortes, Burges (IDX files; downloaded from public mirrors, SHA-256 checked)",
        has_test_split=True, downloadable=True),
    DatasetInfo(
        "rbc", ("classification",), "red blood cells, normal vs abnormal, 85x85 RGB, 6,922 train + 2,190 test",
        "crops of the Chula RBC-12 smears (Chula-PIC-Lab, MIT licence); not downloadable",
        has_test_split=True, downloadable=False),
    DatasetInfo(
        "folder", ("classification",), "your images: data.path/<class>/*.png|jpg|tif, or train/ and test/",
        "local folder (data.path)", has_test_split=False, downloadable=False),
    DatasetInfo(
        "synthetic_cells", ("classification",), "generated round (normal) vs deformed (abnormal) gray cells",
        "generated (numpy, seeded); no files needed", has_test_split=True, downloadable=False),
    DatasetInfo(
        "synthetic_bacteria", LABELLED, "generated phase-contrast rods and curved bacteria, "
        "instance masks", "generated (numpy, seeded); no files needed", has_test_split=True, downloadable=False),
    DatasetInfo(
        "synthetic_nuclei", LABELLED, "generated fluorescent nuclei: touching ellipses, blur, noise",
        "generated (numpy, seeded); no files needed", has_test_split=True, downloadable=False),
    DatasetInfo(
        "isbi2012", ("semantic",), "EM, cell interior vs membrane, 30 x 512x512 (fixed 22/4/4 split by image)",
        "ISBI 2012 challenge training set as in zhixuhao/unet (MIT); local folder", has_test_split=False,
        downloadable=False),
    DatasetInfo(
        "dsb2018", LABELLED, "nuclei (instance labels), fluorescence subset (541 images), seeded "
        "70/15/15 split by image",
        "Kaggle DSB 2018 stage1_train (BBBC038, CC0) with community mask fixes; local folder",
        has_test_split=False, downloadable=False),
    DatasetInfo(
        "paired", LABELLED, "your images: data.path/images/* with data.path/masks/* (same stems)",
        "local folder (data.path)", has_test_split=False, downloadable=False),
)}


def list_datasets() -> list[DatasetInfo]:
    """Every registered data set, in name order."""
    return [_DATASETS[name] for name in sorted(_DATASETS)]


def dataset_info(name: str) -> DatasetInfo:
    """The registered data set ``name``; a :class:`ConvscopeError` with the known names otherwise."""
    if name in _DATASETS:
        return _DATASETS[name]
    close = difflib.get_close_matches(name, list(_DATASETS), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    known = ", ".join(sorted(_DATASETS))
    raise ConvscopeError(f"data.dataset: unknown data set '{name}'; {hint}known: {known}")


# ---------------------------------------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------------------------------------

def split_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of image indices into a kept part and a held-out ``fraction``.

    Every class contributes ``round(fraction * n_class)`` images to the held-out part, but at least one
    and at most ``n_class - 1`` when it has two or more images (a single image stays on the kept side).

    Parameters
    ----------
    labels : ndarray, shape (N,), int
        Class index per image.
    fraction : float
        Held-out fraction, strictly between 0 and 1.
    seed : int
        Same labels, fraction and seed give the same split.

    Returns
    -------
    keep_idx, held_idx : ndarray of int64
        Sorted, disjoint, together ``arange(N)``.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be strictly between 0 and 1, got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        n = len(members)
        k = min(max(round(fraction * n), 1), n - 1) if n >= 2 else 0
        held.append(rng.permutation(members)[:k])
    held_idx = np.sort(np.concatenate(held)).astype(np.int64) if held else np.empty(0, np.int64)
    keep = np.ones(len(labels), dtype=bool)
    keep[held_idx] = False
    return np.flatnonzero(keep).astype(np.int64), held_idx


def stratified_subsample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` images drawn per class in proportion to the class sizes (seeded).

    Per-class counts are rounded by largest remainder so they add up to ``n`` exactly; every class
    keeps at least one image when ``n`` is at least the number of classes.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels), dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n / len(labels)
    take = np.floor(quota).astype(np.int64)
    if n >= len(classes):
        take = np.maximum(take, 1)
    order = np.argsort(-(quota - np.floor(quota)), kind="stable")
    i = 0
    while take.sum() < n:
        cls = order[i % len(order)]
        if take[cls] < counts[cls]:
            take[cls] += 1
        i += 1
    while take.sum() > n:  # only after the at-least-one rule: trim the largest classes
        take[np.argmax(take)] -= 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


# ---------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------

def _resolve_folder(info: DatasetInfo, cfg: DataConfig, data_dir: Path | None) -> Path:
    """The folder of a file-backed data set, downloading into the cache when allowed."""
    if cfg.path is not None:
        return Path(cfg.path).expanduser()
    if info.name == "folder":
        raise ConvscopeError("data.path: required for data.dataset=folder; set data.path=DIR (one subfolder "
                             "per class, or train/ and test/ subfolders)")
    root = data_root(data_dir)
    if root is not None and (root / info.name).is_dir():
        return root / info.name
    if info.downloadable:  # mnist: the verified download cache
        folder = cache_dir() / info.name
        return folder if has_mnist(folder) else download_mnist(folder)
    where = f"{root / info.name} not found" if root is not None else "no data folder given"
    raise ConvscopeError(f"{info.name}: {where}, and the data set is not downloadable (its crops were made "
                         f"from the Chula RBC-12 smears); pass --data DIR with DIR/{info.name}/train and "
                         f"DIR/{info.name}/test, set {DATA_ENV}=DIR, or set data.path")


def _recolor(images: ImageSet, cfg: DataConfig) -> ImageSet:
    """Apply data.color and data.resize to an in-memory set (folder sets do this while reading)."""
    array = images.images
    if cfg.color != "auto":
        array = np.stack([convert_color(im, cfg.color, source=cfg.dataset) for im in array])
    if cfg.resize is not None:
        array = resize_images(array, cfg.resize)
    if array is images.images:
        return images
    return ImageSet(array, images.labels, images.class_names, images.paths)


def _load_splits(cfg: DataConfig, data_dir: Path | None, seed: int) -> tuple[ImageSet, ImageSet | None]:
    info = dataset_info(cfg.dataset)
    if info.name == "synthetic_cells":
        train = make_synthetic_cells(cfg.synthetic_count, size=cfg.synthetic_size, seed=seed)
        test = make_synthetic_cells(cfg.synthetic_count, size=cfg.synthetic_size,
                                    seed=seed + _SYNTHETIC_TEST_SEED_OFFSET)
        return _recolor(train, cfg), _recolor(test, cfg)
    folder = _resolve_folder(info, cfg, data_dir)
    if info.name == "mnist":
        train, test = load_mnist(folder)
        return _recolor(train, cfg), _recolor(test, cfg)
    return load_folder_splits(folder, color=cfg.color, resize=cfg.resize)


def _check_compatible(train: ImageSet, test: ImageSet, name: str) -> None:
    if test.class_names != train.class_names:
        raise ConvscopeError(f"{name}: test classes ({', '.join(test.class_names)}) differ from train "
                             f"classes ({', '.join(train.class_names)}); use the same class subfolders in "
                             "train/ and test/")
    shape_train, shape_test = train.images.shape[1:], test.images.shape[1:]
    if shape_train != shape_test:
        raise ConvscopeError(f"{name}: test images are {'x'.join(map(str, shape_test))} (HxWxC) but train "
                             f"images are {'x'.join(map(str, shape_train))}; set data.resize=[H, W] and "
                             "data.color")
    if test.images.dtype != train.images.dtype:
        raise ConvscopeError(f"{name}: test images are {test.images.dtype} but train images are "
                             f"{train.images.dtype}; convert all images to one bit depth")


def load_classification(
    cfg: DataConfig, *, data_dir: Path | None = None, seed: int = 0
) -> ClassificationData:
    """Load a classification data set with its train / validation / test splits.

    Parameters
    ----------
    cfg : DataConfig
        The recipe's ``data`` section.
    data_dir : Path, optional
        The ``--data`` folder (else ``$CONVSCOPE_DATA``); a named set is looked up as ``data_dir/<name>``.
    seed : int
        Seed of the validation split, of ``max_train_images`` and of synthetic data. The test split carved
        from data without one uses the fixed :data:`TEST_SPLIT_SEED`, so it does not move with ``seed``.

    Returns
    -------
    ClassificationData
        ``train``, ``val`` (``val_fraction`` of train, stratified) and ``test`` (the data's own test split,
        or ``test_fraction`` of all images). Images ``(N, H, W, C)`` uint8/uint16, never rescaled.

    Raises
    ------
    ConvscopeError
        Unknown data set, missing folder, bad files, or train and test that do not match.
    """
    train, test = _load_splits(cfg, data_dir, seed)
    if test is None:
        keep, held = split_indices(train.labels, cfg.test_fraction, TEST_SPLIT_SEED)
        train, test = train.subset(keep), train.subset(held)
    _check_compatible(train, test, cfg.dataset)
    keep, held = split_indices(train.labels, cfg.val_fraction, seed)
    if len(keep) == 0 or len(held) == 0:
        raise ConvscopeError(f"{cfg.dataset}: too few training images ({len(train)}) for a validation split; "
                             "add images (at least two per class)")
    train, val = train.subset(keep), train.subset(held)
    if cfg.max_train_images is not None and cfg.max_train_images < len(train):
        train = train.subset(stratified_subsample(train.labels, cfg.max_train_images, seed))
    return ClassificationData(train=train, val=val, test=test)

"""Segmentation data sets: whole images of any size with class maps or instance labels, split by image.

Splits of data sets without a test split are fixed: ids sorted, shuffled with ``SPLIT_SEED`` and cut
70 / 15 / 15 % (train / validation / test), whatever the training seed: ``isbi2012`` (30 images) gives
22 / 4 / 4 (see :func:`convscope.datasets.paired.seeded_split` for the rounding).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convscope.config import DataConfig
from convscope.datasets.bacteria import make_synthetic_bacteria
from convscope.datasets.facts import binary_regions
from convscope.datasets.nuclei import make_synthetic_nuclei
from convscope.datasets.paired import PairedSample, load_paired_folder, seeded_split
from convscope.datasets.sources import data_root
from convscope.errors import ConvscopeError

SPLIT_SEED = 2018
FRACTIONS = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class SegmentationSet:
    """Images and class maps of one split.

    Attributes
    ----------
    images : list of ndarray, each (H, W, C) uint8 or uint16
    masks : list of ndarray, each (H, W) integer class map, or instance label image (0 = background)
    paths : tuple of str
    """

    images: list[np.ndarray]
    masks: list[np.ndarray]
    paths: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def truths(self) -> list[np.ndarray]:
        """The ground truth of the split: the masks."""
        return self.masks


@dataclass(frozen=True)
class SegmentationData:
    """Train, validation and test splits and the class names (class 0 = background)."""

    train: SegmentationSet
    val: SegmentationSet
    test: SegmentationSet | None
    class_names: tuple[str, ...]

    @property
    def channels(self) -> int:
        return int(self.train.images[0].shape[2])


def load_segmentation(cfg: DataConfig, *, data_dir: Path | None = None, seed: int = 0,
                      instances: bool = False) -> SegmentationData:
    """Load a segmentation data set as ``cfg`` says (see ``convscope data list``).

    With ``instances`` the masks are instance label images (uint16/uint32, 0 = background, one id per object)
    instead of class maps; ``isbi2012`` has no instances. ``data.max_train_images`` keeps that many training
    images (seeded with ``seed``); validation and test stay whole.
    """
    if cfg.dataset in SYNTHETIC:
        return limit_train(_synthetic(cfg, seed, instances), cfg.max_train_images, seed)
    if cfg.dataset == "isbi2012" and instances:
        raise ConvscopeError("data.dataset: isbi2012 has membrane masks, not instance labels; use dsb2018, "
                             "synthetic_nuclei, synthetic_bacteria or paired")
    if cfg.dataset == "dsb2018":
        return limit_train(_dsb2018(cfg, data_dir, instances), cfg.max_train_images, seed)
    if cfg.dataset in ("isbi2012", "paired"):
        samples, names = _paired(cfg, data_dir, instances)
        split = _split(samples, names) if cfg.holdout or cfg.dataset != "paired" else _train_only(samples, names)
        return limit_train(split, cfg.max_train_images, seed)
    raise ConvscopeError(f"data.dataset: '{cfg.dataset}' is not a segmentation data set; use "
                         f"{', '.join(SYNTHETIC)}, isbi2012, dsb2018 or paired (see `convscope data list`)")


#: Embedded synthetic data sets: name -> (generator, foreground class name).
SYNTHETIC = {"synthetic_bacteria": (make_synthetic_bacteria, "bacteria"),
             "synthetic_nuclei": (make_synthetic_nuclei, "nucleus")}


def _synthetic(cfg: DataConfig, seed: int, instances: bool) -> SegmentationData:
    size = (cfg.synthetic_size, cfg.synthetic_size)
    n_val = max(1, round(cfg.synthetic_count * FRACTIONS[1]))
    generate, name = SYNTHETIC[cfg.dataset]

    def make(n: int, split_seed: int, split: str) -> SegmentationSet:
        images, labels = generate(n, size=size, seed=split_seed)
        masks = list(labels) if instances else [(lab > 0).astype(np.uint8) for lab in labels]
        return SegmentationSet([im[:, :, None] for im in images], masks,
                               tuple(f"{cfg.dataset}:{split}/{i}" for i in range(n)))

    return SegmentationData(make(cfg.synthetic_count, seed, "train"), make(n_val, seed + 1, "val"),
                            make(n_val, seed + 10_007, "test"), ("background", name))


def _folder(cfg: DataConfig, data_dir: Path | None) -> Path:
    if cfg.path is not None:
        return Path(cfg.path)
    if cfg.dataset == "paired":
        raise ConvscopeError("data.path: the paired data set needs data.path=FOLDER with images/ and masks/")
    root = data_dir or data_root(None)
    if root is None:
        raise ConvscopeError(f"{cfg.dataset}: no data folder; pass --data DIR (holding {cfg.dataset}/) or set "
                             "CONVSCOPE_DATA; this data set is not downloadable")
    return Path(root) / cfg.dataset


def _paired(cfg: DataConfig, data_dir: Path | None, instances: bool
            ) -> tuple[list[PairedSample], tuple[str, ...]]:
    folder = _folder(cfg, data_dir)
    if cfg.dataset == "isbi2012":
        # label 255 = cell interior (foreground, class 1), 0 = membrane
        samples = load_paired_folder(folder, mask_mode="binary", image_dir="image", mask_dir="label")
        return samples, ("membrane", "interior")
    mode = "instance" if instances else "binary"
    samples = load_paired_folder(folder, mask_mode=mode, color=cfg.color)
    if instances:
        refuse_binary_masks([s.mask for s in samples], [s.mask_path for s in samples], folder)
    return samples, ("background", "foreground")


def refuse_binary_masks(masks: list[np.ndarray], paths: list[str], folder: str | Path) -> None:
    """Refuse binary masks (one value over several separate objects) where instance labels are needed.

    Star-convex and flow targets need one id per object: a 0/1 or 0/255 mask would train one object per image and
    score every object as one. Raises a one-line :class:`ConvscopeError` naming how many masks, one of them and the
    fix (label the objects, or a relabelled copy with ``convscope data check FOLDER --relabel NEW``).
    """
    binary = [(path, n) for mask, path in zip(masks, paths, strict=True) if (n := binary_regions(mask))]
    if binary:
        path, n = binary[0]
        raise ConvscopeError(
            f"{folder}: {len(binary)} of {len(masks)} masks are binary, one value for several separate objects "
            f"(e.g. {Path(path).name}: {n} objects), but instance segmentation (stardist, flows) needs one id per "
            f"object; label the objects, or train on a relabelled copy: `convscope data check {folder} --relabel "
            "NEW_FOLDER` (connected components)")


def limit_train(data: SegmentationData, n: int | None, seed: int) -> SegmentationData:
    """``data`` with at most ``n`` training images, drawn with ``seed`` and kept in their order; val/test unchanged."""
    if n is None or n >= len(data.train):
        return data
    keep = np.sort(np.random.default_rng(seed).permutation(len(data.train))[:n])
    train = SegmentationSet([data.train.images[i] for i in keep], [data.train.masks[i] for i in keep],
                            tuple(data.train.paths[i] for i in keep))
    return SegmentationData(train, data.val, data.test, data.class_names)


def image_kinds(folder: str | Path) -> dict[str, str]:
    """Map each image id of a ``dsb2018`` folder to its kind, as ``image_types.csv`` says.

    Parameters
    ----------
    folder : str or Path
        The ``dsb2018`` folder (holding ``image_types.csv``, ``images/``, ``masks/``).

    Returns
    -------
    dict of str to str
        Image id (file stem) -> ``fluorescence_gray``, ``brightfield_gray`` or ``color_stained``.
    """
    table = Path(folder) / "image_types.csv"
    if not table.is_file():
        raise ConvscopeError(f"{table}: not found; the dsb2018 folder needs image_types.csv (id, kind, ...)")
    with table.open(newline="") as fh:
        return {row["id"]: row["kind"] for row in csv.DictReader(fh)}


def fluorescence_ids(folder: Path) -> set[str]:
    """Ids of the fluorescence images of a ``dsb2018`` folder (see :func:`image_kinds`)."""
    return {i for i, kind in image_kinds(folder).items() if kind.startswith("fluorescence")}


def dsb2018_split_ids(kinds_by_id: dict[str, str], kinds: tuple[str, ...] | list[str]
                      ) -> tuple[list[str], list[str], list[str]]:
    """The fixed train / validation / test ids of ``dsb2018`` for the chosen kinds.

    Each kind is split on its own with the one rule (:func:`~convscope.datasets.paired.seeded_split`,
    ``FRACTIONS``, ``SPLIT_SEED``), so adding a kind never moves an image of another kind between splits.

    Parameters
    ----------
    kinds_by_id : dict of str to str
        Image id -> kind (:func:`image_kinds`).
    kinds : sequence of str
        The kinds to keep.

    Returns
    -------
    train, val, test : list of str
        Disjoint, each sorted.
    """
    unknown = sorted(set(kinds) - set(kinds_by_id.values()))
    if unknown:
        raise ConvscopeError(f"data.kinds: no image of kind {', '.join(unknown)}; the folder has "
                             f"{', '.join(sorted(set(kinds_by_id.values())))}")
    splits: tuple[list[str], list[str], list[str]] = ([], [], [])
    for kind in dict.fromkeys(kinds):
        ids = [i for i, k in kinds_by_id.items() if k == kind]
        for out, part in zip(splits, seeded_split(ids, fractions=FRACTIONS, seed=SPLIT_SEED), strict=True):
            out.extend(part)
    return sorted(splits[0]), sorted(splits[1]), sorted(splits[2])


def _dsb2018(cfg: DataConfig, data_dir: Path | None, instances: bool) -> SegmentationData:
    folder = _folder(cfg, data_dir)
    kinds_by_id = image_kinds(folder)
    train, val, test = dsb2018_split_ids(kinds_by_id, cfg.kinds)
    mode = "instance" if instances else "instance_to_binary"
    color = "rgb" if cfg.color == "rgb" else "gray"
    samples = load_paired_folder(folder, mask_mode=mode, color=color)
    return _subsets({s.id: s for s in samples}, (train, val, test), ("background", "nucleus"))


def _split(samples: list[PairedSample], names: tuple[str, ...]) -> SegmentationData:
    by_id = {s.id: s for s in samples}
    return _subsets(by_id, seeded_split(list(by_id), fractions=FRACTIONS, seed=SPLIT_SEED), names)


def _train_only(samples: list[PairedSample], names: tuple[str, ...]) -> SegmentationData:
    """Every pair trains; validation (curves, threshold tuning) reuses them; the test split is empty."""
    ids = sorted(s.id for s in samples)
    return _subsets({s.id: s for s in samples}, (ids, ids, []), names)


def _subsets(by_id: dict[str, PairedSample], splits: tuple[list[str], list[str], list[str]],
             names: tuple[str, ...]) -> SegmentationData:
    train, val, test = splits
    missing = sorted(set(train + val + test) - set(by_id))
    if missing:
        raise ConvscopeError(f"image_types.csv lists {len(missing)} id(s) without an image/mask pair, "
                             f"e.g. {missing[0]}")

    def subset(ids: list[str]) -> SegmentationSet:
        chosen = [by_id[i] for i in ids]
        return SegmentationSet([s.image for s in chosen], [s.mask for s in chosen],
                               tuple(s.image_path for s in chosen))

    return SegmentationData(subset(train), subset(val), subset(test), names)

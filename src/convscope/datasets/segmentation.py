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
    instead of class maps; ``isbi2012`` has no instances.
    """
    if cfg.dataset in SYNTHETIC:
        return _synthetic(cfg, seed, instances)
    if cfg.dataset == "isbi2012" and instances:
        raise ConvscopeError("data.dataset: isbi2012 has membrane masks, not instance labels; use dsb2018, "
                             "synthetic_nuclei, synthetic_bacteria or paired")
    if cfg.dataset in ("isbi2012", "dsb2018", "paired"):
        samples, names = _paired(cfg, data_dir, instances)
        return _split(samples, names)
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
    if cfg.dataset == "dsb2018":
        keep = fluorescence_ids(folder)
        mode = "instance" if instances else "instance_to_binary"
        samples = load_paired_folder(folder, mask_mode=mode, color="gray")
        return [s for s in samples if s.id in keep], ("background", "nucleus")
    mode = "instance" if instances else "binary"
    return load_paired_folder(folder, mask_mode=mode, color=cfg.color), ("background", "foreground")


def fluorescence_ids(folder: Path) -> set[str]:
    table = folder / "image_types.csv"
    if not table.is_file():
        raise ConvscopeError(f"{table}: not found; the dsb2018 folder needs image_types.csv (id, kind, ...)")
    with table.open(newline="") as fh:
        return {row["id"] for row in csv.DictReader(fh) if row["kind"].startswith("fluorescence")}


def _split(samples: list[PairedSample], names: tuple[str, ...]) -> SegmentationData:
    by_id = {s.id: s for s in samples}
    train, val, test = seeded_split(list(by_id), fractions=FRACTIONS, seed=SPLIT_SEED)

    def subset(ids: list[str]) -> SegmentationSet:
        chosen = [by_id[i] for i in ids]
        return SegmentationSet([s.image for s in chosen], [s.mask for s in chosen],
                               tuple(s.image_path for s in chosen))

    return SegmentationData(subset(train), subset(val), subset(test), names)

"""Data set registry and the training / evaluation views the loop iterates over."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from backend.errors import InputError
from training.data.packed import PackedDataset
from training.data.refsegrs import Record, RefSegRSDataset
from training.data.rrsisd import RRSISDDataset
from training.data.sample import Sample
from training.data.synthetic import SyntheticDataset
from training.data.transforms import augment, resize_pair

DATASETS = {"refsegrs": RefSegRSDataset, "rrsisd": RRSISDDataset, "synthetic": SyntheticDataset,
            "packed": PackedDataset}
ALIASES = {"rrsis-d": "rrsisd", "rrsis_d": "rrsisd", "refseg": "refsegrs", "nwpu": "refsegrs",
           "dubai": "refsegrs", "generated": "refsegrs"}


class ReferDataset(Protocol):
    """What every data set class offers."""

    records: list[Record]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def open_dataset(
    fmt: str, root: str | Path, split: str, *, synthetic_samples: int = 32,
    synthetic_size_px: int = 96, seed: int = 0,
) -> ReferDataset:
    """Open one split of a data set.

    Args:
        fmt: ``refsegrs`` (also our generated sets), ``rrsisd``, ``synthetic`` or ``packed``
            (a generated set's shards, :mod:`training.data.packed`; aliases: ``rrsis-d``,
            ``nwpu``, ``dubai``).
        root: Its folder (ignored for ``synthetic``).
        split: Split name.
        synthetic_samples: Size of a synthetic split.
        synthetic_size_px: Image side of synthetic samples.
        seed: Seed of synthetic data.

    Raises:
        InputError: Unknown format, missing data or split.
    """
    key = ALIASES.get(fmt.lower(), fmt.lower())
    if key not in DATASETS:
        raise InputError(
            f"unknown data set {fmt!r}; use one of {', '.join(DATASETS)} (generated NWPU/Dubai "
            "sets are in the RefSegRS layout: --dataset refsegrs; their shards: packed)"
        )
    if key == "synthetic":
        return SyntheticDataset(synthetic_samples, synthetic_size_px, seed, split)
    return DATASETS[key](root, split)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Source:
    """A data set in a mix: its tag, the opened split and its oversampling factor."""

    tag: str
    dataset: ReferDataset
    repeat: int = 1


def subset_indices(n: int, max_n: int, seed: int) -> list[int]:
    """All of ``range(n)``, or a fixed seeded sorted subset of ``max_n`` of them."""
    if max_n <= 0 or max_n >= n:
        return list(range(n))
    return sorted(np.random.default_rng(seed).choice(n, size=max_n, replace=False).tolist())


class TrainSet(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The training mix: augmented, resized samples as dicts.

    Items: ``image (S, S, 3) uint8``, ``mask (S, S) bool``, ``text``, ``type``, ``tag``, ``index``.

    Args:
        sources: Data sets with tags and repeat factors.
        image_size: Network input side S.
        augment_cfg: ``AugmentConfig``.
        seed: Seed of the augmentation streams and of the cutout subset.
        limits: Per-source cap on samples (0 = all), same order as ``sources``.
        types: Per-source type filter (empty = all).
    """

    def __init__(self, sources: list[Source], image_size: int, augment_cfg: Any, seed: int,
                 limits: list[int] | None = None, types: list[list[str]] | None = None) -> None:
        self.sources = sources
        self.image_size = image_size
        self.augment_cfg = augment_cfg
        self.seed = seed
        self.epoch = 0
        self.entries: list[tuple[int, int]] = []
        for si, src in enumerate(sources):
            n = len(src.dataset)
            cap = (limits or [0] * len(sources))[si]
            keep_types = set((types or [[]] * len(sources))[si])
            items = [i for i in range(n if cap <= 0 else min(cap, n))
                     if not keep_types or src.dataset.records[i].expr_type in keep_types
                     or src.dataset.records[i].expr_type is None]
            for _ in range(src.repeat):
                self.entries.extend((si, i) for i in items)
        if not self.entries:
            raise InputError("the training mix is empty: check data.sets (splits, types, limits)")
        frac = float(getattr(augment_cfg, "cutout_fraction", 0.0))
        pick = np.random.default_rng([seed, 2401]).random(len(self.entries)) < frac
        self.cutout = set(np.nonzero(pick)[0].tolist())

    def __len__(self) -> int:
        return len(self.entries)

    def expr_type(self, index: int) -> str | None:
        """Type of entry ``index`` without loading it."""
        si, i = self.entries[index]
        return self.sources[si].dataset.records[i].expr_type

    def indices_for_types(self, types: list[str]) -> list[int]:
        """Entries of the given types (untyped entries always included; empty = all)."""
        if not types:
            return list(range(len(self.entries)))
        keep = set(types)
        return [k for k in range(len(self.entries))
                if (t := self.expr_type(k)) is None or t in keep]

    def __getitem__(self, index: int) -> dict[str, Any]:
        si, i = self.entries[index]
        sample = self.sources[si].dataset[i]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        aug = augment(sample.image, sample.mask, sample.text, sample.expr_type, rng,
                      self.augment_cfg, cutout=index in self.cutout)
        image, mask = resize_pair(aug.image, aug.mask, self.image_size)
        return {"image": image, "mask": mask, "text": aug.text, "type": sample.expr_type,
                "tag": self.sources[si].tag, "index": index}


class EvalSet(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Validation / test samples: resized network input plus the original-size mask.

    Args:
        source: The data set.
        image_size: Network input side S.
        indices: Which samples (default all).
    """

    def __init__(self, source: Source, image_size: int, indices: list[int] | None = None) -> None:
        self.source = source
        self.image_size = image_size
        self.indices = list(range(len(source.dataset))) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict[str, Any]:
        sample = self.source.dataset[self.indices[k]]
        image, mask = resize_pair(sample.image, sample.mask, self.image_size)
        group = sample.expr_type  # RRSIS-D has no types: break it down by category instead
        if group is None and sample.meta.get("category"):
            group = f"category:{sample.meta['category']}"
        return {"image": image, "mask": mask, "native_mask": sample.mask, "text": sample.text,
                "type": group, "tag": self.source.tag, "index": k}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images ``(B, S, S, 3) uint8`` and masks ``(B, S, S) bool``; keep the rest as lists."""
    out: dict[str, Any] = {
        "image": torch.from_numpy(np.stack([it["image"] for it in items])),
        "mask": torch.from_numpy(np.stack([it["mask"] for it in items])),
    }
    for key in items[0]:
        if key not in ("image", "mask"):
            out[key] = [it[key] for it in items]
    return out

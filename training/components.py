"""Building a run: device, model, training mix and val views, optimiser, LR schedule, loaders."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler, Subset

from backend.errors import ConfigError, InputError
from training.config import TrainConfig
from training.data.datasets import EvalSet, Source, TrainSet, collate, open_dataset, subset_indices
from training.dist import DistInfo

logger = logging.getLogger(__name__)


def resolve_train_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU (MPS is not used for training)."""
    from backend.model.segmenter import resolve_device

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(name)


def build_training_model(cfg: TrainConfig, device: torch.device) -> nn.Module:
    """Build the model of ``cfg`` (random init seeded by ``cfg.seed``) and load initial weights.

    The config's architecture builds the model and reads its pretrained files
    (``cfg.pretrained``, plus the ``sam2_weights`` / ``clip_weights`` shorthands).
    """
    from backend.model.architectures import architecture_of
    from backend.model.checkpoint import load_state_dict_checked, read_checkpoint
    from backend.model.configs import get_model_config
    from training.baselines import build_baseline, is_baseline

    if is_baseline(cfg.model):  # ablation baselines (training/baselines), random init
        return build_baseline(cfg.model, cfg.model_overrides, seed=cfg.seed).to(device)
    mcfg = get_model_config(cfg.model, **dict(cfg.model_overrides))
    arch = architecture_of(mcfg)
    model = arch.build(mcfg, device="cpu", seed=cfg.seed)
    sources = {k: v for k, v in {"sam2": cfg.sam2_weights, "clip": cfg.clip_weights}.items() if v}
    sources.update({k: v for k, v in dict(cfg.pretrained).items() if v})
    for report in arch.init_pretrained(model, sources):
        logger.info("%s", report.format())
    if cfg.init_checkpoint:
        state, ck_cfg, _meta, _sha = read_checkpoint(Path(cfg.init_checkpoint))
        old, new = ck_cfg.to_dict(), mcfg.to_dict()
        if old != new:
            diff = {k: (old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys())
                    if old.get(k) != new.get(k)}
            logger.warning("init_checkpoint's model config differs from %r in (stored, "
                           "configured): %s", mcfg.name, diff)
        load_state_dict_checked(model, state, source=cfg.init_checkpoint)
    model.apply_freezing()
    if cfg.clicks.prob > 0:
        enable = getattr(model, "enable_click_prompts", None)
        if enable is None:
            raise ConfigError(f"clicks.prob = {cfg.clicks.prob} needs a model with a SAM 2 prompt "
                              f"encoder; {cfg.model!r} has none: set clicks.prob=0")
        enable()
    return model.to(device)


def _sources(cfg: TrainConfig, split_attr: str) -> list[tuple[Source, Any]]:
    out = []
    for ds_cfg in cfg.data.sets:
        split = getattr(ds_cfg, split_attr)
        if not split:
            continue
        ds = open_dataset(ds_cfg.format, ds_cfg.root, split,
                          synthetic_samples=ds_cfg.synthetic_samples,
                          synthetic_size_px=ds_cfg.synthetic_size_px, seed=cfg.seed)
        out.append((Source(ds_cfg.tag, ds, ds_cfg.repeat), ds_cfg))
    return out


def build_train_set(cfg: TrainConfig, image_size: int) -> TrainSet:
    """The training mix of ``cfg.data.sets``."""
    pairs = _sources(cfg, "train_split")
    if not pairs:
        raise ConfigError("no data set has a train_split: nothing to train on")
    return TrainSet([s for s, _ in pairs], image_size, cfg.augment, cfg.seed,
                    limits=[c.max_train_samples for _, c in pairs],
                    types=[list(c.types) for _, c in pairs])


def build_val_sets(cfg: TrainConfig, image_size: int) -> list[EvalSet]:
    """One evaluation view per data set with a val_split (fixed subsets where capped)."""
    out = []
    for src, c in _sources(cfg, "val_split"):
        pool = list(range(len(src.dataset)))
        if c.val_types:
            keep = set(c.val_types)
            pool = [i for i in pool if src.dataset.records[i].expr_type in keep]
            if not pool:
                raise ConfigError(f"data set {c.tag!r}: no val samples of types {c.val_types}")
        out.append(EvalSet(src, image_size,
                           [pool[k] for k in subset_indices(len(pool), c.max_val_samples,
                                                            cfg.seed)]))
    return out


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the model's ``new`` (``lr_new``) and ``base`` (``lr_base``) groups."""
    groups = model.param_groups()  # type: ignore[operator]
    o = cfg.optim
    param_groups = [
        {"params": groups["new"], "lr": o.lr_new, "initial_lr": o.lr_new, "name": "new"},
        {"params": groups["base"], "lr": o.lr_base, "initial_lr": o.lr_base, "name": "base"},
    ]
    param_groups = [g for g in param_groups if g["params"]]
    return torch.optim.AdamW(param_groups, lr=o.lr_base, betas=(o.betas[0], o.betas[1]),
                             eps=o.eps, weight_decay=o.weight_decay)


def lr_factor(cfg: TrainConfig, epoch: int, global_step: int, total_steps: int,
              time_fraction: float = 0.0) -> float:
    """Multiplier of the initial learning rates at an optimiser step.

    Args:
        cfg: The config (``optim.schedule``, warm-up, step epochs, ...).
        epoch: 0-based epoch index.
        global_step: Optimiser steps done before this one.
        total_steps: Planned optimiser steps of the whole run.
        time_fraction: Share of ``optim.schedule_time_s`` already trained (0 when unused):
            the decay follows the larger of it and the step fraction.

    Returns:
        The factor (1.0 for the paper's constant LR).
    """
    o = cfg.optim
    if o.schedule == "constant":
        f = 1.0
    elif o.schedule == "step":
        f = o.gamma ** sum(1 for e in o.step_epochs if epoch >= e)
    elif o.schedule == "poly":
        f = (1.0 - min(1.0, global_step / max(1, total_steps))) ** o.poly_power
    else:
        t = min(1.0, max(global_step / max(1, total_steps), time_fraction))
        shape = 0.5 * (1 + math.cos(math.pi * t)) if o.schedule == "cosine" else 1.0 - t
        f = o.min_lr_ratio + (1 - o.min_lr_ratio) * shape
    if o.warmup_steps > 0 and global_step < o.warmup_steps:
        f *= (global_step + 1) / o.warmup_steps
    return f


def curriculum_types(cfg: TrainConfig, epoch: int, started: list[int] | None = None) -> list[str]:
    """Expression types trained in ``epoch`` (empty = all).

    Args:
        cfg: The config.
        epoch: 0-based epoch index.
        started: For stages with ``start_fraction``: the epoch each started stage began with
            (``TrainState.curriculum_starts``); stages not in it have not started.
    """
    types: list[str] = []
    for i, stage in enumerate(cfg.curriculum):
        if stage.start_fraction is None:
            begins = stage.start_epoch
        elif started is not None and i < len(started):
            begins = started[i]
        else:
            break
        if epoch >= begins:
            types = list(stage.types)
    return types


def start_due_stages(cfg: TrainConfig, started: list[int], epoch: int,
                     time_fraction: float) -> bool:
    """Start (in place) the time-based curriculum stages due at the start of ``epoch``.

    Args:
        cfg: The config.
        started: ``TrainState.curriculum_starts``, appended to.
        epoch: The epoch about to begin (0-based).
        time_fraction: Share of ``optim.schedule_time_s`` trained so far.

    Returns:
        True when a stage started.
    """
    n = len(started)
    for stage in cfg.curriculum[n:]:
        if stage.start_fraction is None or time_fraction < stage.start_fraction:
            break
        started.append(epoch)
    return len(started) > n


class _SkipSampler(Sampler[int]):
    """Yields a wrapped sampler's indices after skipping the first ``skip``."""

    def __init__(self, sampler: Sampler[int], skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[int]:
        for n, idx in enumerate(self.sampler):
            if n >= self.skip:
                yield idx

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)  # type: ignore[arg-type]


def epoch_loader(train_set: TrainSet, cfg: TrainConfig, info: DistInfo, epoch: int,
                 skip_samples: int = 0, started: list[int] | None = None,
                 ) -> tuple[DataLoader, int]:  # type: ignore[type-arg]
    """The loader of one epoch and its number of optimiser steps (after the step cap).

    ``started`` is ``TrainState.curriculum_starts`` (time-based curriculum stages).
    """
    indices = train_set.indices_for_types(curriculum_types(cfg, epoch, started))
    if len(indices) < info.world_size * cfg.batch_size:
        raise InputError(f"epoch {epoch}: only {len(indices)} training samples for "
                         f"{info.world_size} x batch {cfg.batch_size}")
    train_set.epoch = epoch
    subset = Subset(train_set, indices)
    sampler = DistributedSampler(subset, num_replicas=info.world_size, rank=info.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=True)
    sampler.set_epoch(epoch)
    per_rank = len(sampler)
    steps = per_rank // (cfg.batch_size * cfg.grad_accum_steps)
    if cfg.max_steps_per_epoch:
        steps = min(steps, cfg.max_steps_per_epoch)
    workers = cfg.data.num_workers
    loader = DataLoader(subset, batch_size=cfg.batch_size, sampler=_SkipSampler(sampler,
                        skip_samples), num_workers=workers, collate_fn=collate,
                        drop_last=True, generator=torch.Generator().manual_seed(cfg.seed),
                        prefetch_factor=cfg.data.prefetch_factor if workers else None,
                        pin_memory=cfg.data.pin_memory)
    return loader, steps

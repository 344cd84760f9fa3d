"""The training loop: explicit, nanoGPT-style, torchrun-native.

``fit(cfg)``: build the model and data, optionally resume, then per epoch ``train_one_epoch`` ->
``evaluate`` -> checkpoint. Rank 0 alone writes files: ``last.pt`` (full training state, every
epoch and optionally every N steps), ``best.safetensors`` (inference checkpoint of the best
validation score, mIoU + oIoU averaged over the val sets), ``final.safetensors``,
``train_log.csv``, ``val_log.csv``, ``curves.png``, ``config.yaml`` and ``metrics.json``.

Exact resume: the training checkpoint holds the model, optimiser, grad scaler, every rank's RNG
states, the epoch, the optimiser steps done in it and the best score. Data order comes from a
``DistributedSampler`` seeded by ``(seed, epoch)`` and augmentation from per-sample generators
seeded by ``(seed, epoch, index)``, so a resumed run replays the same batches.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Sampler, Subset

from backend.errors import CheckpointError, ConfigError, InputError
from training.config import TrainConfig, config_to_yaml
from training.data.datasets import EvalSet, Source, TrainSet, collate, open_dataset, subset_indices
from training.dist import DistInfo, all_reduce_mean, barrier, cleanup, init_distributed
from training.losses import ReferringLoss
from training.metrics import GroupedIoU, predictions

logger = logging.getLogger(__name__)

TRAIN_LOG_FIELDS = ("epoch", "step", "global_step", "samples", "loss", "bce", "dice", "boundary",
                    "lr_base", "lr_new", "samples_per_s", "elapsed_s")
VAL_LOG_FIELDS = ("epoch", "global_step", "set", "group", "oIoU", "mIoU", "Pr@0.5", "Pr@0.6",
                  "Pr@0.7", "Pr@0.8", "Pr@0.9", "n", "score")


@dataclass
class TrainState:
    """Progress counters saved in every training checkpoint."""

    epoch: int = 0  # completed epochs
    step_in_epoch: int = 0  # optimiser steps done in the current (incomplete) epoch
    global_step: int = 0
    samples: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    elapsed_s: float = 0.0


# ----------------------------------------------------------------------------------- building
def resolve_train_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU (MPS is not used for training)."""
    from backend.model.segmenter import resolve_device

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return resolve_device(name)


def build_training_model(cfg: TrainConfig, device: torch.device) -> nn.Module:
    """Build the model of ``cfg`` (random init seeded by ``cfg.seed``) and load initial weights."""
    from backend.model.checkpoint import (
        load_open_clip_weights,
        load_sam2_weights,
        load_state_dict_checked,
        read_checkpoint,
    )
    from backend.model.configs import get_model_config
    from backend.model.rs2sam import build_model
    from training.baselines import build_baseline, is_baseline

    if is_baseline(cfg.model):  # ablation baselines (training/baselines), random init
        return build_baseline(cfg.model, cfg.model_overrides, seed=cfg.seed).to(device)
    mcfg = get_model_config(cfg.model, **dict(cfg.model_overrides))
    model = build_model(mcfg, device="cpu", seed=cfg.seed)
    if cfg.sam2_weights:
        logger.info("%s", load_sam2_weights(model, cfg.sam2_weights, strict=False).format())
    if cfg.clip_weights:
        logger.info("%s", load_open_clip_weights(model, cfg.clip_weights, strict=False).format())
    if cfg.init_checkpoint:
        state, ck_cfg, _meta, _sha = read_checkpoint(Path(cfg.init_checkpoint))
        if ck_cfg.to_dict() != mcfg.to_dict():
            logger.warning("init_checkpoint was trained as %r; loading into %r", ck_cfg.name,
                           mcfg.name)
        load_state_dict_checked(model, state, source=cfg.init_checkpoint)
    model.apply_freezing()
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


def lr_factor(cfg: TrainConfig, epoch: int, global_step: int, total_steps: int) -> float:
    """Multiplier of the initial learning rates at an optimiser step.

    Args:
        cfg: The config (``optim.schedule``, warm-up, step epochs, ...).
        epoch: 0-based epoch index.
        global_step: Optimiser steps done before this one.
        total_steps: Planned optimiser steps of the whole run.

    Returns:
        The factor (1.0 for the paper's constant LR).
    """
    o = cfg.optim
    if o.schedule == "constant":
        f = 1.0
    elif o.schedule == "step":
        f = o.gamma ** sum(1 for e in o.step_epochs if epoch >= e)
    else:
        t = min(1.0, global_step / max(1, total_steps))
        shape = 0.5 * (1 + math.cos(math.pi * t)) if o.schedule == "cosine" else 1.0 - t
        f = o.min_lr_ratio + (1 - o.min_lr_ratio) * shape
    if o.warmup_steps > 0 and global_step < o.warmup_steps:
        f *= (global_step + 1) / o.warmup_steps
    return f


def _pseudo_mask(model: torch.nn.Module, out: Any) -> torch.Tensor | None:
    """The MPG pseudo-mask of a forward output, or None (no MPG: ablation arm or a baseline)."""
    if getattr(model, "mpg", None) is None:
        return None
    return getattr(out, "pseudo_mask", None)


def curriculum_types(cfg: TrainConfig, epoch: int) -> list[str]:
    """Expression types trained in ``epoch`` (empty = all)."""
    types: list[str] = []
    for stage in cfg.curriculum:
        if epoch >= stage.start_epoch:
            types = list(stage.types)
    return types


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
                 skip_samples: int = 0) -> tuple[DataLoader, int]:  # type: ignore[type-arg]
    """The loader of one epoch and its number of optimiser steps (after the step cap)."""
    indices = train_set.indices_for_types(curriculum_types(cfg, epoch))
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
    loader = DataLoader(subset, batch_size=cfg.batch_size, sampler=_SkipSampler(sampler,
                        skip_samples), num_workers=cfg.data.num_workers, collate_fn=collate,
                        drop_last=True, generator=torch.Generator().manual_seed(cfg.seed))
    return loader, steps


# -------------------------------------------------------------------------------- checkpoints
def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    name, keys, *rest = s["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    py = s["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def _gather_rng(info: DistInfo) -> list[dict[str, Any]]:
    state = _rng_state()
    if not info.is_distributed:
        return [state]
    import torch.distributed as dist

    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, state)
    return out


def save_training_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                             scaler: torch.amp.GradScaler, state: TrainState, cfg: TrainConfig,
                             rng: list[dict[str, Any]]) -> None:
    """Write the full training state atomically (rank 0 only)."""
    payload = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "state": dict(state.__dict__),
        "rng": rng,
        "train_config": config_to_yaml(cfg),
        "model_config": model.config.to_dict(),  # type: ignore[operator]
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint without unpickling code (``weights_only=True``).

    Raises:
        CheckpointError: Missing or unreadable file.
    """
    if not path.is_file():
        raise CheckpointError(f"training checkpoint {str(path)!r} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # type: ignore[no-any-return]
    except Exception as err:
        raise CheckpointError(f"cannot read training checkpoint {str(path)!r}: {err}") from None


# ---------------------------------------------------------------------------------- logging
class CsvLog:
    """Append-only CSV with a fixed header; truncated to a step on resume."""

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        self.path, self.fields = path, fields

    def truncate(self, keep: Any) -> None:
        """Keep only rows for which ``keep(row)`` is true (rows after a resume point go)."""
        if not self.path.is_file():
            return
        with open(self.path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if keep(r)]
        with open(self.path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row."""
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.fields)
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k, "")) for k in self.fields})


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_curves(out_dir: Path) -> Path | None:
    """Write ``curves.png``: training loss terms by step, validation mIoU / oIoU by epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_csv, val_csv = out_dir / "train_log.csv", out_dir / "val_log.csv"
    if not train_csv.is_file():
        return None
    with open(train_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [int(r["global_step"]) for r in rows]
    for key in ("loss", "bce", "dice", "boundary"):
        ax0.plot(steps, [float(r[key]) for r in rows], label=key, lw=1)
    ax0.set_xlabel("optimiser step")
    ax0.set_ylabel("training loss")
    ax0.set_yscale("symlog", linthresh=1e-2)
    ax0.legend()
    if val_csv.is_file():
        with open(val_csv, newline="") as fh:
            vrows = [r for r in csv.DictReader(fh) if r["group"] == "all"]
        for tag in sorted({r["set"] for r in vrows}):
            sub = [r for r in vrows if r["set"] == tag]
            ep = [int(r["epoch"]) for r in sub]
            ax1.plot(ep, [float(r["mIoU"]) for r in sub], "o-", label=f"{tag} mIoU")
            ax1.plot(ep, [float(r["oIoU"]) for r in sub], "s--", label=f"{tag} oIoU")
        ax1.legend()
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("validation (x100)")
    fig.tight_layout()
    path = out_dir / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------- train / eval
def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


@torch.no_grad()
def evaluate(model: nn.Module, eval_set: EvalSet, cfg_mode: str, device: torch.device,
             precision: str, batch_size: int, info: DistInfo,
             progress: bool = False) -> dict[str, dict[str, float]]:
    """Score one evaluation set; every rank scores a disjoint shard, sums are all-reduced.

    Args:
        model: The (unwrapped) model.
        eval_set: Samples to score.
        cfg_mode: ``paper`` or ``native`` (see :mod:`training.metrics`).
        device: Compute device.
        precision: As in the config.
        batch_size: Per process.
        info: This process's place in the job.
        progress: Show a tqdm bar.

    Returns:
        ``{"all": metrics, "<type>": metrics, ...}`` (x100, ``n`` counts).
    """
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    shard = Subset(eval_set, list(range(info.rank, len(eval_set), info.world_size)))
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, collate_fn=collate)
    acc = GroupedIoU()
    for batch in tqdm(loader, desc=f"eval {eval_set.source.tag}", disable=not progress,
                      leave=False):
        inputs = model.prepare_inputs(batch["image"], batch["text"])  # type: ignore[operator]
        with _autocast(device, precision):
            out = model(inputs)
        gts = batch["mask"] if cfg_mode == "paper" else batch["native_mask"]
        for (pred, gt), etype in zip(predictions(out.logits, list(gts), cfg_mode), batch["type"],
                                     strict=True):
            acc.update(pred.cpu(), gt.cpu(), [etype])
    acc.all_reduce()
    model.train(was_training)
    return acc.compute()


def _score(metrics: dict[str, dict[str, dict[str, float]]]) -> float:
    vals = [m["all"]["mIoU"] + m["all"]["oIoU"] for m in metrics.values()]
    return float(np.mean(vals)) if vals else -math.inf


def train_one_epoch(ctx: _Run, epoch: int) -> None:
    """Run the optimiser steps of one epoch (resuming mid-epoch when the state says so)."""
    from tqdm import tqdm

    cfg, info, state = ctx.cfg, ctx.info, ctx.state
    per_step = cfg.batch_size * cfg.grad_accum_steps
    start = state.step_in_epoch if state.epoch == epoch else 0
    loader, steps = epoch_loader(ctx.train_set, cfg, info, epoch, skip_samples=start * per_step)
    ctx.model.train()
    it = iter(loader)
    window: list[torch.Tensor] = []
    t_window = time.perf_counter()
    bar = tqdm(total=steps, initial=start, desc=f"epoch {epoch + 1}/{cfg.epochs}",
               disable=not (info.is_main and cfg.progress), leave=False)
    for step in range(start, steps):
        factor = lr_factor(cfg, epoch, state.global_step, ctx.total_steps)
        for group in ctx.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        terms_sum = torch.zeros(4)
        for micro in range(cfg.grad_accum_steps):
            batch = next(it)
            sync = not info.is_distributed or micro == cfg.grad_accum_steps - 1
            no_sync = ctx.ddp_model.no_sync() if not sync else contextlib.nullcontext()
            with no_sync:
                inputs = ctx.model.prepare_inputs(batch["image"], batch["text"])
                masks = batch["mask"].to(ctx.device)
                with _autocast(ctx.device, cfg.precision):
                    out = ctx.ddp_model(inputs)
                terms = ctx.criterion(out.logits, masks, out.boundary_weight,
                                      _pseudo_mask(ctx.model, out))
                ctx.scaler.scale(terms["loss"] / cfg.grad_accum_steps).backward()
            terms_sum += torch.stack([terms[k].detach().float().cpu()
                                      for k in ("loss", "bce", "dice", "boundary")])
        if cfg.optim.grad_clip_norm > 0:
            ctx.scaler.unscale_(ctx.optimizer)
            torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), cfg.optim.grad_clip_norm)
        ctx.scaler.step(ctx.optimizer)
        ctx.scaler.update()
        ctx.optimizer.zero_grad(set_to_none=True)
        state.global_step += 1
        state.step_in_epoch = step + 1
        state.samples += per_step * info.world_size
        window.append(all_reduce_mean(terms_sum / cfg.grad_accum_steps))
        bar.update(1)
        if len(window) >= cfg.log_every or step == steps - 1:
            now = time.perf_counter()
            state.elapsed_s += now - t_window
            mean = torch.stack(window).mean(0).tolist()
            rate = len(window) * per_step * info.world_size / max(now - t_window, 1e-9)
            lrs = {g.get("name", str(i)): g["lr"] for i, g in
                   enumerate(ctx.optimizer.param_groups)}
            if info.is_main:
                ctx.train_log.write({
                    "epoch": epoch + 1, "step": step + 1, "global_step": state.global_step,
                    "samples": state.samples, "loss": mean[0], "bce": mean[1], "dice": mean[2],
                    "boundary": mean[3], "lr_base": lrs.get("base", ""),
                    "lr_new": lrs.get("new", ""), "samples_per_s": rate,
                    "elapsed_s": state.elapsed_s})
                bar.set_postfix(loss=f"{mean[0]:.4f}", sps=f"{rate:.2f}")
            window, t_window = [], time.perf_counter()
        if ctx.limit_reached():
            ctx.stopped_early = step < steps - 1
            if ctx.stopped_early:
                ctx.save_last()
            break
        if cfg.save_every_steps and state.global_step % cfg.save_every_steps == 0 \
                and step < steps - 1:
            ctx.save_last()
    bar.close()


@dataclass
class _Run:
    """Everything a run holds (built by :func:`fit`)."""

    cfg: TrainConfig
    info: DistInfo
    device: torch.device
    model: nn.Module
    ddp_model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: ReferringLoss
    train_set: TrainSet
    val_sets: list[EvalSet]
    state: TrainState
    out_dir: Path
    total_steps: int
    train_log: CsvLog
    val_log: CsvLog
    t_start: float = 0.0
    stopped_early: bool = False

    def limit_reached(self) -> bool:
        """True once ``max_steps`` or ``time_limit_s`` is reached."""
        c = self.cfg
        return bool((c.max_steps and self.state.global_step >= c.max_steps) or (
            c.time_limit_s and time.perf_counter() - self.t_start >= c.time_limit_s))

    def save_last(self) -> None:
        """Write ``last.pt`` (all ranks take part in gathering RNG states; rank 0 writes)."""
        rng = _gather_rng(self.info)
        if self.info.is_main:
            save_training_checkpoint(self.out_dir / "last.pt", self.model, self.optimizer,
                                     self.scaler, self.state, self.cfg, rng)
        barrier()


def _resume_path(cfg: TrainConfig, out_dir: Path) -> Path | None:
    if cfg.resume == "auto":
        p = out_dir / "last.pt"
        return p if p.is_file() else None
    if cfg.resume:
        p = Path(cfg.resume)
        if not p.is_file():
            raise ConfigError(f"resume={cfg.resume!r}: no such training checkpoint")
        return p
    if (out_dir / "last.pt").exists():
        raise ConfigError(
            f"out_dir {str(out_dir)!r} already holds a run (last.pt); pass resume=auto to "
            "continue it, or choose another out_dir"
        )
    return None


def export_inference(model: nn.Module, path: Path, cfg: TrainConfig, state: TrainState,
                     metrics: dict[str, Any], train_set: TrainSet | None = None) -> str:
    """Write an inference checkpoint (contract §5) with training data and metrics as metadata.

    Args:
        model: The (unwrapped) model.
        path: Output ``.safetensors``.
        cfg: The run's config (stored whole, plus a summary of the data sets).
        state: Progress counters (epochs, steps, samples seen).
        metrics: Validation metrics to store (may be empty).
        train_set: The training mix, for sample counts (None when unknown).

    Returns:
        The weights' sha256.
    """
    import copy

    from omegaconf import OmegaConf

    from backend.model.checkpoint import save_checkpoint

    counts = {s.tag: len(s.dataset) for s in (train_set.sources if train_set else [])}
    data = [{"tag": c.tag, "format": c.format, "root": c.root, "train_split": c.train_split,
             "val_split": c.val_split,
             "train_samples": counts.get(c.tag) if c.train_split else 0}
            for c in cfg.data.sets]
    meta = {
        "training": {"data": data, "epochs": state.epoch, "global_step": state.global_step,
                     "samples_seen": state.samples, "seed": cfg.seed,
                     "config": OmegaConf.to_container(OmegaConf.structured(cfg))},
        "metrics": metrics,
        "eval_mode": cfg.eval_mode,
    }
    target = model
    if cfg.export_fp16:
        target = copy.deepcopy(model).half()
    from training.baselines import is_baseline, save_baseline

    if is_baseline(cfg.model):
        return save_baseline(target, path, meta)
    return save_checkpoint(target, path, metadata=meta)


def fit(cfg: TrainConfig) -> dict[str, Any]:
    """Train per ``cfg``; returns ``{"best_score", "best_epoch", "metrics", "out_dir", ...}``.

    Raises:
        ConfigError / InputError / CheckpointError: User errors (bad data, paths, resume).
    """
    device = resolve_train_device(cfg.device)
    info = init_distributed(device.type)
    try:
        return _fit(cfg, device, info)
    finally:
        cleanup()


def _fit(cfg: TrainConfig, device: torch.device, info: DistInfo) -> dict[str, Any]:
    if device.type == "cuda" and info.is_distributed:
        device = torch.device("cuda", info.local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out_dir = Path(cfg.out_dir)
    resume = _resume_path(cfg, out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(config_to_yaml(cfg))
    torch.manual_seed(cfg.seed + info.rank)
    np.random.seed((cfg.seed + info.rank) % 2**32)
    random.seed(cfg.seed + info.rank)

    model = build_training_model(cfg, device)
    image_size = cfg.data.image_size or model.image_size  # type: ignore[union-attr]
    train_set = build_train_set(cfg, image_size)
    val_sets = build_val_sets(cfg, image_size)
    optimizer = make_optimizer(model, cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    state = TrainState()
    if resume is not None:
        ck = load_training_checkpoint(resume)
        if ck["model_config"] != model.config.to_dict():  # type: ignore[operator]
            raise ConfigError(f"{resume} was trained with model {ck['model_config']['name']!r}, "
                              f"not the configured {cfg.model!r}")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scaler.load_state_dict(ck["scaler"])
        state = TrainState(**ck["state"])
        rngs = ck["rng"]
        _set_rng_state(rngs[info.rank] if info.rank < len(rngs) else rngs[0])
        logger.info("resumed from %s at epoch %d step %d", resume, state.epoch,
                    state.step_in_epoch)
    ddp_model: nn.Module = model
    if info.is_distributed:
        from torch.nn.parallel import DistributedDataParallel

        ddp_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters)
    _, steps0 = epoch_loader(train_set, cfg, info, 0)
    train_log = CsvLog(out_dir / "train_log.csv", TRAIN_LOG_FIELDS)
    val_log = CsvLog(out_dir / "val_log.csv", VAL_LOG_FIELDS)
    if info.is_main:
        g, e = state.global_step, state.epoch
        train_log.truncate(lambda r: int(r["global_step"]) <= g)
        val_log.truncate(lambda r: int(r["epoch"]) <= e)
    run = _Run(cfg, info, device, model, ddp_model, optimizer, scaler, ReferringLoss(cfg.loss),
               train_set, val_sets, state, out_dir, steps0 * cfg.epochs, train_log, val_log,
               time.perf_counter())
    if info.is_main:
        n_params = model.parameter_counts()  # type: ignore[operator]
        logger.info("model %s (%s params, %s trainable), %d training samples, %d steps/epoch, "
                    "world %d, device %s", cfg.model, n_params["total"], n_params["trainable"],
                    len(train_set), steps0, info.world_size, device)
    last_metrics: dict[str, Any] = {}
    for epoch in range(state.epoch, cfg.epochs):
        train_one_epoch(run, epoch)
        if run.stopped_early:  # max_steps / time_limit_s inside the epoch: last.pt is written
            logger.info("step / time limit reached at step %d (epoch %d, step %d)",
                        state.global_step, epoch + 1, state.step_in_epoch)
            break
        state.epoch, state.step_in_epoch = epoch + 1, 0
        last = epoch + 1 == cfg.epochs or run.limit_reached()
        evaluated = bool(val_sets) and ((epoch + 1) % cfg.eval_every == 0 or last)
        stop = False
        if evaluated:
            last_metrics = {v.source.tag: evaluate(model, v, cfg.eval_mode, device,
                                                   cfg.precision, cfg.eval_batch_size, info,
                                                   cfg.progress and info.is_main)
                            for v in val_sets}
            score = _score(last_metrics)
            if info.is_main:
                for tag, groups in last_metrics.items():
                    for group, m in groups.items():
                        val_log.write({"epoch": epoch + 1, "global_step": state.global_step,
                                       "set": tag, "group": group, **m,
                                       "score": m["mIoU"] + m["oIoU"]})
                logger.info("epoch %d: %s", epoch + 1, {t: {k: round(v, 2) for k, v in
                            g["all"].items()} for t, g in last_metrics.items()})
            if score > state.best_score:
                state.best_score, state.best_epoch = score, epoch + 1
                if info.is_main:
                    export_inference(model, out_dir / "best.safetensors", cfg, state,
                                     last_metrics, train_set)
            stop = bool(cfg.stop_at_miou) and all(
                g["all"]["mIoU"] >= cfg.stop_at_miou for g in last_metrics.values())
        if (epoch + 1) % cfg.checkpoint_every == 0 or last or stop:
            run.save_last()
            if info.is_main and cfg.keep_epoch_checkpoints:
                import shutil

                shutil.copyfile(out_dir / "last.pt", out_dir / f"epoch_{epoch + 1:03d}.pt")
        if info.is_main and (evaluated or last):
            plot_curves(out_dir)
        if stop:
            logger.info("every val set reached mIoU %.1f: stopping after epoch %d",
                        cfg.stop_at_miou, epoch + 1)
            break
        if last:  # the final epoch, or max_steps / time_limit_s reached at an epoch end
            break
    best = state.best_score if math.isfinite(state.best_score) else None
    result = {"best_score": best, "best_epoch": state.best_epoch,
              "epochs": state.epoch, "global_step": state.global_step,
              "metrics": last_metrics, "out_dir": str(out_dir)}
    if info.is_main:
        export_inference(model, out_dir / "final.safetensors", cfg, state, last_metrics,
                         train_set)
        (out_dir / "metrics.json").write_text(json.dumps(result, indent=1, sort_keys=True))
    barrier()
    return result

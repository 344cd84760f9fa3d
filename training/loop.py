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
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from backend.errors import ConfigError
from backend.outputs import check_not_an_input
from training.checkpoints import (
    TrainState,
    export_inference,
    gather_rng,
    load_training_checkpoint,
    save_training_checkpoint,
    set_rng_state,
)
from training.clicks import click_round_outputs, mean_terms
from training.components import (
    build_train_set,
    build_training_model,
    build_val_sets,
    curriculum_types,
    epoch_loader,
    lr_factor,
    make_optimizer,
    resolve_train_device,
    start_due_stages,
)
from training.config import TrainConfig, config_to_yaml
from training.data.datasets import EvalSet, TrainSet
from training.dist import DistInfo, all_reduce_mean, barrier, cleanup, init_distributed
from training.evaluation import autocast_for, evaluate, val_score
from training.losses import ReferringLoss
from training.run_logs import TRAIN_LOG_FIELDS, VAL_LOG_FIELDS, CsvLog, plot_curves

logger = logging.getLogger(__name__)

LOGGED_TERMS = ("loss", "bce", "dice", "boundary", "text_weight")  # train_log.csv columns

__all__ = [  # the trainer's public names (cli, tests) stay importable from here
    "TrainState", "build_train_set", "build_training_model", "build_val_sets",
    "curriculum_types", "epoch_loader", "evaluate", "export_inference", "fit",
    "load_training_checkpoint", "lr_factor", "make_optimizer", "resolve_train_device",
    "start_due_stages", "train_one_epoch",
]


def train_one_epoch(ctx: _Run, epoch: int) -> None:
    """Run the optimiser steps of one epoch (resuming mid-epoch when the state says so)."""
    from tqdm import tqdm

    cfg, info, state = ctx.cfg, ctx.info, ctx.state
    per_step = cfg.batch_size * cfg.grad_accum_steps
    start = state.step_in_epoch if state.epoch == epoch else 0
    # every rank takes the same decision: the ranks' mean share of the time budget
    fraction = float(all_reduce_mean(torch.tensor([ctx.time_fraction()]))[0])
    if start == 0 and start_due_stages(cfg, state.curriculum_starts, epoch, fraction):
        logger.info("curriculum stage %d starts with epoch %d (%.0f %% of the time budget)",
                    len(state.curriculum_starts) - 1, epoch + 1, 100 * fraction)
    loader, steps = epoch_loader(ctx.train_set, cfg, info, epoch, skip_samples=start * per_step,
                                 started=state.curriculum_starts)
    ctx.model.train()
    it = iter(loader)
    window: list[torch.Tensor] = []
    t_window = time.perf_counter()
    bar = tqdm(total=steps, initial=start, desc=f"epoch {epoch + 1}/{cfg.epochs}",
               disable=not (info.is_main and cfg.progress), leave=False)
    for step in range(start, steps):
        factor = lr_factor(cfg, epoch, state.global_step, ctx.total_steps, ctx.time_fraction())
        for group in ctx.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        terms_sum = torch.zeros(len(LOGGED_TERMS))
        for micro in range(cfg.grad_accum_steps):
            batch = next(it)
            sync = not info.is_distributed or micro == cfg.grad_accum_steps - 1
            no_sync = ctx.ddp_model.no_sync() if not sync else contextlib.nullcontext()
            with no_sync:
                inputs = ctx.model.prepare_inputs(batch["image"], batch["text"])
                masks = batch["mask"].to(ctx.device)
                with autocast_for(ctx.device, cfg.precision):
                    outs = ctx.outputs(inputs, masks, micro)
                # the architecture says which of its outputs feed the loss's extra terms
                terms = mean_terms([ctx.criterion(o.logits, masks, **ctx.model.loss_inputs(o))
                                    for o in outs])
                ctx.scaler.scale(terms["loss"] / cfg.grad_accum_steps).backward()
            terms_sum += torch.stack([terms[k].detach().float() for k in LOGGED_TERMS]).cpu()
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
                    "samples": state.samples, **dict(zip(LOGGED_TERMS, mean, strict=True)),
                    "lr_base": lrs.get("base", ""),
                    "lr_new": lrs.get("new", ""), "samples_per_s": rate,
                    "elapsed_s": state.elapsed_s})
                bar.set_postfix(loss=f"{mean[0]:.4f}", sps=f"{rate:.2f}")
            window, t_window = [], time.perf_counter()
        ctx.export_sample_milestones(per_step * info.world_size)
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

    def outputs(self, inputs: Any, masks: torch.Tensor, micro: int) -> list[Any]:
        """The batch's outputs: text only, or with simulated clicks (``cfg.clicks.prob``).

        The click draw is seeded by (seed, optimiser step, micro-step), so a resumed run
        replays it.
        """
        clicks = self.cfg.clicks
        if clicks.prob > 0:
            rng = np.random.default_rng([self.cfg.seed, self.state.global_step, micro])
            if rng.random() < clicks.prob:
                return click_round_outputs(self.model, inputs, masks, clicks, rng)
        return [self.ddp_model(inputs)]

    def time_fraction(self) -> float:
        """Share of ``optim.schedule_time_s`` this process has run (0 when unset)."""
        budget = self.cfg.optim.schedule_time_s
        return (time.perf_counter() - self.t_start) / budget if budget > 0 else 0.0

    def export_sample_milestones(self, per_step: int) -> None:
        """Export ``samples_<N>.safetensors`` at the step where the samples seen reach N."""
        before = self.state.samples - per_step
        for n in self.cfg.save_at_samples:
            if before < n <= self.state.samples and self.info.is_main:
                export_inference(self.model, self.out_dir / f"samples_{n}.safetensors", self.cfg,
                                 self.state, {}, self.train_set)
                logger.info("exported samples_%d.safetensors at step %d (%d samples)", n,
                            self.state.global_step, self.state.samples)

    def limit_reached(self) -> bool:
        """True once ``max_steps`` or ``time_limit_s`` is reached."""
        c = self.cfg
        return bool((c.max_steps and self.state.global_step >= c.max_steps) or (
            c.time_limit_s and time.perf_counter() - self.t_start >= c.time_limit_s))

    def save_last(self) -> None:
        """Write ``last.pt`` (all ranks take part in gathering RNG states; rank 0 writes)."""
        rng = gather_rng(self.info)
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
    if cfg.clicks.prob > 0 and info.is_distributed:  # click rounds bypass the DDP wrapper
        raise ConfigError("clicks.prob > 0 trains in one process; run without torchrun or "
                          "set clicks.prob=0")
    if device.type == "cuda" and info.is_distributed:
        device = torch.device("cuda", info.local_rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out_dir = Path(cfg.out_dir)
    # never a data set folder (or a folder inside one): the run writes config.yaml, last.pt
    check_not_an_input(out_dir, [s.root for s in cfg.data.sets if s.root], option="out_dir")
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
        set_rng_state(rngs[info.rank] if info.rank < len(rngs) else rngs[0])
        logger.info("resumed from %s at epoch %d step %d", resume, state.epoch,
                    state.step_in_epoch)
    ddp_model: nn.Module = model
    if info.is_distributed:
        from torch.nn.parallel import DistributedDataParallel

        ddp_model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters)
    started0 = list(state.curriculum_starts)
    start_due_stages(cfg, started0, 0, 0.0)
    _, steps0 = epoch_loader(train_set, cfg, info, 0, started=started0)
    train_log = CsvLog(out_dir / "train_log.csv", TRAIN_LOG_FIELDS)
    val_log = CsvLog(out_dir / "val_log.csv", VAL_LOG_FIELDS)
    if info.is_main:
        g, e = state.global_step, state.epoch
        train_log.truncate(lambda r: int(r["global_step"]) <= g)
        val_log.truncate(lambda r: int(r["epoch"]) <= e)
    run = _Run(cfg, info, device, model, ddp_model, optimizer, scaler, ReferringLoss(cfg.loss),
               train_set, val_sets, state, out_dir, cfg.optim.total_steps or steps0 * cfg.epochs,
               train_log, val_log,
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
            score = val_score(last_metrics)
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

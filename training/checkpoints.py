"""Training checkpoints (``last.pt``: exact resume) and inference exports (``.safetensors``).

``last.pt`` holds the model, optimiser, grad scaler, every rank's RNG states (torch, CUDA,
numpy, python), the progress counters and the config; it is read with
``torch.load(weights_only=True)``, so no code is unpickled.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from backend.errors import CheckpointError
from training.config import TrainConfig, config_to_yaml
from training.data.datasets import TrainSet
from training.dist import DistInfo


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
    curriculum_starts: list[int] = field(default_factory=list)  # epochs of time-based stages


def rng_state() -> dict[str, Any]:
    """This process's RNG states (torch, CUDA, numpy, python) as tensors and plain types."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(s: dict[str, Any]) -> None:
    """Restore the RNG states written by :func:`rng_state`."""
    torch.set_rng_state(s["torch"])
    if s.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    name, keys, *rest = s["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    py = s["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def gather_rng(info: DistInfo) -> list[dict[str, Any]]:
    """Every rank's RNG states, in rank order (one entry without a process group)."""
    state = rng_state()
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
        "architecture": getattr(model.config, "architecture", "rs2sam2"),  # type: ignore[union-attr]
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
    import dataclasses

    from omegaconf import OmegaConf

    from backend.model.checkpoint import save_checkpoint

    counts = {s.tag: len(s.dataset) for s in (train_set.sources if train_set else [])}
    data = [{"tag": c.tag, "format": c.format, "root": c.root, "train_split": c.train_split,
             "val_split": c.val_split,
             "train_samples": counts.get(c.tag) if c.train_split else 0}
            for c in cfg.data.sets]
    target = model
    if cfg.export_fp16 or cfg.inference.gsd_m > 0:
        target = copy.deepcopy(model)
    if cfg.export_fp16:
        target = target.half()
    if cfg.inference.gsd_m > 0 and hasattr(target, "config"):
        target.config = dataclasses.replace(target.config, gsd_m=cfg.inference.gsd_m)
    meta = {
        "training": {"data": data, "epochs": state.epoch, "global_step": state.global_step,
                     "samples_seen": state.samples, "seed": cfg.seed,
                     "config": OmegaConf.to_container(OmegaConf.structured(cfg))},
        "metrics": metrics,
        "eval_mode": cfg.eval_mode,
        "inference": {"gsd_m": getattr(getattr(target, "config", None), "gsd_m", None),
                      "gsd_m_by_concept": dict(cfg.inference.gsd_m_by_concept)},
    }
    from training.baselines import is_baseline, save_baseline

    if is_baseline(cfg.model):
        return save_baseline(target, path, meta)
    return save_checkpoint(target, path, metadata=meta)

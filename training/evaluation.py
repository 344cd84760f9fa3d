"""Validation / evaluation pass: every rank scores a disjoint shard, sums are all-reduced."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from training.data.datasets import EvalSet, collate
from training.dist import DistInfo
from training.metrics import GroupedIoU, predictions


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of a config precision (``auto``: bf16 on CUDA, fp32 elsewhere)."""
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
        with autocast_for(device, precision):
            out = model(inputs)
        gts = batch["mask"] if cfg_mode == "paper" else batch["native_mask"]
        for (pred, gt), etype in zip(predictions(out.logits, list(gts), cfg_mode), batch["type"],
                                     strict=True):
            acc.update(pred.cpu(), gt.cpu(), [etype])
    acc.all_reduce()
    model.train(was_training)
    return acc.compute()


def val_score(metrics: dict[str, dict[str, dict[str, float]]]) -> float:
    """Model-selection score: ``mIoU + oIoU`` of ``all``, averaged over the val sets."""
    vals = [m["all"]["mIoU"] + m["all"]["oIoU"] for m in metrics.values()]
    return float(np.mean(vals)) if vals else -math.inf

"""The adaptation's training loop: AdamW for a wall-clock budget, with progress and cancel.

The samples, augmentations and loss are the trainer's own (``TrainSet``, ``ReferringLoss``
with the shipped default's loss recipe); the schedule is a short warm-up and a cosine decay
over the budget (or over ``max_steps`` when a test fixes the number of steps).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler

from backend.errors import Cancelled
from training.config import AugmentConfig
from training.data.datasets import TrainSet, collate
from training.losses import LossConfig, ReferringLoss

logger = logging.getLogger(__name__)

__all__ = ["ADAPT_AUGMENT", "ADAPT_LOSS", "LoopResult", "train_for_budget"]

ADAPT_AUGMENT = AugmentConfig(
    hflip=0.5, vflip=0.5, scale_crop=0.3, crop_scale=0.6, zoom=0.3, zoom_range=[0.7, 1.5],
    lowres=0.1, lowres_max=2.0, brightness=0.15, contrast=0.15, colour=0.6, gamma=0.3,
    saturation=0.3, hue_deg=10.0, channel_gain=0.1,
)
"""The shipped default's recipe (``training/configs/nano_default_ft.yaml``), hue narrower: the
user's own imagery is what the model must fit, its colours are not to be washed out."""

ADAPT_LOSS = LossConfig(
    bce_weight=0.9, class_weights=[0.9, 1.1], dice_weight=1.0, dice_classes="fg",
    boundary_weight=0.2, boundary_mode="soft", prompt_weight=1.0, text_weight_range=[0.5, 1.5],
)
"""The shipped default's loss (``nano_default_ft.yaml``)."""

WARMUP_STEPS = 3


@dataclass
class LoopResult:
    """What the loop did.

    Attributes:
        steps: Optimiser steps.
        samples: Samples seen.
        seconds: Training wall-clock time.
        first_loss, last_loss: Mean loss of the first and the last 10 steps.
    """

    steps: int
    samples: int
    seconds: float
    first_loss: float
    last_loss: float


def train_for_budget(
    model: nn.Module,
    params: list[nn.Parameter],
    train_set: TrainSet,
    *,
    budget_s: float,
    max_steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    on_step: Callable[[float], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> LoopResult:
    """Train ``params`` on ``train_set`` until the budget (or ``max_steps``) is spent.

    Args:
        model: The model (its other parameters are frozen by the caller).
        params: Parameters to train.
        train_set: Augmented pairs (``TrainSet``).
        budget_s: Seconds of training.
        max_steps: Stop after this many steps as well (0 = budget only); with it the
            schedule follows the steps, so the result does not depend on the machine's speed.
        batch_size: Samples per step.
        lr: Peak learning rate.
        seed: Shuffling seed (augmentation is seeded by ``train_set``).
        on_step: Called after every step with the share of the run done (0-1).
        is_cancelled: Polled before every step.

    Raises:
        Cancelled: ``is_cancelled()`` became true.
    """
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    criterion = ReferringLoss(ADAPT_LOSS)
    sampler = RandomSampler(train_set, replacement=True, num_samples=10**9,
                            generator=torch.Generator().manual_seed(seed))
    loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=0)
    model.train()
    start = time.perf_counter()
    losses: list[float] = []
    steps = 0
    for batch in loader:
        elapsed = time.perf_counter() - start
        done = steps / max_steps if max_steps else elapsed / budget_s
        if max_steps:
            done = max(done, elapsed / budget_s)
        if done >= 1.0 and steps > 0:
            break
        if is_cancelled is not None and is_cancelled():
            raise Cancelled("adaptation cancelled; no checkpoint was written")
        train_set.epoch = steps  # fresh augmentation draws every step (seeded)
        factor = 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
        factor *= min(1.0, (steps + 1) / WARMUP_STEPS)
        for group in optimizer.param_groups:
            group["lr"] = lr * max(factor, 0.02)
        inputs = model.prepare_inputs(batch["image"], batch["text"])  # type: ignore[operator]
        out = model(inputs)
        terms = criterion(out.logits, batch["mask"].to(device),
                          **model.loss_inputs(out))  # type: ignore[operator]
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(float(terms["loss"].detach()))
        steps += 1
        if on_step is not None:
            on_step(min(1.0, done))
    model.eval()
    seconds = time.perf_counter() - start
    first = sum(losses[:10]) / max(1, len(losses[:10]))
    last = sum(losses[-10:]) / max(1, len(losses[-10:]))
    logger.info("adaptation: %d steps, %d samples in %.0f s; loss %.3f -> %.3f", steps,
                steps * batch_size, seconds, first, last)
    return LoopResult(steps, steps * batch_size, seconds, first, last)

"""Real open_clip models for the tests that compare against it or need its weight files.

The backend never imports open_clip; only these tests do.
"""

from __future__ import annotations

import logging
from importlib import resources

import torch
from torch import nn


def open_clip_model(name: str, *, image_size: int, context_length: int, seed: int = 0) -> nn.Module:
    """Seeded random-init ``open_clip.create_model(name)`` (our JSONs registered), eval mode."""
    import open_clip

    open_clip.add_model_config(str(resources.files("backend.model") / "open_clip_configs"))
    logging.getLogger().setLevel(logging.ERROR)  # "No pretrained weights loaded": we know
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(
            name, pretrained=None, force_image_size=image_size, force_context_length=context_length
        )
    return model.eval()


def as_towers_state(clip: nn.Module) -> dict[str, torch.Tensor]:
    """An open_clip ``CLIP`` state dict in :class:`ClipTowers` keys (text under ``text.``)."""
    return {
        (k if k.startswith("visual.") else "text." + k): v
        for k, v in clip.state_dict().items()
        if k != "logit_scale"
    }

"""Our CLIP towers and BPE tokeniser, with open_clip's parameter names and token ids.

open_clip is used only as a data source: its model JSONs and BPE vocabulary are read from the
installed package folder, which is located without importing open_clip (whose import pulls in
torchvision, ``torch._dynamo`` and timm: seconds of a cold start).

Modules: ``spec`` (JSON -> :class:`ClipSpec`, refuses options we do not implement), ``blocks``
(pre-LN residual blocks), ``vision`` (:class:`ClipVisionTower`), ``text``
(:class:`ClipTextTower`), ``bpe`` (:class:`ClipBpe`).
"""

from __future__ import annotations

import torch
from torch import nn

from .bpe import ClipBpe
from .spec import ClipSpec, TextSpec, VisionSpec, clip_spec
from .text import ClipTextTower
from .vision import CLIP_MEAN, CLIP_STD, ClipVisionTower, resize_position_table

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ClipBpe",
    "ClipSpec",
    "ClipTextTower",
    "ClipTowers",
    "ClipVisionTower",
    "TextSpec",
    "VisionSpec",
    "clip_spec",
    "resize_position_table",
]


class ClipTowers(nn.Module):
    """Both CLIP towers: ``visual`` (:class:`ClipVisionTower`) and ``text``.

    Vision is built first, then text, as open_clip builds them, so a seeded build draws the same
    random numbers as ``open_clip.create_model`` (without its ``logit_scale``).

    Args:
        spec: The architecture.
        meta: Build on the meta device: no memory, no random draws (weights are loaded later).
    """

    def __init__(self, spec: ClipSpec, *, meta: bool = False) -> None:
        super().__init__()
        self.spec = spec
        if meta:
            from ..meta_init import params_on_meta

            with params_on_meta():
                self.visual = ClipVisionTower(spec.vision, meta=True)
                self.text = ClipTextTower(spec.text)
        else:
            self.visual = ClipVisionTower(spec.vision)
            self.text = ClipTextTower(spec.text)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(B, E)`` image and ``(B', E)`` text embeddings (unnormalised)."""
        return self.visual(images), self.text(tokens)[1]

"""The CLIP vision transformer (open_clip's ``VisionTransformer`` parameter layout).

Data flow (B = batch, R = input size, p = patch size, g = R / p, C = width, E = embed dim)::

    images (B,3,R,R) --conv1 (stride p)--> (B,C,g,g) --flatten--> (B,g*g,C)
        --[class_embedding; ...] + positional_embedding, ln_pre--> (B,1+g*g,C)   (embed)
        --transformer.resblocks--> --ln_post--> (B,1+g*g,C)                      (tokens)
        [:, 0] @ proj --> (B,E)                                                  (forward)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import BlockStack, LayerNorm
from .spec import VisionSpec

__all__ = ["CLIP_MEAN", "CLIP_STD", "ClipVisionTower", "resize_position_table"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
"""Per-channel RGB mean of OpenAI's CLIP preprocessing (open_clip's default)."""
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""Per-channel RGB standard deviation of OpenAI's CLIP preprocessing."""


def _scaled_normal(shape: tuple[int, ...], scale: float, meta: bool) -> nn.Parameter:
    if meta:
        return nn.Parameter(torch.empty(shape, device="meta"))
    return nn.Parameter(scale * torch.randn(shape))


class ClipVisionTower(nn.Module):
    """CLIP ViT with a class token, learned position table and a linear projection ``proj``.

    Args:
        spec: The architecture.
        meta: Create the randomly drawn tables on the meta device (no values, no RNG draws).

    Attributes:
        grid_size: ``(g, g)`` patches per side.
        output_dim: ``E``, width of the projected class token.
        image_mean / image_std: CLIP's RGB normalisation (for callers that preprocess).
    """

    def __init__(self, spec: VisionSpec, *, meta: bool = False) -> None:
        super().__init__()
        width, g = spec.width, spec.grid
        self.grid_size = (g, g)
        self.patch_size = (spec.patch_size, spec.patch_size)
        self.output_dim = spec.output_dim
        self.image_mean, self.image_std = CLIP_MEAN, CLIP_STD
        self.conv1 = nn.Conv2d(3, width, spec.patch_size, stride=spec.patch_size, bias=False)
        scale = width**-0.5
        self.class_embedding = _scaled_normal((width,), scale, meta)
        self.positional_embedding = _scaled_normal((g * g + 1, width), scale, meta)
        self.ln_pre: nn.Module = LayerNorm(width) if spec.ln_pre else nn.Identity()
        self.transformer = BlockStack(
            width, spec.layers, spec.heads, spec.mlp_ratio, spec.ls_init_value, spec.quick_gelu
        )
        self.ln_post = LayerNorm(width)
        self.proj: nn.Parameter | None = _scaled_normal((width, spec.output_dim), scale, meta)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch, class and position embeddings after ``ln_pre``.

        Args:
            images: ``(B, 3, R, R)`` CLIP-normalised.

        Returns:
            ``(B, 1 + g*g, C)``: the class token first, then the patches row by row.
        """
        x = self.conv1(images)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1).to(x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Every token after the last block and ``ln_post``: ``(B, 1 + g*g, C)``."""
        return self.ln_post(self.transformer(self.embed(images)))

    def project(self, cls: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` class features -> ``(B, E)`` CLIP image embedding (as is without ``proj``)."""
        return cls @ self.proj if self.proj is not None else cls

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """CLIP image embedding ``(B, E)`` (unnormalised), as open_clip's ``encode_image``."""
        return self.project(self.tokens(images)[:, 0])


def resize_position_table(table: torch.Tensor, grid: int) -> torch.Tensor:
    """Resample a ``(1 + n*n, C)`` ViT position table to ``(1 + grid*grid, C)``.

    The class row is kept; the ``n x n`` patch rows are resized bicubically with antialiasing
    (``align_corners=False``), as open_clip does when loading weights at another image size.
    """
    n = math.isqrt(table.shape[0] - 1)
    if n * n != table.shape[0] - 1:
        raise ValueError(f"position table of {table.shape[0]} rows is not 1 + a square")
    if n == grid:
        return table
    patches = table[1:].reshape(1, n, n, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(
        patches, size=(grid, grid), mode="bicubic", antialias=True, align_corners=False
    )
    patches = patches.permute(0, 2, 3, 1).reshape(grid * grid, -1)
    return torch.cat([table[:1], patches], dim=0)

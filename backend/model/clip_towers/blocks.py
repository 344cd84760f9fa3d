"""Transformer pieces shared by the CLIP towers, named as open_clip names them.

Parameter names (``ln_1``, ``attn.in_proj_weight``, ``mlp.c_fc``, ``ls_1.gamma`` ...) match
open_clip's ``ResidualAttentionBlock`` so its state dicts load key for key, and the modules are
created in the same order with the same initialisers, so a seeded build draws the same numbers.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BlockStack", "LayerNorm", "LayerScale", "QuickGELU", "ResidualBlock"]


class LayerNorm(nn.LayerNorm):
    """LayerNorm whose output has the input's dtype (also under autocast)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(..., C)``."""
        y = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return y.to(x.dtype)


class QuickGELU(nn.Module):
    """The sigmoid approximation of GELU used by OpenAI's CLIP weights: ``x * σ(1.702 x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise."""
        return x * torch.sigmoid(1.702 * x)


class LayerScale(nn.Module):
    """Per-channel learned scale ``gamma`` (shape ``(C,)``) on a residual branch."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(..., C)``."""
        return x * self.gamma


def _scale(dim: int, init_value: float | None) -> nn.Module:
    return nn.Identity() if init_value is None else LayerScale(dim, init_value)


class ResidualBlock(nn.Module):
    """Pre-LN block: ``x + ls_1(attn(ln_1(x)))``, then ``x + ls_2(mlp(ln_2(x)))``.

    Args:
        width: Token width ``C``.
        heads: Attention heads (``C`` divisible by it).
        mlp_ratio: Hidden width of the MLP over ``C``.
        ls_init_value: Initial layer scale, or None for no layer scale.
        quick_gelu: QuickGELU instead of ``nn.GELU`` in the MLP.
    """

    def __init__(
        self,
        width: int,
        heads: int,
        mlp_ratio: float,
        ls_init_value: float | None,
        quick_gelu: bool,
    ) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ls_1 = _scale(width, ls_init_value)
        self.ln_2 = LayerNorm(width)
        hidden = int(width * mlp_ratio)
        act: nn.Module = QuickGELU() if quick_gelu else nn.GELU()
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, hidden)),
                    ("gelu", act),
                    ("c_proj", nn.Linear(hidden, width)),
                ]
            )
        )
        self.ls_2 = _scale(width, ls_init_value)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run the block.

        Args:
            x: ``(B, S, C)`` tokens.
            attn_mask: Additive float mask, ``(S, S)`` or ``(B * heads, S, S)``; None for none.

        Returns:
            ``(B, S, C)``.
        """
        y = self.ln_1(x)
        mask = attn_mask.to(y.dtype) if attn_mask is not None else None
        x = x + self.ls_1(self.attn(y, y, y, need_weights=False, attn_mask=mask)[0])
        return x + self.ls_2(self.mlp(self.ln_2(x)))


class BlockStack(nn.Module):
    """``layers`` :class:`ResidualBlock` s in ``resblocks`` (open_clip's ``Transformer``)."""

    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        mlp_ratio: float,
        ls_init_value: float | None,
        quick_gelu: bool,
    ) -> None:
        super().__init__()
        self.width = width
        self.layers = layers
        self.resblocks = nn.ModuleList(
            ResidualBlock(width, heads, mlp_ratio, ls_init_value, quick_gelu) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``(B, S, C)`` through every block (same mask for each)."""
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x

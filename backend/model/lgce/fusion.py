"""Vision-language fusion of LGCE: pixel-word attention, language gates, cross-scale enhancement.

Shapes (B = batch, N = H·W pixels of a stage, L = text tokens, C = stage width, D = text width):

* :class:`PixelWordAttention` (LAVT's PWAM): every pixel attends over the words; the result
  multiplies the projected pixel and is projected again: ``(B, N, C) -> (B, N, C)``.
* :class:`LanguageGate`: a per-element tanh gate deciding how much of the multimodal residual
  flows back into the Swin stream: ``x + gate(r) * r``.
* :class:`CrossScaleEnhancement` (the LGCE module): the shallowest multimodal map ``(B, C1, H1,
  W1)`` queries the deepest ``(B, C4, H4, W4)``, both modulated channel-wise by the sentence,
  and the gated result is added to the shallow map, so small, scattered targets at stage 1
  borrow the deep stage's (language-aware) semantics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossScaleEnhancement", "LanguageGate", "PixelWordAttention", "masked_mean"]


def masked_mean(words: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Mean of ``words`` ``(B, L, D)`` over the unpadded tokens -> ``(B, D)``."""
    keep = (~pad).to(words.dtype)[..., None]
    return (words * keep).sum(1) / keep.sum(1).clamp_min(1.0)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def _key_bias(pad: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(pad.shape, dtype=dtype, device=pad.device).masked_fill(
        pad, -1e4 if dtype != torch.float32 else -1e9
    )[:, None, None, :]


class PixelWordAttention(nn.Module):
    """PWAM: pixel-word attention, element-wise multimodal product, output projection.

    Args:
        dim: Visual width ``C`` of the stage.
        text_dim: Word feature width ``D``.
        heads: Attention heads.
        dropout: Dropout on the projections (LAVT: ``fusion_drop``, 0).
    """

    def __init__(self, dim: int, text_dim: int, heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.vis_proj = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout))
        self.query = nn.Linear(dim, dim)
        self.query_norm = nn.InstanceNorm1d(dim, affine=True)
        self.key = nn.Linear(text_dim, dim)
        self.value = nn.Linear(text_dim, dim)
        self.attn_out = nn.Linear(dim, dim)
        self.attn_norm = nn.InstanceNorm1d(dim, affine=True)
        self.mm_proj = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor, words: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, N, C)``, ``words`` ``(B, L, D)``, ``pad`` ``(B, L)`` -> ``(B, N, C)``."""
        keep = (~pad).to(x.dtype)[..., None]
        q = self.query_norm(self.query(x).transpose(1, 2)).transpose(1, 2)
        k = self.key(words) * keep
        v = self.value(words) * keep
        h = self.heads
        a = F.scaled_dot_product_attention(
            _heads(q, h), _heads(k, h), _heads(v, h), attn_mask=_key_bias(pad, q.dtype)
        )
        a = a.transpose(1, 2).reshape(x.shape)
        lang = self.attn_norm(self.attn_out(a).transpose(1, 2)).transpose(1, 2)
        return self.mm_proj(self.vis_proj(x) * lang)


class LanguageGate(nn.Module):
    """``tanh(W2 relu(W1 r))``: element-wise weight of the multimodal residual ``r``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim, bias=False), nn.ReLU(), nn.Linear(dim, dim, bias=False), nn.Tanh()
        )

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``x + gate(residual) * residual`` (any shape with the width last)."""
        return x + self.net(residual) * residual


class CrossScaleEnhancement(nn.Module):
    """The LGCE module: language-guided enhancement of shallow features by deep ones.

    Args:
        shallow_dim: Width ``C1`` of the stage-1 multimodal features.
        deep_dim: Width ``C4`` of the stage-4 multimodal features.
        text_dim: Word feature width ``D``.
        dim: Attention width.
        heads: Attention heads.
    """

    def __init__(
        self, shallow_dim: int, deep_dim: int, text_dim: int, dim: int, heads: int
    ) -> None:
        super().__init__()
        self.heads = heads
        self.sentence = nn.Sequential(nn.Linear(text_dim, dim), nn.ReLU())
        self.query_gate = nn.Linear(dim, dim)
        self.key_gate = nn.Linear(dim, dim)
        self.query = nn.Sequential(nn.Conv2d(shallow_dim, dim, 1), nn.GroupNorm(1, dim))
        self.key = nn.Sequential(nn.Conv2d(deep_dim, dim, 1), nn.GroupNorm(1, dim))
        self.value = nn.Conv2d(deep_dim, dim, 1)
        self.out = nn.Sequential(
            nn.Conv2d(dim + shallow_dim, shallow_dim, 3, padding=1, bias=False),
            nn.GroupNorm(1, shallow_dim),
            nn.GELU(),
        )
        self.gate = LanguageGate(shallow_dim)

    def forward(
        self, shallow: torch.Tensor, deep: torch.Tensor, words: torch.Tensor, pad: torch.Tensor
    ) -> torch.Tensor:
        """Enhanced shallow features.

        Args:
            shallow: ``(B, C1, H1, W1)``.
            deep: ``(B, C4, H4, W4)``.
            words: ``(B, L, D)``.
            pad: ``(B, L)`` bool.

        Returns:
            ``(B, C1, H1, W1)``.
        """
        b, _, h1, w1 = shallow.shape
        s = self.sentence(masked_mean(words, pad))  # (B, dim)
        q = self.query(shallow) * torch.sigmoid(self.query_gate(s))[:, :, None, None]
        k = self.key(deep) * torch.sigmoid(self.key_gate(s))[:, :, None, None]
        v = self.value(deep)
        q, k, v = (t.flatten(2).transpose(1, 2) for t in (q, k, v))  # (B, n, dim)
        a = F.scaled_dot_product_attention(
            _heads(q, self.heads), _heads(k, self.heads), _heads(v, self.heads)
        )
        a = a.transpose(1, 2).reshape(b, h1 * w1, -1).transpose(1, 2).reshape(b, -1, h1, w1)
        residual = self.out(torch.cat([a, shallow], dim=1))
        out = self.gate(shallow.permute(0, 2, 3, 1), residual.permute(0, 2, 3, 1))
        return out.permute(0, 3, 1, 2)

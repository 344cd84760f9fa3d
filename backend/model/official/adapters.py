"""The published Hiera adapters (model_spec §1.5), under the published module names.

Each Hiera block holds ``MLP_Adapter`` (``D_fc1`` → GELU → ``D_fc2``, no skip) and
``Space_Adapter``, a cross adapter whose forward is, with ``a`` the block's attention output
``(B, H, W, dim)`` and ``T`` the running text state ``(B, L, C)``:

1. ``u = GELU(D_fc1(a))`` as ``(HW, B, h)``; ``t = text_in_linear(T)`` as ``(L, B, h)``;
2. ``u = u + MHA_vl(q=u, k=t, v=t)`` (``vlfusion_module``, 4 heads);
3. ``t = t + MHA_lv(q=t, k=u, v=u)`` (``lvfusion_module``, with the updated ``u``);
4. ``T ← (1-α)·T + α·text_out_linear(t)`` with α = 0.2 (every block, the last one too);
5. ``a + D_fc2(u)``.

No attention is masked (the published code passes no padding mask). The attentions are
sequence-first ``nn.MultiheadAttention`` modules held as ``<name>.multihead_attn``, as published.
The block skeleton (window attention, q-pooling, residuals, ``0.5·MLP_Adapter``) is
:class:`~backend.model.bhfm.HieraAdapterBlock`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..bhfm import HieraAdapterBlock, TextState

__all__ = ["FusionAttention", "OfficialMLPAdapter", "OfficialSpaceAdapter", "add_official_adapters"]


class FusionAttention(nn.Module):
    """``tgt + MHA(tgt, memory, memory)``, sequence-first (the published additive fusion).

    Args:
        dim: Width.
        heads: Attention heads.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, heads)

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """``tgt`` ``(Lq, B, dim)``, ``memory`` ``(Lk, B, dim)`` -> ``(Lq, B, dim)``."""
        return tgt + self.multihead_attn(tgt, memory, memory, need_weights=False)[0]


class OfficialMLPAdapter(nn.Module):
    """``D_fc2(GELU(D_fc1(x)))`` (published ``Adapter`` with ``skip_connect=False``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.D_fc1 = nn.Linear(dim, hidden)
        self.D_fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` -> ``(..., dim)``."""
        return self.D_fc2(F.gelu(self.D_fc1(x)))


class OfficialSpaceAdapter(nn.Module):
    """The published bidirectional text↔vision cross adapter (``Adapter_cross``).

    Args:
        dim: Block output width.
        hidden: Adapter width (``int(dim / 4)`` as published).
        text_dim: Width of the text state (the SAM 2 prompt width, 256).
        heads: Heads of both cross-attentions (4 as published).
        alpha: Text-state update rate (0.2 as published).
    """

    def __init__(self, dim: int, hidden: int, text_dim: int, heads: int, alpha: float) -> None:
        super().__init__()
        self.D_fc1 = nn.Linear(dim, hidden)
        self.D_fc2 = nn.Linear(hidden, dim)
        self.vlfusion_module = FusionAttention(hidden, heads)
        self.lvfusion_module = FusionAttention(hidden, heads)
        self.text_in_linear = nn.Linear(text_dim, hidden)
        self.text_out_linear = nn.Linear(hidden, text_dim)
        self.alpha = alpha

    def forward(self, a: torch.Tensor, state: TextState) -> torch.Tensor:
        """Adapt ``a`` ``(B, H, W, dim)`` and update ``state.text`` ``(B, L, C)``."""
        text = state.text
        if text is None:
            return a
        b, h, w, _ = a.shape
        u = F.gelu(self.D_fc1(a)).reshape(b, h * w, -1).transpose(0, 1)  # (HW, B, h)
        t = self.text_in_linear(text.transpose(0, 1))  # (L, B, h)
        u = self.vlfusion_module(u, t)
        t = self.lvfusion_module(t, u)
        out = self.text_out_linear(t).transpose(0, 1)  # (B, L, C)
        state.text = (1.0 - self.alpha) * text + self.alpha * out
        return a + self.D_fc2(u.transpose(0, 1).reshape(b, h, w, -1))


def add_official_adapters(
    trunk: nn.Module,
    state: TextState,
    *,
    text_dim: int,
    ratio: float,
    heads: int,
    alpha: float,
    mlp_scale: float,
) -> None:
    """Replace every block of a sam2 ``Hiera`` trunk by one with the published adapters."""
    for i, block in enumerate(trunk.blocks):
        if isinstance(block, HieraAdapterBlock):
            continue
        hidden = int(block.dim_out * ratio)
        space = OfficialSpaceAdapter(block.dim_out, hidden, text_dim, heads, alpha)
        mlp = OfficialMLPAdapter(block.dim_out, hidden)
        trunk.blocks[i] = HieraAdapterBlock(block, state, space, mlp, mlp_scale=mlp_scale)

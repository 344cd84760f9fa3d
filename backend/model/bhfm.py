"""Bidirectional hierarchical fusion module (BHFM, model_spec §1.5 and §1.7), on unforked sam2.

Two parts:

* In-encoder: :class:`AdaptedBlock` replaces each sam2 Hiera ``MultiScaleBlock``. It keeps
  the block's own sub-modules under their original names (so official SAM 2 weights load
  key-for-key), repeats the block's forward steps, and adds a :class:`SpaceAdapter`
  (vision←text then text←vision cross-attention, hidden = dim/4, 4 heads, running text state
  ``T ← (1-α)·T + α·out``) after the attention and ``0.5·MLPAdapter`` next to the MLP.
  The text state lives in one :class:`TextState` shared by all blocks; the model sets it
  before running the trunk and clears it afterwards.
* Post-encoder: :class:`TextFusion`, the multiplicative text cross-attention on the 1/16 image
  embedding before the (unmodified) SAM 2 mask decoder.

Unlike the reference code, every attention whose keys are text tokens gets the text padding
mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sam2.modeling.backbones.hieradet import do_pool
from sam2.modeling.backbones.utils import window_partition, window_unpartition
from torch import nn

__all__ = [
    "AdaptedBlock",
    "HieraAdapterBlock",
    "MLPAdapter",
    "SpaceAdapter",
    "TextFusion",
    "TextState",
    "add_adapters",
]


def padding_bias(
    pad: torch.Tensor | None, heads: int, queries: int, dtype: torch.dtype
) -> torch.Tensor | None:
    """A key padding mask as the additive ``attn_mask`` of ``nn.MultiheadAttention``.

    The attention is the same as with ``key_padding_mask=pad``, but torch's MHA checks a
    ``key_padding_mask`` with ``torch._check_with``, whose first call imports
    ``torch.fx.experimental.symbolic_shapes`` and sympy (about 0.5 s of a cold start).

    Args:
        pad: ``(B, L)`` bool, True at padding; None for no mask.
        heads: Attention heads.
        queries: Query tokens ``Q``.
        dtype: The queries' dtype.

    Returns:
        ``(B * heads, Q, L)``: 0 or -inf, a broadcast view (stride 0 over ``Q``); or None.
    """
    if pad is None:
        return None
    bias = torch.zeros(pad.shape[0], 1, pad.shape[1], dtype=dtype, device=pad.device)
    bias = bias.masked_fill_(pad[:, None, :], float("-inf")).repeat_interleave(heads, dim=0)
    return bias.expand(-1, queries, -1)


class TextState:
    """Running text state shared by the adapted Hiera blocks of one model.

    Attributes:
        text: ``(B, L, C)`` float32 text features, or None outside a forward pass (then the
            blocks skip their Space adapters).
        pad: ``(B, L)`` bool, True at padding positions.
    """

    def __init__(self) -> None:
        self.text: torch.Tensor | None = None
        self.pad: torch.Tensor | None = None

    def set(self, text: torch.Tensor, pad: torch.Tensor | None) -> None:
        """Start a forward pass with ``text`` ``(B, L, C)`` and ``pad`` ``(B, L)`` (or None)."""
        self.text = text.float()
        self.pad = pad

    def clear(self) -> None:
        """Drop the state (and its autograd graph) after a forward pass."""
        self.text = None
        self.pad = None


class MLPAdapter(nn.Module):
    """AdaptFormer-style bottleneck ``Linear(dim, h) → GELU → Linear(h, dim)``, no skip.

    The up-projection starts at zero, so an adapted pretrained block starts as the original.
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., dim)`` -> ``(..., dim)``."""
        return self.fc2(F.gelu(self.fc1(x)))


class SpaceAdapter(nn.Module):
    """Bidirectional text↔vision cross adapter of one Hiera block (model_spec §1.5 step 2).

    Args:
        dim: Block output width.
        hidden: Adapter width ``h`` (dim/4 in the paper).
        text_dim: Width ``C`` of the text state (the SAM 2 prompt width, 256 for real models).
        heads: Heads of both cross-attentions (``hidden`` must be divisible by it).
        alpha: Text-state update rate.
        update_text: Whether to compute the text←vision update. False in the last block:
            the reference code throws the final text state away, so those weights would
            never get a gradient (and would be "unused parameters" under DDP).
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        text_dim: int,
        heads: int,
        alpha: float,
        *,
        update_text: bool = True,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.text_in = nn.Linear(text_dim, hidden)
        self.vision_from_text = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.update_text = update_text
        if update_text:
            self.text_from_vision = nn.MultiheadAttention(hidden, heads, batch_first=True)
            self.text_out = nn.Linear(hidden, text_dim)
        self.alpha = alpha
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, a: torch.Tensor, state: TextState) -> torch.Tensor:
        """Adapt the attention output ``a`` ``(B, H, W, dim)`` and update ``state.text``."""
        text, pad = state.text, state.pad
        if text is None:
            return a
        b, h, w, _ = a.shape
        u = F.gelu(self.fc1(a)).reshape(b, h * w, -1)  # (B, HW, h)
        t = self.text_in(text.to(u.dtype))  # (B, L, h)
        mask = padding_bias(pad, self.vision_from_text.num_heads, u.shape[1], u.dtype)
        u = u + self.vision_from_text(u, t, t, attn_mask=mask, need_weights=False)[0]
        if self.update_text:
            t = t + self.text_from_vision(t, u, u, need_weights=False)[0]  # keys are visual
            state.text = (1.0 - self.alpha) * text + self.alpha * self.text_out(t).float()
        return a + self.fc2(u).reshape(b, h, w, -1)


class HieraAdapterBlock(nn.Module):
    """A sam2 ``MultiScaleBlock`` plus two adapters; same sub-module names as the original.

    Forward (model_spec §1.5): ``s = shortcut(x)``; ``a = WindowAttn(norm1(x))`` (with q-pool
    at a stage change); ``a = Space_Adapter(a, state)``; ``x = s + a``;
    ``x = x + MLP(norm2(x)) + mlp_scale·MLP_Adapter(norm2(x))``. The adapters are given by the
    subclass (ours: :class:`AdaptedBlock`; the published layout: ``backend.model.official``).

    Args:
        block: The sam2 block whose sub-modules are taken over.
        state: The running text state shared by all blocks of the trunk.
        space_adapter: ``module(a (B, H, W, dim_out), state) -> (B, H, W, dim_out)``.
        mlp_adapter: ``module(y (B, H, W, dim_out)) -> (B, H, W, dim_out)``.
        mlp_scale: Scale of the MLP adapter output.
    """

    def __init__(
        self,
        block: nn.Module,
        state: TextState,
        space_adapter: nn.Module,
        mlp_adapter: nn.Module,
        *,
        mlp_scale: float = 0.5,
    ) -> None:
        super().__init__()
        # the original sub-modules, registered under their own names
        self.dim = block.dim
        self.dim_out = block.dim_out
        self.norm1 = block.norm1
        self.window_size = block.window_size
        self.pool, self.q_stride = block.pool, block.q_stride
        self.attn = block.attn
        self.drop_path = block.drop_path
        self.norm2 = block.norm2
        self.mlp = block.mlp
        if self.dim != self.dim_out:
            self.proj = block.proj
        self.Space_Adapter = space_adapter
        self.MLP_Adapter = mlp_adapter
        self.mlp_scale = mlp_scale
        self._state = state  # plain attribute: shared, not a sub-module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, dim)`` -> ``(B, H', W', dim_out)`` (halved at a q-pool block)."""
        shortcut = x
        x = self.norm1(x)
        if self.dim != self.dim_out:
            shortcut = do_pool(self.proj(x), self.pool)

        window_size = self.window_size
        if window_size > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, window_size)

        x = self.attn(x)
        if self.q_stride:
            window_size = self.window_size // self.q_stride[0]
            H, W = shortcut.shape[1:3]
            pad_h = (window_size - H % window_size) % window_size
            pad_w = (window_size - W % window_size) % window_size
            pad_hw = (H + pad_h, W + pad_w)

        if self.window_size > 0:
            x = window_unpartition(x, window_size, pad_hw, (H, W))

        x = self.Space_Adapter(x, self._state)
        x = shortcut + self.drop_path(x)
        y = self.norm2(x)
        return x + self.drop_path(self.mlp(y)) + self.mlp_scale * self.MLP_Adapter(y)


class AdaptedBlock(HieraAdapterBlock):
    """A sam2 ``MultiScaleBlock`` with our BHFM adapters (``SpaceAdapter``, ``MLPAdapter``).

    With zero adapters (their initial state) and no text state, the output equals the original
    block's exactly.
    """

    def __init__(
        self,
        block: nn.Module,
        state: TextState,
        *,
        text_dim: int,
        ratio: float = 0.25,
        heads: int = 4,
        alpha: float = 0.2,
        mlp_scale: float = 0.5,
        update_text: bool = True,
    ) -> None:
        dim_out = block.dim_out
        hidden = max(heads, int(dim_out * ratio) // heads * heads)
        space = SpaceAdapter(dim_out, hidden, text_dim, heads, alpha, update_text=update_text)
        mlp = MLPAdapter(dim_out, hidden)
        super().__init__(block, state, space, mlp, mlp_scale=mlp_scale)


def add_adapters(
    trunk: nn.Module,
    state: TextState,
    *,
    text_dim: int,
    ratio: float = 0.25,
    heads: int = 4,
    alpha: float = 0.2,
    mlp_scale: float = 0.5,
) -> None:
    """Replace every block of a sam2 ``Hiera`` trunk by an :class:`AdaptedBlock` (in place).

    The last block does not update the text state (nothing reads it afterwards).
    """
    last = len(trunk.blocks) - 1
    for i, block in enumerate(trunk.blocks):
        if isinstance(block, AdaptedBlock):
            continue
        trunk.blocks[i] = AdaptedBlock(
            block,
            state,
            text_dim=text_dim,
            ratio=ratio,
            heads=heads,
            alpha=alpha,
            mlp_scale=mlp_scale,
            update_text=i != last,
        )


class TextFusion(nn.Module):
    """Multiplicative text cross-attention on the image embedding (model_spec §1.7).

    ``image_embed ← image_embed ⊙ MHA(q = image_embed + dense PE, k = v = text)``, with the
    text padding mask.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(
        self,
        image_embed: torch.Tensor,
        image_pe: torch.Tensor,
        text: torch.Tensor,
        pad: torch.Tensor | None,
    ) -> torch.Tensor:
        """Fuse text into the image embedding.

        Args:
            image_embed: ``(B, C, h, w)`` 1/16 image embedding.
            image_pe: ``(1, C, h, w)`` dense positional encoding.
            text: ``(B, L, C)`` projected text features.
            pad: ``(B, L)`` bool, True at padding; None attends to every text token (the
                published model's behaviour).

        Returns:
            ``(B, C, h, w)``.
        """
        b, c, h, w = image_embed.shape
        q = (image_embed + image_pe).flatten(2).transpose(1, 2)  # (B, hw, C)
        mask = padding_bias(pad, self.attn.num_heads, q.shape[1], q.dtype)
        kv = text.to(q.dtype)
        out = self.attn(q, kv, kv, attn_mask=mask, need_weights=False)[0]
        return image_embed * out.transpose(1, 2).reshape(b, c, h, w)

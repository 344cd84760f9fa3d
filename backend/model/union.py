"""Union encoder on CLIP towers: image + text -> multimodal class token, visual and text tokens.

Both designs of model_spec §9 share one interface (§9.1)::

    union(img_small, tokens, pad)
        -> UnionOutput(cls (B,1,d), vis (B,g,g,d), txt (B,L,d), txt_pad (B,L))

* :class:`TwoTowerUnion` (design A, ``union_encoder="twotower"``): the CLIP vision and text
  towers run separately; ``K`` joint pre-LN transformer layers then attend over
  ``[class token; visual tokens; text tokens]``, starting from CLIP's aligned global pair.
* :class:`EarlyFusionUnion` (design B, ``"earlyfusion"``): the projected text tokens join the
  last ``k`` blocks of the CLIP vision transformer, so the vision CLS token attends to image and
  text (BEiT-3 / EVF-SAM style).

Text padding (positions after EOT) is a key padding mask in every attention whose keys include
text tokens. The CLIP text tower is causal, so pads never reach the real tokens.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
from torch import nn

from ..errors import ConfigError
from .clip_towers import ClipBpe, ClipSpec, ClipTextTower, ClipTowers, clip_spec
from .configs import ModelConfig

logger = logging.getLogger(__name__)

__all__ = [
    "ClipTextTower",
    "EarlyFusionUnion",
    "JointLayer",
    "TwoTowerUnion",
    "UnionEncoder",
    "UnionOutput",
    "build_clip",
    "build_union_encoder",
    "get_tokenizer",
]


def build_clip(config: ModelConfig, *, device: str | torch.device = "cpu") -> ClipTowers:
    """CLIP towers of ``config.clip_model`` at ``config.clip_image_size`` (our modules).

    Parameter names equal open_clip's (``visual.*``; the text tower's without the CLIP prefix,
    under ``text.*``). On ``device="meta"`` nothing is allocated or drawn; otherwise the random
    init equals ``open_clip.create_model``'s for the same seed.

    Raises:
        ConfigError: Unknown model name or a CLIP option our towers do not implement.
    """
    meta = torch.device(device).type == "meta"
    towers = ClipTowers(_check_clip_model(config), meta=meta)
    return towers if meta else towers.to(device)


def get_tokenizer(config: ModelConfig) -> ClipBpe:
    """CLIP BPE tokeniser (open_clip's ids) returning ``(N, context_length)`` int64."""
    _check_clip_model(config)
    return ClipBpe(config.context_length)


def _check_clip_model(config: ModelConfig) -> ClipSpec:
    """The towers of ``config.clip_model``: a local JSON with open_clip's own text tower.

    A config comes from an untrusted checkpoint header: Hugging Face text towers and tokenisers
    would load files by a name the checkpoint chose, so they are refused, as is every option
    our towers do not implement.

    Raises:
        ConfigError: Unknown model name, a Hugging Face text side, an unsupported option.
    """
    try:
        return clip_spec(
            config.clip_model,
            image_size=config.clip_image_size,
            context_length=config.context_length,
        )
    except ConfigError as err:
        raise ConfigError(f"{config.name}: {err}") from err


class UnionOutput(NamedTuple):
    """Output of a union encoder.

    Attributes:
        cls: ``(B, 1, d)`` multimodal class token.
        vis: ``(B, g, g, d)`` visual tokens on the CLIP patch grid.
        txt: ``(B, L, d)`` text tokens (pad positions hold junk; mask them with ``txt_pad``).
        txt_pad: ``(B, L)`` bool, True at padding positions.
    """

    cls: torch.Tensor
    vis: torch.Tensor
    txt: torch.Tensor
    txt_pad: torch.Tensor


class JointLayer(nn.Module):
    """Pre-LN transformer layer (self-attention + GELU MLP) with a key padding mask."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        """``x``: ``(B, S, dim)``; ``key_padding_mask``: ``(B, S)`` bool, True = ignore."""
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, key_padding_mask=key_padding_mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class UnionEncoder(nn.Module):
    """Common base: holds the CLIP vision tower (``visual``) and text tower (``text``)."""

    dim: int
    grid: int

    def __init__(self, clip: ClipTowers) -> None:
        super().__init__()
        self.visual = clip.visual
        self.text: ClipTextTower = clip.text
        grid = tuple(self.visual.grid_size)
        if grid[0] != grid[1]:
            raise ConfigError(f"the CLIP patch grid must be square, got {grid}")
        self.grid = int(grid[0])
        self.vision_width = int(self.visual.conv1.out_channels)

    def tower_parameters(self) -> list[nn.Parameter]:
        """Parameters of the CLIP towers (frozen by ``freeze_clip``)."""
        return [*self.visual.parameters(), *self.text.parameters()]

    def forward(
        self, img_small: torch.Tensor, tokens: torch.Tensor, pad: torch.Tensor
    ) -> UnionOutput:
        """Encode an image and a caption jointly.

        Args:
            img_small: ``(B, 3, R, R)`` float32, CLIP-normalised, ``R = clip_image_size``.
            tokens: ``(B, L)`` int64 token ids.
            pad: ``(B, L)`` bool, True at positions after EOT.
        """
        raise NotImplementedError


class TwoTowerUnion(UnionEncoder):
    """Design A (model_spec §9.3): two CLIP towers + K joint fusion layers of width d."""

    def __init__(self, clip: ClipTowers, *, dim: int, layers: int, heads: int) -> None:
        super().__init__(clip)
        self.dim = dim
        text_width = self.text.width
        embed_dim = int(self.visual.output_dim)  # CLIP's joint embedding width E
        self.vis_in = nn.Sequential(nn.Linear(self.vision_width, dim), nn.LayerNorm(dim))
        self.txt_in = nn.Sequential(nn.Linear(text_width, dim), nn.LayerNorm(dim))
        self.cls_from_image = nn.Linear(embed_dim, dim)
        self.cls_from_text = nn.Linear(embed_dim, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.type_embed = nn.Parameter(torch.zeros(3, dim))  # class, vision, text
        nn.init.trunc_normal_(self.type_embed, std=0.02)
        self.layers = nn.ModuleList(JointLayer(dim, heads) for _ in range(layers))
        self.ln_out = nn.LayerNorm(dim)

    def forward(
        self, img_small: torch.Tensor, tokens: torch.Tensor, pad: torch.Tensor
    ) -> UnionOutput:
        """See :meth:`UnionEncoder.forward`."""
        vis_tokens = self.visual.tokens(img_small)  # (B, 1+g*g, W_v) after ln_post
        patches = vis_tokens[:, 1:]  # (B, g*g, W_v)
        v_cls = self.visual.project(vis_tokens[:, 0])  # CLIP image embedding (B, E)
        txt_tokens, t_eot = self.text(tokens)

        batch = img_small.shape[0]
        cls = (self.cls_from_image(v_cls) + self.cls_from_text(t_eot)).unsqueeze(1) + self.cls_token
        x = torch.cat(
            [
                cls + self.type_embed[0],
                self.vis_in(patches) + self.type_embed[1],
                self.txt_in(txt_tokens) + self.type_embed[2],
            ],
            dim=1,
        )
        n_vis = patches.shape[1]
        key_pad = torch.cat([pad.new_zeros(batch, 1 + n_vis), pad], dim=1)
        for layer in self.layers:
            x = layer(x, key_pad)
        x = self.ln_out(x)
        vis = x[:, 1 : 1 + n_vis].reshape(batch, self.grid, self.grid, self.dim)
        return UnionOutput(x[:, :1], vis, x[:, 1 + n_vis :], pad)


class EarlyFusionUnion(UnionEncoder):
    """Design B (model_spec §9.4): text tokens join the last ``blocks`` CLIP ViT blocks."""

    def __init__(self, clip: ClipTowers, *, blocks: int) -> None:
        super().__init__(clip)
        resblocks = self.visual.transformer.resblocks
        if not 1 <= blocks <= len(resblocks):
            raise ConfigError(
                f"early_fusion_blocks must be in [1, {len(resblocks)}] for this ViT, got {blocks}"
            )
        self.fusion_start = len(resblocks) - blocks
        self.dim = self.vision_width
        self.text_to_vision = nn.Linear(self.text.width, self.dim)
        self.text_type = nn.Parameter(torch.zeros(self.dim))
        # the CLIP projections are not used by this design (no unused parameters under DDP)
        self.visual.proj = None
        self.text.text_projection = None

    def fused_parameters(self) -> list[nn.Parameter]:
        """ViT blocks that see text, plus ``ln_post``: trained even when the towers are frozen."""
        blocks = self.visual.transformer.resblocks[self.fusion_start :]
        return [*blocks.parameters(), *self.visual.ln_post.parameters()]

    def forward(
        self, img_small: torch.Tensor, tokens: torch.Tensor, pad: torch.Tensor
    ) -> UnionOutput:
        """See :meth:`UnionEncoder.forward`."""
        batch = img_small.shape[0]
        txt_tokens, _ = self.text(tokens)
        x = self.visual.embed(img_small)  # (B, 1+g*g, W_v): class token, patches (+ ln_pre)
        n_img = x.shape[1]
        resblocks = self.visual.transformer.resblocks
        for block in resblocks[: self.fusion_start]:
            x = block(x)
        t = self.text_to_vision(txt_tokens) + self.text_type
        x = torch.cat([x, t.to(x.dtype)], dim=1)
        key_pad = torch.cat([pad.new_zeros(batch, n_img), pad], dim=1)  # (B, S)
        seq = x.shape[1]
        heads = resblocks[self.fusion_start].attn.num_heads
        mask = torch.zeros(batch, 1, seq, device=x.device, dtype=x.dtype)
        mask = mask.masked_fill(key_pad[:, None, :], float("-inf")).expand(-1, seq, -1)
        mask = mask.repeat_interleave(heads, dim=0)  # (B*heads, S, S), additive
        for block in resblocks[self.fusion_start :]:
            x = block(x, attn_mask=mask)
        x = self.visual.ln_post(x)
        vis = x[:, 1:n_img].reshape(batch, self.grid, self.grid, self.dim)
        return UnionOutput(x[:, :1], vis, x[:, n_img:], pad)


def build_union_encoder(config: ModelConfig, clip: ClipTowers) -> UnionEncoder:
    """Union encoder of ``config.union_encoder`` around the CLIP towers ``clip``."""
    if config.union_encoder == "twotower":
        heads = config.fusion_heads or max(1, config.fusion_dim // 64)
        if config.fusion_dim % heads:
            raise ConfigError(
                f"{config.name}: fusion_dim {config.fusion_dim} is not divisible by "
                f"fusion_heads {heads}"
            )
        return TwoTowerUnion(clip, dim=config.fusion_dim, layers=config.joint_layers, heads=heads)
    return EarlyFusionUnion(clip, blocks=config.early_fusion_blocks)

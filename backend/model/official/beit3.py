"""Union encoder design C: BEiT-3 on ``torchscale`` (model_spec §1.3), the published union encoder.

BEiT-3 is one multiway transformer: the image (a class token and ``g×g`` patches) and the text
tokens are concatenated as ``[vision ; text]`` and attend to each other in every layer, while
the projections, FFNs and LayerNorms have separate vision (``A``) and language (``B``) copies.
The text padding positions are the key padding mask. The outputs are sliced as the published
code does: the vision class token (the multimodal class token), the patches, the text tokens.

The module is torchscale's own ``BEiT3`` (the library the published code vendors; its encoder,
attention, multiway and embedding code is the same in torchscale 0.3.0), configured as
``_get_large_config`` does, so its parameter names are the release's after ``mm_extractor.beit3.``.

Its attention modules are switched to :class:`_SdpaAttention` (same parameters, same
arithmetic) so that the attention runs through ``F.scaled_dot_product_attention`` like every
other attention of the model, instead of torchscale's explicit ``bmm`` + softmax.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import DependencyError
from ..union import UnionOutput
from .config import OfficialConfig

__all__ = ["BEiT3Union", "beit3_encoder_config"]

TORCHSCALE_PIP = "torchscale==0.3.0 fairscale==0.4.13 einops --no-deps"


def _torchscale() -> tuple[Any, Any]:
    """Torchscale's ``BEiT3`` and ``EncoderConfig`` (timm's import-path notice silenced)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"timm\.")
            from torchscale.architecture.config import EncoderConfig
            from torchscale.model.BEiT3 import BEiT3
    except ImportError as err:
        raise DependencyError(
            f"the published RS2-SAM 2 model needs torchscale ({err}); install it with "
            f"pip install {TORCHSCALE_PIP} (or pip install '.[official]')"
        ) from None
    return BEiT3, EncoderConfig


def beit3_encoder_config(config: OfficialConfig) -> Any:
    """Torchscale ``EncoderConfig`` of the published BEiT-3 (``_get_large_config`` settings)."""
    _, encoder_config = _torchscale()
    return encoder_config(
        img_size=config.beit3_image_size,
        patch_size=config.beit3_patch_size,
        vocab_size=config.vocab_size,
        multiway=True,
        layernorm_embedding=False,
        normalize_output=True,
        no_output_layer=True,
        drop_path_rate=0.0,
        encoder_embed_dim=config.beit3_width,
        encoder_attention_heads=config.beit3_heads,
        encoder_ffn_embed_dim=config.beit3_ffn,
        encoder_layers=config.beit3_layers,
        max_source_positions=config.text_positions,
        layernorm_eps=config.layernorm_eps,
        checkpoint_activations=False,
    )


def _sdpa_forward(
    self: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    incremental_state: Any = None,
    key_padding_mask: torch.Tensor | None = None,
    attn_mask: torch.Tensor | None = None,
    rel_pos: torch.Tensor | None = None,
    is_first_step: bool = False,
) -> tuple[torch.Tensor, None]:
    """Torchscale's attention for the encoder case, through ``scaled_dot_product_attention``.

    Shapes: ``query`` ``(B, Lq, d)``, ``key``/``value`` ``(B, Lk, d)``, ``key_padding_mask``
    ``(B, Lk)`` True at padding. Other torchscale features (incremental decoding, xPos,
    relative positions, additive masks) go to the original code.
    """
    if (
        incremental_state is not None
        or rel_pos is not None
        or attn_mask is not None
        or (self.xpos is not None)
    ):
        return type(self).__mro__[1].forward(  # type: ignore[no-any-return]
            self, query, key, value, incremental_state, key_padding_mask, attn_mask, rel_pos,
            is_first_step,
        )  # fmt: skip
    b, lq, d = query.shape
    lk = key.shape[1]
    h, hd = self.num_heads, self.head_dim
    q = (self.q_proj(query) * self.scaling).view(b, lq, h, hd).transpose(1, 2)
    k = self.k_proj(key).view(b, lk, h, hd).transpose(1, 2)
    v = self.v_proj(value).view(b, lk, h, hd).transpose(1, 2)
    keep = None
    if key_padding_mask is not None:
        keep = ~key_padding_mask.to(torch.bool).view(b, 1, 1, lk)
    drop = self.dropout_module.p if self.training else 0.0
    attn = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=drop, scale=1.0)
    attn = attn.transpose(1, 2).reshape(b, lq, d)
    if self.inner_attn_ln is not None:
        attn = self.inner_attn_ln(attn)
    return self.out_proj(attn), None


def _use_sdpa(module: nn.Module) -> None:
    """Switch every torchscale ``MultiheadAttention`` inside ``module`` to the SDPA forward."""
    from torchscale.component.multihead_attention import MultiheadAttention

    sdpa_cls = type("SdpaMultiheadAttention", (MultiheadAttention,), {"forward": _sdpa_forward})
    for sub in module.modules():
        if type(sub) is MultiheadAttention:
            sub.__class__ = sdpa_cls


class BEiT3Union(nn.Module):
    """BEiT-3 as a union encoder (same output interface as designs A and B).

    Args:
        config: The architecture.
    """

    def __init__(self, config: OfficialConfig) -> None:
        super().__init__()
        beit3_cls, _ = _torchscale()
        self.beit3 = beit3_cls(beit3_encoder_config(config))
        _use_sdpa(self.beit3)
        self.dim = config.beit3_width
        self.grid = config.grid

    def tower_parameters(self) -> list[nn.Parameter]:
        """Every BEiT-3 parameter (the published code fine-tunes all of them)."""
        return list(self.beit3.parameters())

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, pad: torch.Tensor) -> UnionOutput:
        """Encode images and captions jointly.

        Args:
            images: ``(B, 3, R, R)`` ImageNet-normalised, ``R = beit3_image_size``.
            tokens: ``(B, L)`` int64 ids (:class:`~.tokenizer.XLMRTokenizer`).
            pad: ``(B, L)`` bool, True at padding (``ids == <unk>`` in the published code).

        Returns:
            ``cls`` ``(B, 1, d)``, ``vis`` ``(B, g, g, d)``, ``txt`` ``(B, L, d)``, ``pad``.
        """
        out = self.beit3(
            textual_tokens=tokens, visual_tokens=images, text_padding_position=pad.bool()
        )["encoder_out"]  # (B, 1 + g*g + L, d)
        n_text = tokens.shape[1]
        n_vis = out.shape[1] - n_text - 1
        vis = out[:, 1 : 1 + n_vis].reshape(out.shape[0], self.grid, self.grid, self.dim)
        return UnionOutput(out[:, :1], vis, out[:, out.shape[1] - n_text :], pad)

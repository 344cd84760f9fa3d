"""The causal CLIP text transformer (open_clip's text-tower parameter layout).

Data flow (B = batch, L = tokens, W = width, E = embed dim)::

    tokens (B,L) --token_embedding + positional_embedding[:L]--> (B,L,W)
        --transformer.resblocks (causal)--> --ln_final--> (B,L,W)
        row of the highest token id (EOT) --text_projection--> (B,E)
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import BlockStack, LayerNorm
from .spec import TextSpec

__all__ = ["ClipTextTower"]


class ClipTextTower(nn.Module):
    """CLIP text transformer, run causally on a batch trimmed to its longest caption.

    Each real token sees only the tokens before it, so padding never changes them.

    Args:
        spec: The architecture.

    Attributes:
        width: ``W``.
        context_length: Rows of the position table (longest token sequence).
    """

    def __init__(self, spec: TextSpec) -> None:
        super().__init__()
        self.width = spec.width
        self.context_length = spec.context_length
        self.token_embedding = nn.Embedding(spec.vocab_size, spec.width)
        self.positional_embedding = nn.Parameter(torch.empty(spec.context_length, spec.width))
        self.transformer = BlockStack(
            spec.width, spec.layers, spec.heads, spec.mlp_ratio, spec.ls_init_value, spec.quick_gelu
        )
        self.ln_final = LayerNorm(spec.width)
        self.text_projection: nn.Parameter | nn.Linear | None = None
        if spec.output_dim is not None and spec.proj_bias:
            self.text_projection = nn.Linear(spec.width, spec.output_dim)
        elif spec.output_dim is not None:
            self.text_projection = nn.Parameter(torch.empty(spec.width, spec.output_dim))
        self._init_like_open_clip()

    def _init_like_open_clip(self) -> None:
        """open_clip's text-tower initialisation, in its order (a no-op on meta parameters)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        width, layers = self.transformer.width, self.transformer.layers
        attn_std = width**-0.5
        proj_std = attn_std * (2 * layers) ** -0.5
        fc_std = (2 * width) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        proj = self.text_projection
        if isinstance(proj, nn.Linear):
            nn.init.normal_(proj.weight, std=attn_std)
            nn.init.zeros_(proj.bias)
        elif proj is not None:
            nn.init.normal_(proj, std=attn_std)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode tokens.

        Args:
            tokens: ``(B, L)`` int64 token ids, ``L <= context_length``.

        Returns:
            ``(B, L, W)`` token features after ``ln_final``, and ``(B, E)`` the projected EOT
            features (CLIP's text embedding; ``(B, W)`` without a projection).
        """
        seq_len = tokens.shape[1]
        x = self.token_embedding(tokens) + self.positional_embedding[:seq_len]
        causal = torch.full((seq_len, seq_len), float("-inf"), device=x.device, dtype=x.dtype)
        x = self.transformer(x, attn_mask=causal.triu_(1))
        x = self.ln_final(x)
        eot = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        proj = self.text_projection
        if isinstance(proj, nn.Linear):
            eot = proj(eot)
        elif proj is not None:
            eot = eot @ proj
        return x, eot

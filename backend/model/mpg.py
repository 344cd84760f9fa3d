"""Mask prompt generator (MPG, model_spec §1.4 and §9.1).

The multimodal class token attends to the visual tokens (multiplicative residual), becomes a
per-channel gate, and the gated visual tokens are read out to a sigmoid pseudo-mask on the
CLIP patch grid. The model resizes it to SAM 2's mask-input size and feeds it as the dense
prompt. No loss is applied to it directly (it trains through the final mask loss).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MaskPromptGenerator"]


class MaskPromptGenerator(nn.Module):
    """Class token × visual tokens → pseudo-mask.

    Args:
        dim: Union-encoder width ``d``.
        heads: Heads of the class-token attention (``dim`` must be divisible by it).
    """

    def __init__(self, dim: int, heads: int = 8) -> None:
        super().__init__()
        self.vmtoken = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mask_linear = nn.Linear(dim, dim)
        self.mask_product = nn.Linear(dim, 1)

    def forward(self, cls: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """Pseudo-mask from the class token and visual tokens.

        Args:
            cls: ``(B, 1, d)`` multimodal class token.
            vis: ``(B, g, g, d)`` visual tokens.

        Returns:
            ``(B, 1, g, g)`` probabilities in ``(0, 1)``.
        """
        b, g1, g2, d = vis.shape
        kv = vis.reshape(b, g1 * g2, d)
        q = cls * self.vmtoken(cls, kv, kv, need_weights=False)[0]  # multiplicative residual
        gate = self.mask_linear(q).reshape(b, 1, 1, d)
        logits = self.mask_product(vis * gate)  # (B, g, g, 1)
        return torch.sigmoid(logits).permute(0, 3, 1, 2)

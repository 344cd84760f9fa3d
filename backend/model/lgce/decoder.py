"""LAVT-style decoder: top-down fusion of the four multimodal stages into one mask logit.

``F4 (B, C4, S/32)`` is upsampled and concatenated with ``F3``, then two 3×3 conv + BN + ReLU;
the same with ``F2`` and with the (LGCE-enhanced) ``F1``; a 1×1 conv gives the logit at
``S / 4``. LAVT's head has two classes and a softmax; one logit ``z`` is the same model (the
two-class softmax depends only on the logit difference) and fits the project's interface.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LavtDecoder"]


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class LavtDecoder(nn.Module):
    """Top-down decoder over four stages.

    Args:
        dims: Stage widths ``(C1, C2, C3, C4)``.
        hidden: Width of every fusion block.
    """

    def __init__(self, dims: tuple[int, int, int, int], hidden: int) -> None:
        super().__init__()
        c1, c2, c3, c4 = dims
        self.fuse3 = nn.Sequential(*_conv_bn_relu(c4 + c3, hidden), *_conv_bn_relu(hidden, hidden))
        self.fuse2 = nn.Sequential(
            *_conv_bn_relu(hidden + c2, hidden), *_conv_bn_relu(hidden, hidden)
        )
        self.fuse1 = nn.Sequential(
            *_conv_bn_relu(hidden + c1, hidden), *_conv_bn_relu(hidden, hidden)
        )
        self.classifier = nn.Conv2d(hidden, 1, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """``feats`` = ``[F1, F2, F3, F4]`` NCHW -> logits ``(B, 1, H1, W1)``."""
        f1, f2, f3, f4 = feats
        x = f4
        for skip, fuse in ((f3, self.fuse3), (f2, self.fuse2), (f1, self.fuse1)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
            x = fuse(torch.cat([x, skip], dim=1))
        return self.classifier(x)

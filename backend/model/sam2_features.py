"""SAM 2's image path as its image predictor prepares it, with sizes read from the features."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["sam_image_features"]


def sam_image_features(
    model: nn.Module, images: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """SAM 2 image path as ``SAM2ImagePredictor.set_image`` prepares it (no text handling).

    ``model`` holds SAM 2's ``image_encoder``, ``sam_mask_decoder``, ``no_mem_embed`` and
    ``directly_add_no_mem_embed`` (both RS2-SAM 2 architectures do). Feature sizes come from
    the feature maps themselves, not from a 1024-px table.

    Args:
        model: The model.
        images: ``(B, 3, S, S)`` ImageNet-normalised.

    Returns:
        ``image_embed`` ``(B, C, S/16, S/16)`` (with ``no_mem_embed`` added) and the high-res
        features ``[(B, C/8, S/4, S/4), (B, C/4, S/8, S/8)]``.
    """
    backbone_out = model.image_encoder(images)
    fpn = list(backbone_out["backbone_fpn"])
    # SAM2Base.forward_image: precompute the decoder's high-res projections
    fpn[0] = model.sam_mask_decoder.conv_s0(fpn[0])
    fpn[1] = model.sam_mask_decoder.conv_s1(fpn[1])
    # SAM2Base._prepare_backbone_features + set_image: flatten, add no_mem_embed, unflatten
    levels = fpn[-3:]
    sizes = [(f.shape[-2], f.shape[-1]) for f in levels]
    flat = [f.flatten(2).permute(2, 0, 1) for f in levels]  # (HW, B, C)
    if model.directly_add_no_mem_embed:
        flat[-1] = flat[-1] + model.no_mem_embed
    batch = images.shape[0]
    feats = [f.permute(1, 2, 0).reshape(batch, -1, *s) for f, s in zip(flat, sizes, strict=False)]
    return feats[-1], feats[:-1]

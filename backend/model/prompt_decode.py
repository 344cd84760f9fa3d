"""SAM 2's mask decoder with the text's prompts and the clicks' (shared by both SAM 2 layouts)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .model_io import Encoding
from .prompts import Prompts, embed_prompts, mask_prompt_from_logits, paint_clicks

__all__ = ["decode_prompts"]


def decode_prompts(
    model: nn.Module, enc: Encoding, prompts: Prompts | None, *, use_pseudo_mask: bool = True
) -> torch.Tensor:
    """Low-resolution mask logits ``(B, 1, 4h, 4w)`` of an encoding and its prompts.

    The clicks' (and box's) sparse embeddings go in front of the text's sparse prompt. The
    dense prompt is the MPG's pseudo-mask, or a previous answer (``prompts.mask_input``)
    instead; with ``model.paint_clicks`` the clicks are also marked on it
    (:func:`~backend.model.prompts.paint_clicks`).

    Args:
        model: Holds SAM 2's ``sam_prompt_encoder`` and ``sam_mask_decoder`` and a
            ``paint_clicks`` flag.
        enc: From the model's ``encode``.
        prompts: Clicks, box, previous answer; None for the text alone.
        use_pseudo_mask: False for models without an MPG (SAM's "no mask" embedding).

    Raises:
        InputError: If the clicks are for another batch size.
    """
    batch = enc.image_embed.shape[0]
    h, w = enc.image_embed.shape[-2:]
    if prompts is not None and prompts.points is not None and prompts.points.shape[0] != batch:
        raise InputError(f"got clicks for {prompts.points.shape[0]} images, not {batch}")
    mask_prompt = None
    if prompts is not None and prompts.mask_input is not None:
        mask_prompt = mask_prompt_from_logits(prompts.mask_input, (4 * h, 4 * w))
    elif use_pseudo_mask:
        mask_prompt = F.interpolate(enc.pseudo_mask, size=(4 * h, 4 * w), mode="bilinear",
                                    align_corners=False, antialias=True)
    if mask_prompt is not None and getattr(model, "paint_clicks", False):
        mask_prompt = paint_clicks(mask_prompt, prompts)
    sparse_prompt, dense = embed_prompts(model.sam_prompt_encoder, prompts, mask_prompt, (h, w),
                                         batch)
    sparse = torch.cat([sparse_prompt.to(enc.sparse.dtype), enc.sparse], dim=1)
    low_res, _iou, _tokens, _obj = model.sam_mask_decoder(
        image_embeddings=enc.image_embed,
        image_pe=enc.image_pe,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
        repeat_image=False,
        high_res_features=enc.high_res,
    )
    return low_res

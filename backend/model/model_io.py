"""Model inputs and outputs of RS2-SAM 2 and their preprocessing helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..text.normalize import checked_text
from .prompts import Prompts

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "MIN_IMAGE_PX", "ModelInputs", "ModelOutput"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_IMAGE_PX = 32


@dataclass
class ModelInputs:
    """A preprocessed batch (see :meth:`RS2SAM2.prepare_inputs`).

    Attributes:
        sam_images: ``(B, 3, S, S)`` float32, ImageNet-normalised SAM view.
        clip_images: ``(B, 3, R, R)`` float32, CLIP-normalised union-encoder view.
        tokens: ``(B, L)`` int64 token ids, trimmed to the batch's longest caption.
        text_pad: ``(B, L)`` bool, True at positions after each caption's EOT token.
        prompts: Clicks, box and previous answer next to the text (None: the text alone).
    """

    sam_images: torch.Tensor
    clip_images: torch.Tensor
    tokens: torch.Tensor
    text_pad: torch.Tensor
    prompts: Prompts | None = None

    @property
    def batch_size(self) -> int:
        """Number of (image, caption) pairs."""
        return int(self.sam_images.shape[0])

    def to(self, device: torch.device | str) -> ModelInputs:
        """Copy of the batch on ``device``."""
        return ModelInputs(
            self.sam_images.to(device),
            self.clip_images.to(device),
            self.tokens.to(device),
            self.text_pad.to(device),
            None if self.prompts is None else self.prompts.to(device),
        )


@dataclass
class ModelOutput:
    """Result of :meth:`RS2SAM2.forward`.

    Attributes:
        logits: ``(B, 1, S, S)`` float32 mask logits at the model input size (or at
            ``output_size``); foreground probability = ``sigmoid(logits)``.
        pseudo_mask: ``(B, 1, g, g)`` MPG pseudo-mask, probabilities in ``(0, 1)``.
        boundary_weight: ``(B,)`` text weight of the boundary loss (Linear on
            ``text_feat[:, 0]``; raw, unbounded, as in the reference code).
        text_feat: ``(B, L, C)`` projected text features (C = 256 for real SAM 2 configs).
        low_res: ``(B, 1, S/4, S/4)`` the mask decoder's logits before upsampling (what a
            refinement feeds back as :attr:`Prompts.mask_input`); None where not kept.
    """

    logits: torch.Tensor
    pseudo_mask: torch.Tensor
    boundary_weight: torch.Tensor
    text_feat: torch.Tensor
    low_res: torch.Tensor | None = None


@dataclass
class Encoding:
    """What :meth:`RS2SAM2.encode` computes once per (image, caption) for every click round.

    Attributes:
        image_embed: ``(B, C, h, w)`` text-fused image embedding (h = S/16).
        image_pe: ``(1, C, h, w)`` SAM's dense positional encoding.
        high_res: The decoder's high-resolution features ``[(B, C/8, 4h, 4w), (B, C/4, 2h, 2w)]``.
        sparse: ``(B, 1, C)`` the text's sparse prompt.
        pseudo_mask: ``(B, 1, g, g)`` the MPG's pseudo-mask (zeros without an MPG).
        boundary_weight: ``(B,)`` see :class:`ModelOutput`.
        text_feat: ``(B, L, C)`` see :class:`ModelOutput`.
        input_hw: ``(S, S)`` the model input size (the default logits size).
    """

    image_embed: torch.Tensor
    image_pe: torch.Tensor
    high_res: list[torch.Tensor]
    sparse: torch.Tensor
    pseudo_mask: torch.Tensor
    boundary_weight: torch.Tensor
    text_feat: torch.Tensor
    input_hw: tuple[int, ...]


def _channel_stat(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor(tuple(values), dtype=torch.float32).reshape(1, 3, 1, 1)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _check_text(text: object) -> str:
    """The cleaned caption (:func:`backend.text.normalize.checked_text`), or InputError."""
    return checked_text(text)


def _as_image_batch(
    images: torch.Tensor | np.ndarray, texts: Sequence[str] | None = None
) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 tensor of ``images`` (checked), one per caption of ``texts``."""
    if isinstance(images, np.ndarray):
        arr = np.ascontiguousarray(images)
        if not arr.flags.writeable:  # read-only input (e.g. a cached tile): copy, never alias
            arr = arr.copy()
        images = torch.from_numpy(arr)
    if not isinstance(images, torch.Tensor):
        raise InputError(
            "images must be a (B, H, W, 3) uint8 numpy array or tensor, "
            f"got {type(images).__name__}"
        )
    if images.ndim != 4 or images.shape[-1] != 3:
        raise InputError(f"images must be (B, H, W, 3) RGB, got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        raise InputError(
            f"images must be uint8 (0-255), got {images.dtype}; scale and convert first"
        )
    h, w = images.shape[1:3]
    if min(h, w) < MIN_IMAGE_PX:
        raise InputError(f"images must be at least {MIN_IMAGE_PX}x{MIN_IMAGE_PX} px, got {h}x{w}")
    if texts is not None and len(texts) != images.shape[0]:
        raise InputError(f"got {images.shape[0]} images but {len(texts)} texts; pass one per image")
    return images


def _unit_batch(
    images: torch.Tensor | np.ndarray, texts: Sequence[str], device: torch.device
) -> torch.Tensor:
    """Checked ``images`` as ``(B, 3, H, W)`` float32 in ``[0, 1]`` on ``device``."""
    x = _as_image_batch(images, texts)
    return x.to(device).permute(0, 3, 1, 2).float().div_(255.0)

"""The published preprocessing: PIL bilinear resize of the uint8 image (``get_transform``)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

__all__ = ["pil_resize"]


def pil_resize(images: np.ndarray, size: int) -> torch.Tensor:
    """Published resize: PIL bilinear on uint8, then ``ToTensor`` (``/255``).

    Args:
        images: ``(B, H, W, 3)`` uint8.
        size: Output side in pixels.

    Returns:
        ``(B, 3, size, size)`` float32 in [0, 1].
    """
    out = np.empty((images.shape[0], size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        pil = Image.fromarray(np.ascontiguousarray(image), mode="RGB")
        out[i] = np.asarray(pil.resize((size, size), Image.BILINEAR))
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)

"""Augmentations that keep a referring expression true, and resizing to the network size.

Rules (each augmentation either keeps the text's meaning or rewrites the text consistently):

* **Horizontal flip**: every horizontal word is swapped (left <-> right, leftmost <-> rightmost,
  east <-> west), so "the second ship from the left" becomes "... from the right" and stays
  true. Texts with phrases we cannot rewrite safely are never flipped.
* **Vertical flip**: top <-> bottom, upper <-> lower, above <-> below, topmost <-> bottommost,
  uppermost <-> lowest, north <-> south; "on top of" blocks the flip.
* **Random scale-crop**: only for texts without any spatial, ordinal, size or relational word
  (or, when the data set records it, of type ``class`` / ``unique``: "the only bridge" stays
  the only bridge when things are cut away), because a crop can change
  which object is leftmost / largest / second / closest, or cut a referred object out. The crop
  must also keep at least ``crop_keep`` of the target's pixels (and any non-empty target stays
  non-empty). "The airplanes" in a crop are still exactly the airplanes in the crop.
* **Photometric**: brightness and contrast only; no hue or saturation change (colour words).
* **Cutout** (the paper's RRSIS-D recipe): a fixed, seeded subset of samples gets black boxes;
  the mask is untouched.

All randomness comes from a generator seeded with ``(seed, epoch, sample index)``, so results
do not depend on the number of workers or processes, and a resumed run repeats them exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

_H_SWAP = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost",
           "east": "west", "west": "east", "eastern": "western", "western": "eastern"}
_V_SWAP = {"top": "bottom", "bottom": "top", "upper": "lower", "lower": "upper",
           "topmost": "bottommost", "bottommost": "topmost", "uppermost": "lowest",
           "lowest": "uppermost", "above": "below", "below": "above", "north": "south",
           "south": "north", "northern": "southern", "southern": "northern",
           "highest": "lowest"}
_V_BLOCK = ("on top of",)  # "the car on top of the bridge" has no flipped wording
_WORD = re.compile(r"[a-z]+")
SPATIAL_WORDS = frozenset(
    set(_H_SWAP) | set(_V_SWAP)
    | {"middle", "center", "centre", "central", "corner", "side", "half", "part", "edge",
       "largest", "biggest", "smallest", "tiniest", "bigger", "smaller", "larger", "area",
       "closest", "nearest", "farthest", "furthest", "near", "next", "beside", "between",
       "first", "second", "third", "fourth", "fifth", "last", "only", "single", "along",
       "around", "across", "behind", "front", "adjacent", "surrounded", "inside", "outside"}
)
SAFE_CROP_TYPES = frozenset({"class", "unique"})


def _swap_words(text: str, table: dict[str, str]) -> str:
    return _WORD.sub(lambda m: table.get(m.group(0), m.group(0)), text)


def flip_text(text: str, axis: str) -> str | None:
    """Rewrite ``text`` for a flip of the image.

    Args:
        text: The expression (lower case expected).
        axis: ``"h"`` (left-right mirror) or ``"v"`` (top-bottom mirror).

    Returns:
        The rewritten text, or None when the text cannot be rewritten safely (then don't flip).
    """
    low = text.lower()
    if axis == "h":
        return _swap_words(low, _H_SWAP)
    if any(p in low for p in _V_BLOCK):
        return None
    return _swap_words(low, _V_SWAP)


def is_crop_safe(text: str, expr_type: str | None) -> bool:
    """Whether a random crop keeps ``text`` true (see the module docstring)."""
    if expr_type is not None:
        return expr_type in SAFE_CROP_TYPES
    return not (set(_WORD.findall(text.lower())) & SPATIAL_WORDS)


@dataclass(frozen=True)
class Augmented:
    """An augmented sample: ``image (H, W, 3) uint8``, ``mask (H, W) bool``, text."""

    image: np.ndarray
    mask: np.ndarray
    text: str


def augment(
    image: np.ndarray,
    mask: np.ndarray,
    text: str,
    expr_type: str | None,
    rng: np.random.Generator,
    cfg: object,
    *,
    cutout: bool = False,
) -> Augmented:
    """Apply the configured augmentations (``cfg`` is an ``AugmentConfig``).

    Args:
        image: ``(H, W, 3)`` uint8.
        mask: ``(H, W)`` bool.
        text: The expression.
        expr_type: Its type when known.
        rng: Per-sample generator.
        cfg: ``training.config.AugmentConfig``.
        cutout: Whether this sample is in the fixed cutout subset.

    Returns:
        The augmented triple (copies; inputs untouched).
    """
    a = cfg
    crop_ok = is_crop_safe(text, expr_type)
    if getattr(a, "scale_crop", 0) and rng.random() < a.scale_crop and crop_ok:
        image, mask = _scale_crop(image, mask, rng, a.crop_scale, a.crop_keep)
    if getattr(a, "hflip", 0) and rng.random() < a.hflip:
        new = flip_text(text, "h")
        if new is not None:
            image, mask, text = image[:, ::-1], mask[:, ::-1], new
    if getattr(a, "vflip", 0) and rng.random() < a.vflip:
        new = flip_text(text, "v")
        if new is not None:
            image, mask, text = image[::-1], mask[::-1], new
    if getattr(a, "brightness", 0) or getattr(a, "contrast", 0):
        image = _photometric(image, rng, a.brightness, a.contrast)
    if cutout:
        image = _cutout(image, rng, a.cutout_boxes, a.cutout_box_frac)
    return Augmented(np.ascontiguousarray(image), np.ascontiguousarray(mask), text)


def _scale_crop(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, min_scale: float,
                keep: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = mask.shape
    total = int(mask.sum())
    for _ in range(10):
        s = rng.uniform(min_scale, 1.0)
        ch, cw = max(32, round(h * s)), max(32, round(w * s))
        if ch > h or cw > w:
            return image, mask
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        kept = int(mask[y : y + ch, x : x + cw].sum())
        if (total == 0) or (kept > 0 and kept >= keep * total):
            return image[y : y + ch, x : x + cw], mask[y : y + ch, x : x + cw]
    return image, mask


def _photometric(image: np.ndarray, rng: np.random.Generator, brightness: float,
                 contrast: float) -> np.ndarray:
    x = image.astype(np.float32)
    if contrast:
        mean = x.mean()
        x = (x - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    if brightness:
        x = x * rng.uniform(1 - brightness, 1 + brightness)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def _cutout(image: np.ndarray, rng: np.random.Generator, boxes: list[int],
            box_frac: float) -> np.ndarray:
    out = image.copy()
    h, w = out.shape[:2]
    side = max(1, round(box_frac * max(h, w)))
    for _ in range(int(rng.integers(boxes[0], boxes[1] + 1))):
        y = int(rng.integers(0, max(1, h - side)))
        x = int(rng.integers(0, max(1, w - side)))
        out[y : y + side, x : x + side] = 0
    return out


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize to the square network size like the paper (aspect not kept).

    The image uses PIL bilinear (antialiased when shrinking, as the model's own resize is);
    the mask uses nearest at pixel centres (the paper's GT rule).

    Returns:
        ``(image (size, size, 3) uint8, mask (size, size) bool)``.
    """
    if image.shape[:2] == (size, size):
        return image, mask
    img = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    m = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(img), np.asarray(m) > 127

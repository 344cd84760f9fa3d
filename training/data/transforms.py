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
* **Zoom** (``zoom``, ``zoom_range``): a log-uniform scale factor ``z``; ``z > 1`` crops a
  ``1/z`` window (the scale-crop rules above: crop-safe texts only, ``crop_keep`` of the target),
  ``z < 1`` shrinks the image onto a canvas of its mean colour at a random place (the mask
  padded with background; crop-safe texts only, since a corner or half of the frame moves).
  Together with the network resize this shows objects from ``zoom_range[0]`` to
  ``zoom_range[1]`` times their trained size: the recipe's cover for 0.1-2 m imagery, whose
  rasters the pipeline resamples to the working resolution (nano: 1 m, vehicles 0.25 m).
* **Photometric**: brightness and contrast (:func:`augment`).
* After the resize to the network size (:func:`augment_network_view`, fewer pixels to touch):
  **low resolution** (``lowres``, ``lowres_max``): downsample by a factor in
  ``[1, lowres_max]`` and upsample back, what coarse imagery (e.g. 2 m) looks like once the
  pipeline has upsampled it to a finer working resolution; **colour** (``colour``): gamma for
  every text, saturation, hue and per-channel gains only for texts without colour words
  (``COLOUR_WORDS``; the generated sets have none).
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
COLOUR_WORDS = frozenset(
    {"red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white",
     "grey", "gray", "dark", "light", "bright", "colour", "color", "coloured", "colored",
     "turquoise", "cyan", "golden", "silver", "reddish", "greenish", "bluish", "whitish"}
)


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
    if getattr(a, "zoom", 0) and rng.random() < a.zoom and crop_ok:
        image, mask = _zoom(image, mask, rng, a.zoom_range, a.crop_keep)
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


def augment_network_view(image: np.ndarray, text: str, rng: np.random.Generator,
                         cfg: object) -> np.ndarray:
    """The augmentations applied after the resize to the network size (cheaper there).

    Low-resolution simulation (relative to the network's pixels) and the colour jitter; the
    mask is untouched. Draws nothing from ``rng`` when both are off.

    Args:
        image: ``(S, S, 3)`` uint8 network view.
        text: The (possibly rewritten) expression: colour words block hue / saturation / gains.
        rng: The sample's generator, continued after :func:`augment`.
        cfg: ``training.config.AugmentConfig``.

    Returns:
        The augmented image (a copy when changed).
    """
    a = cfg
    if getattr(a, "lowres", 0) and rng.random() < a.lowres:
        image = _low_resolution(image, rng, a.lowres_max)
    if getattr(a, "colour", 0) and rng.random() < a.colour:
        colour_ok = not (set(_WORD.findall(text.lower())) & COLOUR_WORDS)
        image = _colour(image, rng, a, colour_ok)
    return image


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


def _zoom(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
          zoom_range: list[float], keep: float) -> tuple[np.ndarray, np.ndarray]:
    """Log-uniform zoom: crop a ``1/z`` window (z > 1) or shrink onto a mean-colour canvas."""
    z = float(np.exp(rng.uniform(np.log(zoom_range[0]), np.log(zoom_range[1]))))
    if z >= 1.0:
        return _crop_window(image, mask, rng, 1.0 / z, keep)
    h, w = mask.shape
    nh, nw = max(1, round(h * z)), max(1, round(w * z))
    small = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))
    m = Image.fromarray(mask.astype(np.uint8) * 255).resize((nw, nh), Image.Resampling.NEAREST)
    small_mask = np.asarray(m) > 127
    if mask.any() and not small_mask.any():  # a target too small to survive: keep the sample
        return image, mask
    canvas = np.empty_like(image)
    canvas[:] = image.reshape(-1, 3).mean(0).round().astype(np.uint8)
    out_mask = np.zeros_like(mask)
    y, x = int(rng.integers(0, h - nh + 1)), int(rng.integers(0, w - nw + 1))
    canvas[y : y + nh, x : x + nw] = small
    out_mask[y : y + nh, x : x + nw] = small_mask
    return canvas, out_mask


def _crop_window(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, frac: float,
                 keep: float) -> tuple[np.ndarray, np.ndarray]:
    """A random window of ``frac`` x the image side keeping ``keep`` of the target (10 tries)."""
    h, w = mask.shape
    ch, cw = max(16, round(h * frac)), max(16, round(w * frac))
    if ch > h or cw > w:
        return image, mask
    total = int(mask.sum())
    for _ in range(10):
        y = int(rng.integers(0, h - ch + 1))
        x = int(rng.integers(0, w - cw + 1))
        kept = int(mask[y : y + ch, x : x + cw].sum())
        if total == 0 or (kept > 0 and kept >= keep * total):
            return image[y : y + ch, x : x + cw], mask[y : y + ch, x : x + cw]
    return image, mask


def _low_resolution(image: np.ndarray, rng: np.random.Generator, max_factor: float) -> np.ndarray:
    """Downsample by a factor in ``[1, max_factor]`` (box) and upsample back (bilinear)."""
    f = float(rng.uniform(1.0, max_factor))
    h, w = image.shape[:2]
    small = Image.fromarray(image).resize((max(1, round(w / f)), max(1, round(h / f))),
                                          Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.BILINEAR))


def _colour(image: np.ndarray, rng: np.random.Generator, a: object, colour_ok: bool) -> np.ndarray:
    """Gamma always; saturation, hue and per-channel gains only when ``colour_ok``."""
    x = image.astype(np.float32) / 255.0
    gamma = getattr(a, "gamma", 0.0)
    if gamma:
        x = x ** float(np.exp(rng.uniform(-np.log1p(gamma), np.log1p(gamma))))
    if colour_ok:
        gains = getattr(a, "channel_gain", 0.0)
        if gains:
            x = x * rng.uniform(1 - gains, 1 + gains, size=3).astype(np.float32)
        sat = getattr(a, "saturation", 0.0)
        if sat:
            grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
            x = grey[..., None] + (x - grey[..., None]) * rng.uniform(1 - sat, 1 + sat)
    out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    hue = getattr(a, "hue_deg", 0.0)
    if colour_ok and hue:
        shift = round(rng.uniform(-hue, hue) / 360.0 * 256.0)
        hsv = np.asarray(Image.fromarray(out).convert("HSV")).copy()
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 256
        out = np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))
    return out


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

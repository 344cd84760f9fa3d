"""The (image, text, mask) pairs an adaptation trains on, and hold-out scoring.

Taught pairs come from the user's polygons. *Keep* pairs hold the other concepts in place
(learning without forgetting): on the same training tiles, the base model's own answer for
another concept's text ("the buildings" while teaching "water") is the target, with the taught
objects removed from it. They go through the training augmentations like every pair
(``training.data.datasets.TrainSet``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from training.adapt.sampling import Tile
from training.data.refsegrs import Record
from training.data.sample import Sample

__all__ = ["PairSet", "keep_pairs", "predict_tiles", "score_tiles", "taught_pairs"]


class PairSet:
    """An in-memory referring set (the ``ReferDataset`` protocol of ``training.data``).

    Args:
        pairs: ``(image (S, S, 3) uint8, mask (S, S) bool, text)`` triples.
        kinds: Per pair ``"taught"`` or ``"keep"`` (kept in ``Record.meta``).
    """

    name = "adapt"

    def __init__(self, pairs: Sequence[tuple[np.ndarray, np.ndarray, str]],
                 kinds: Sequence[str]) -> None:
        self.pairs = list(pairs)
        self.records = [Record(str(i), text, "class", {"kind": kind})
                        for i, ((_, _, text), kind) in enumerate(zip(self.pairs, kinds,
                                                                     strict=True))]

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> Sample:
        image, mask, text = self.pairs[index]
        rec = self.records[index]
        return Sample(image, mask, text, rec.sample_id, rec.expr_type, dict(rec.meta))


def taught_pairs(tiles: Sequence[Tile]) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """One pair per (tile, taught text)."""
    return [(t.image, m, text) for t in tiles for text, m in sorted(t.masks.items())]


@torch.no_grad()
def predict_tiles(model: nn.Module, images: np.ndarray, text: str | Sequence[str],
                  batch_size: int = 4) -> np.ndarray:
    """``(N, S, S)`` float32 probabilities on ``(N, S, S, 3)`` uint8 tiles.

    ``text`` is one text for every tile or one per tile (mixed in a batch).
    """
    import torch.nn.functional as F

    texts = [text] * len(images) if isinstance(text, str) else list(text)
    was_training = model.training
    model.eval()
    out = np.empty(images.shape[:3], dtype=np.float32)
    for a in range(0, len(images), batch_size):
        chunk = images[a : a + batch_size]
        inputs = model.prepare_inputs(chunk, texts[a : a + len(chunk)])  # type: ignore[operator]
        logits = model(inputs).logits
        if logits.shape[-2:] != chunk.shape[1:3]:
            logits = F.interpolate(logits, size=chunk.shape[1:3], mode="bilinear",
                                   align_corners=False)
        out[a : a + len(chunk)] = torch.sigmoid(logits.float())[:, 0].cpu().numpy()
    model.train(was_training)
    return out


def keep_pairs(model: nn.Module, tiles: Sequence[Tile], texts: Sequence[str], per_tile: int,
               seed: int, max_tiles: int = 6) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The base model's answers for other concepts on the training tiles.

    Args:
        model: The base model (before any training).
        tiles: Training tiles.
        texts: Texts of concepts that are not taught.
        per_tile: Texts drawn per tile (seeded).
        seed: Seed of the draw.
        max_tiles: Use at most this many tiles (seeded pick): each costs model passes.

    Returns:
        Pairs whose masks are the base's ``p > 0.5`` outside the taught objects and in the
        tile's zone.
    """
    if not texts or per_tile <= 0 or not tiles:
        return []
    rng = np.random.default_rng([seed, 7])
    if len(tiles) > max_tiles:
        tiles = [tiles[i] for i in sorted(rng.choice(len(tiles), max_tiles, replace=False))]
    jobs = [(i, texts[int(k)]) for i in range(len(tiles))
            for k in rng.choice(len(texts), size=min(per_tile, len(texts)), replace=False)]
    images = np.stack([tiles[i].image for i, _ in jobs])
    prob = predict_tiles(model, images, [t for _, t in jobs])
    out = []
    for (i, text), p in zip(jobs, prob, strict=True):
        taught = np.zeros_like(tiles[i].zone)
        for m in tiles[i].masks.values():
            taught |= m
        out.append((tiles[i].image, (p > 0.5) & tiles[i].zone & ~taught, text))
    return out


def score_tiles(model: nn.Module, tiles: Sequence[Tile]) -> dict[str, Any]:
    """Pixel IoU (x100) of ``p > 0.5`` against the masks, inside each tile's zone.

    Returns:
        ``{"iou": over every text, "per_text": {text: iou}, "tiles": n, "pixels": n}``;
        IoU counts are summed over tiles (one IoU per text, not a mean of tile IoUs).
    """
    texts = sorted({text for t in tiles for text in t.masks})
    images = np.stack([t.image for t in tiles]) if tiles else np.zeros((0, 1, 1, 3), np.uint8)
    per_text = {}
    inter_all = union_all = 0
    for text in texts:
        prob = predict_tiles(model, images, text)
        inter = union = 0
        for tile, p in zip(tiles, prob, strict=True):
            pred = (p > 0.5) & tile.zone
            gt = tile.masks.get(text, np.zeros_like(tile.zone))
            inter += int((pred & gt).sum())
            union += int((pred | gt).sum())
        per_text[text] = round(100.0 * inter / union, 2) if union else 0.0
        inter_all, union_all = inter_all + inter, union_all + union
    return {"iou": round(100.0 * inter_all / union_all, 2) if union_all else 0.0,
            "per_text": per_text, "tiles": len(tiles),
            "pixels": int(sum(int(t.zone.sum()) for t in tiles))}

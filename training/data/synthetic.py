"""A seeded in-memory referring set of coloured shapes, for smoke tests and overfitting checks.

Each sample is a noisy background with two to four filled rectangles or discs of distinct
colours. The expression names one shape by colour ("the red square", type ``class``) or the
left/right-most shape (type ``position``). Everything is a pure function of (seed, index).
"""

from __future__ import annotations

import numpy as np

from backend.errors import InputError
from training.data.refsegrs import Record
from training.data.sample import Sample

_COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 70, 220),
            "yellow": (230, 210, 40)}
_SHAPES = ("square", "circle")


class SyntheticDataset:
    """Coloured shapes with referring expressions.

    Args:
        n: Number of samples.
        size_px: Image side.
        seed: Seed; split names map to different seeds.
        split: ``"train"``, ``"val"`` or ``"test"``.
    """

    name = "synthetic"

    def __init__(self, n: int = 32, size_px: int = 96, seed: int = 0, split: str = "train") -> None:
        if split not in ("train", "val", "test"):
            raise InputError(f"unknown synthetic split {split!r}; use train, val or test")
        if size_px < 32:
            raise InputError(f"synthetic size_px must be >= 32, got {size_px}")
        self.n, self.size = n, size_px
        self.seed = seed * 10 + ("train", "val", "test").index(split)
        self.records = [self._make(i)[2] for i in range(n)]

    def _make(self, index: int) -> tuple[np.ndarray, np.ndarray, Record]:
        rng = np.random.default_rng([self.seed, index])
        s = self.size
        image = rng.integers(90, 140, size=(s, s, 3)).astype(np.uint8)
        k = int(rng.integers(2, 5))
        names = list(rng.permutation(list(_COLOURS)))[:k]
        masks = []
        xs = np.sort(rng.choice(np.arange(k * 2), size=k, replace=False)) * (s / (2 * k))
        yy, xx = np.mgrid[0:s, 0:s]
        shape_of = []
        for j, colour in enumerate(names):
            r = int(rng.integers(s // 12, s // 7))
            cx = int(xs[j] + r + 1)
            cy = int(rng.integers(r + 1, s - r - 1))
            shape = _SHAPES[int(rng.integers(0, 2))]
            if shape == "square":
                m = (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
            else:
                m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            for other in masks:
                m &= ~other
            image[m] = _COLOURS[colour]
            masks.append(m)
            shape_of.append(shape)
        pick = int(rng.integers(0, k))
        if rng.random() < 0.5:
            text, etype = f"the {names[pick]} {shape_of[pick]}", "class"
        else:
            pick = 0 if rng.random() < 0.5 else k - 1
            text = f"the {'leftmost' if pick == 0 else 'rightmost'} shape"
            etype = "position"
        return image, masks[pick], Record(str(index), text, etype, {"source_image": str(index)})

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Sample:
        image, mask, rec = self._make(index)
        return Sample(image, mask, rec.text, rec.sample_id, rec.expr_type, dict(rec.meta))

"""Light shared types (no torch, no rasterio): what the pipeline needs from a segmenter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

ProgressFn = Callable[[float], None]
"""Progress callback; receives percent done in ``[0, 100]``."""

StageFn = Callable[[str, int, int], None]
"""Stage callback ``(stage, done, total)``: ``("read", 0, 0)``, ``("tiles", k, n)`` after each
batch of tiles, ``("vectorize", 0, 0)``, ``("write", 0, 0)``."""

CancelFn = Callable[[], bool]
"""Cancel check; returns True when the caller wants the run to stop."""


@runtime_checkable
class SegmenterLike(Protocol):
    """Anything ``segment_raster`` can drive.

    Only ``predict`` is required. The pipeline reads these optional attributes with
    ``getattr`` and falls back to defaults, so a stand-in segmenter needs none of them:

    * ``name: str`` - model config name, written to the ``model`` field (default ``"custom"``).
    * ``checkpoint_sha256: str | None`` - written to ``checkpoint_sha256`` (default ``""``).
    * ``image_size: int`` - preferred square tile size in pixels (default 1024).
    * ``gsd_m: float | None`` - working ground resolution in metres per pixel the model was
      trained at; ``None`` means "use the raster's native resolution".
    * ``unknown_words(text) -> list[str]`` - words of the prompt the weights never saw in
      training. With it, each run rewrites everyday words to the trained names
      (``backend.text.lexicon``: "lake" -> "water"), reports the rewrite and the remaining
      unknown words in ``SegmentResult.warnings``, and refuses text in which the model knows no
      word. Without it the text reaches ``predict`` unchanged (only a text without any word
      is refused).
    """

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        """Probability map.

        Args:
            image: ``(H, W, 3)`` uint8 RGB, H and W >= 32.
            text: The referring expression.

        Returns:
            ``(H, W)`` float32 in ``[0, 1]``.
        """
        ...

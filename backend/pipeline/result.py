"""What a run returns: :class:`SegmentResult` and the output fields :data:`FIELDS`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FIELDS", "SegmentResult"]

FIELDS: tuple[tuple[str, type], ...] = (
    ("prompt", str),
    ("prompt_used", str),
    ("score", float),
    ("area_m2", float),
    ("pixels", int),
    ("model", str),
    ("checkpoint_sha256", str),
    ("source", str),
    ("gsd_m", float),
    ("threshold", float),
    ("created_at", str),
    ("clicks", str),
)
"""Output fields (name, type) of every polygon, in file order (contract section 4 + provenance;
``clicks``: the clicks next to the text, ``"x,y,+;x,y,-"`` in the raster CRS, '' for none)."""


@dataclass
class SegmentResult:
    """The polygons of one run and how they were made.

    Attributes:
        polygons: Shapely polygons in the raster CRS, holes kept, vertices on pixel edges
            (unless simplified).
        attributes: One dict per polygon with the fields of :data:`FIELDS`.
        crs: WKT of the raster CRS (= the polygons' CRS).
        out_path: The written file, or None.
        window: ``(row_off, col_off, height, width)`` of the processed raster pixels.
        gsd_m: Working ground resolution (m/px) the segmenter saw; None = native pixels.
        native_gsd_m: Ground size (m) of a raster pixel along columns and rows.
        tile_px, overlap_px: Tiling of the working grid.
        n_tiles: Number of tiles predicted.
        timings: Seconds per stage (``read``, ``model``, ``blend``, ``vectorize``,
            ``attributes``, ``write``, ``total``).
        pixel_counts: ``window`` (raster pixels processed), ``working`` (working pixels
            predicted, overlaps counted once), ``valid`` (non-nodata pixels, when known),
            ``positive`` (pixels above the threshold, before min-area filtering).
        warnings: Things the user should know about this result, one sentence each (how the
            prompt was rewritten for the model, words it never saw in training); also logged.
        prompt_used: The text the segmenter was given: the prompt with everyday words
            rewritten to the names the model was trained with ("the lake" -> "the water"),
            or the prompt itself (see :func:`backend.text.lexicon.interpret`).
    """

    polygons: list[Any]
    attributes: list[dict[str, Any]]
    crs: str
    out_path: Path | None
    window: tuple[int, int, int, int]
    gsd_m: float | None
    native_gsd_m: tuple[float, float]
    tile_px: int
    overlap_px: int
    n_tiles: int
    timings: dict[str, float] = field(default_factory=dict)
    pixel_counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    prompt_used: str = ""

    def __len__(self) -> int:
        return len(self.polygons)

    @property
    def scores(self) -> list[float]:
        """Mean probability inside each polygon."""
        return [a["score"] for a in self.attributes]

    @property
    def areas_m2(self) -> list[float]:
        """True ground area of each polygon in m^2."""
        return [a["area_m2"] for a in self.attributes]

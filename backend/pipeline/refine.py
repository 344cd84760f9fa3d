"""Refine an answer with one more click: re-run only the tiles under it, replace that part.

The run is planned exactly as the text run was (same raster, extent, working resolution,
tiles: :func:`~backend.pipeline.plan.make_plan` and :func:`~backend.pipeline.tiles.
tile_layout`), so the tiles under the click are the tiles of the first answer. Those tiles are
predicted again with every click that falls inside them; their own area (the tiles' extent,
less half the overlap on each side that a neighbouring tile shares) is the *region* whose
polygons are replaced. Old polygons that touch the region are removed; the pieces of them
outside it are merged with the new polygons inside it, so an object cut by the region's edge
stays one polygon.

Example:
    >>> r = refine_raster("ortho.tif", "the buildings", [Click(x, y, True)], old_polygons,
    ...                   old_scores, segmenter=seg, bbox=extent)
    >>> r.remove          # indices of old polygons to delete
    >>> r.polygons        # polygons to add (raster CRS) with r.attributes
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import InputError
from ..types import SegmenterLike
from .clicks import Click, TileClicks, clicks_segmenter_check, format_clicks
from .options import GsdOption, _check_options
from .plan import RunPlan, make_plan
from .run import _interpret_prompt, _run
from .tiles import tile_layout

__all__ = ["Refinement", "merge_region", "refine_raster"]


@dataclass
class Refinement:
    """What one click changes in an answer.

    Attributes:
        remove: Indices (into the old polygons) of the polygons to delete.
        polygons: Polygons to add, in the raster CRS.
        attributes: One dict per added polygon (the fields of ``FIELDS``; ``clicks`` holds
            every click so far).
        region: The replaced region (a shapely box in the raster CRS).
        n_tiles: Tiles predicted again.
    """

    remove: list[int]
    polygons: list[Any]
    attributes: list[dict[str, Any]]
    region: Any
    n_tiles: int


def _own_span(starts: Sequence[int], length: Sequence[int], picked: Sequence[int], total: int,
              overlap_px: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(tiles' span, own span)`` along one axis for the picked tile indices."""
    a = min(starts[i] for i in picked)
    b = max(starts[i] + length[i] for i in picked)
    half = math.ceil(overlap_px / 2) + 1  # + 1: the resampling halo stays inside the tiles
    own_a = a + half if a > 0 else a
    own_b = b - half if b < total else b
    return (a, b), (own_a, max(own_b, own_a + 1))


def _region_window(plan: RunPlan, own_rows: tuple[int, int], own_cols: tuple[int, int]) -> Any:
    """The raster pixels of the own working span, inside the first answer's window."""
    from ..geo.raster import PixelWindow

    w = plan.window
    r0 = max(w.row_off, math.ceil(own_rows[0] * plan.grid.scale_y))
    r1 = min(w.row_stop, math.floor(own_rows[1] * plan.grid.scale_y))
    c0 = max(w.col_off, math.ceil(own_cols[0] * plan.grid.scale_x))
    c1 = min(w.col_stop, math.floor(own_cols[1] * plan.grid.scale_x))
    if r1 <= r0 or c1 <= c0:
        raise InputError("the click's tiles hold no pixel of the answer's extent; click inside it")
    return PixelWindow(r0, c0, r1 - r0, c1 - c0)


def refine_raster(
    raster: str | os.PathLike[str],
    text: str,
    clicks: Sequence[Click],
    old_polygons: Sequence[Any],
    old_scores: Sequence[float],
    *,
    segmenter: SegmenterLike,
    new_click: Click | None = None,
    bbox: Sequence[float] | None = None,
    bbox_crs: Any = None,
    threshold: float = 0.5,
    gsd_m: GsdOption = "auto",
    tile_px: int | None = None,
    overlap_px: int | None = None,
    bands: Sequence[int] | None = None,
    min_area_m2: float = 0.0,
) -> Refinement:
    """Re-run the tiles under ``new_click`` with ``clicks`` and merge them into an answer.

    Args:
        raster: The raster of the first answer.
        text: Its prompt.
        clicks: Every click so far, the new one included (raster CRS).
        old_polygons: The current answer's polygons (raster CRS; shapely or WKB bytes).
        old_scores: Their ``score`` values.
        segmenter: A segmenter with ``predict_clicks``.
        new_click: The click whose tiles are re-run (default: the last of ``clicks``).
        bbox: The first answer's extent (and every keyword below: its settings).
        bbox_crs: CRS of ``bbox``.
        threshold: See ``segment_raster``.
        gsd_m: See ``segment_raster``.
        tile_px: See ``segment_raster``.
        overlap_px: See ``segment_raster``.
        bands: See ``segment_raster``.
        min_area_m2: See ``segment_raster``.

    Raises:
        InputError: No clicks, a click outside the raster or the answer's tiles, or a
            segmenter that takes no clicks.
    """
    import rasterio

    from ..geo.raster import GDAL_CACHE_MB, open_raster

    if not clicks:
        raise InputError("refining needs at least one click")
    import shapely

    old_polygons = [shapely.from_wkb(g) if isinstance(g, bytes | bytearray) else g
                    for g in old_polygons]
    if len(old_polygons) != len(old_scores):
        raise InputError(f"got {len(old_polygons)} polygons but {len(old_scores)} scores")
    clicks_segmenter_check(segmenter)
    click = new_click or clicks[-1]
    options = _check_options(text, threshold, min_area_m2, 0.0, bands, gsd_m, tile_px,
                             overlap_px, 1, "auto", False, 128)
    prompt = _interpret_prompt(segmenter, options.text)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_raster(raster) as dataset:
        plan = make_plan(dataset, options, segmenter, bbox=bbox, bbox_crs=bbox_crs,
                         assume_crs=None, source_name=None, concepts=prompt.concepts)
        layout = tile_layout(plan, 1)
        TileClicks(plan, clicks)  # every click inside the raster and the answer's extent
        (p0, p1), (q0, q1) = plan.grid.work_rows, plan.grid.work_cols
        r, c, _ = TileClicks(plan, [click])._work[0]
        rows = layout.rows.starts
        cols = layout.cols.starts
        row_len = [w.size for w in layout.rows.weights]
        col_len = [w.size for w in layout.cols.weights]
        picked_r = [i for i, s in enumerate(rows) if p0 + s <= r <= p0 + s + row_len[i]]
        picked_c = [j for j, s in enumerate(cols) if q0 + s <= c <= q0 + s + col_len[j]]
        if not picked_r or not picked_c:
            raise InputError(f"point {click} lies outside the last answer's tiles; click inside "
                             "the extent that was segmented")
        span_r, own_r = _own_span(rows, row_len, picked_r, p1 - p0, plan.overlap_px)
        span_c, own_c = _own_span(cols, col_len, picked_c, q1 - q0, plan.overlap_px)
        shift = lambda s, o: (s[0] + o, s[1] + o)  # noqa: E731 - span-relative -> absolute
        window = _region_window(plan, shift(own_r, p0), shift(own_c, q0))
        result = _run(dataset, replace(options), segmenter, bbox=None, bbox_crs=None,
                      out_path=None, assume_crs=None, progress=None, is_cancelled=None,
                      source_name=None, window=window,
                      work_span=(shift(span_r, p0), shift(span_c, q0)), prompt=prompt,
                      clicks=tuple(clicks))
        region = _window_box(plan, window)
    remove, polygons, scores = merge_region(old_polygons, old_scores, result.polygons,
                                            result.scores, region)
    attributes = _merged_attributes(plan, segmenter, options.text, prompt.model_text,
                                    options.threshold, polygons, scores, clicks)
    return Refinement(remove, polygons, attributes, region, result.n_tiles)


def _window_box(plan: RunPlan, window: Any) -> Any:
    from shapely.geometry import box

    from ..geo.vectorize import pixel_to_map

    return pixel_to_map([box(window.col_off, window.row_off, window.col_stop, window.row_stop)],
                        plan.info.transform)[0]


def merge_region(
    old_polygons: Sequence[Any],
    old_scores: Sequence[float],
    new_polygons: Sequence[Any],
    new_scores: Sequence[float],
    region: Any,
) -> tuple[list[int], list[Any], list[float]]:
    """Replace the part of an answer inside ``region`` by new polygons (all in one CRS).

    Returns:
        ``(remove, polygons, scores)``: indices of old polygons that touch the region's
        interior, and the polygons that replace them (their parts outside the region merged
        with the new polygons inside it), with area-weighted scores.
    """
    import shapely

    remove = [i for i, g in enumerate(old_polygons) if g.intersects(region)
              and not g.intersection(region).is_empty and g.intersection(region).area > 0]
    pieces = [(old_polygons[i].difference(region), old_scores[i]) for i in remove]
    pieces += [(g.intersection(region), s) for g, s in zip(new_polygons, new_scores, strict=True)]
    pieces = [(g, s) for g, s in pieces if not g.is_empty and g.area > 0]
    if not pieces:
        return remove, [], []
    merged = shapely.unary_union([g for g, _ in pieces])
    parts = list(getattr(merged, "geoms", [merged]))
    polygons, scores = [], []
    for part in parts:
        if part.geom_type != "Polygon" or part.area <= 0:
            continue
        weights = [(part.intersection(g).area, s) for g, s in pieces if part.intersects(g)]
        total = sum(a for a, _ in weights)
        polygons.append(part)
        scores.append(sum(a * s for a, s in weights) / total if total > 0 else 0.0)
    return remove, polygons, scores


def _merged_attributes(plan: RunPlan, segmenter: Any, text: str, model_text: str,
                       threshold: float, polygons: list[Any], scores: list[float],
                       clicks: Sequence[Click]) -> list[dict[str, Any]]:
    """The output fields of each added polygon (``pixels`` from its area)."""
    from datetime import datetime, timezone

    from ..geo.vectorize import geodesic_areas_m2

    info = plan.info
    areas = geodesic_areas_m2(polygons, info.crs_wkt) if polygons else []
    pixel_area = abs(info.transform.a * info.transform.e - info.transform.b * info.transform.d)
    gsd = plan.gsd_m if plan.gsd_m is not None else math.sqrt(info.res_m[0] * info.res_m[1])
    common = {
        "prompt": text,
        "prompt_used": model_text,
        "model": str(getattr(segmenter, "name", None) or "custom"),
        "checkpoint_sha256": str(getattr(segmenter, "checkpoint_sha256", None) or ""),
        "source": info.name,
        "gsd_m": float(gsd),
        "threshold": threshold,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "clicks": format_clicks(clicks),
    }
    return [{**common, "score": round(score, 6), "area_m2": area,
             "pixels": int(round(g.area / pixel_area)) if pixel_area else 0}
            for g, score, area in zip(polygons, scores, areas, strict=True)]

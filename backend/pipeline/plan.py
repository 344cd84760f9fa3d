"""One place that validates a run and plans its cost before any pixel is read or predicted.

:func:`make_plan` turns an open raster + the checked options + what is known about the
segmenter into a :class:`RunPlan` (window, bands, working grid, tiles), and refuses runs beyond
the documented limits (:data:`MAX_TILES`, :data:`MAX_SECONDS`, the memory of the streaming
buffers) unless ``allow_large`` is set. ``segment_raster`` (API), ``validate_inputs`` (the CLI,
before it loads a model), the plugin's dock and the Processing algorithm all go through it, so
they accept and refuse the same runs with the same messages.

No torch; rasterio/shapely are imported inside the functions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError, ResourceError
from .grid import _Plan, _plan
from .options import _finite, _Options

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

    from ..geo.raster import PixelWindow, RasterInfo

__all__ = ["MAX_SECONDS", "MAX_TILES", "RunPlan", "check_not_an_input", "make_plan"]

MAX_TILES = 10_000
"""Model tiles a run may have without ``allow_large`` (CLI ``--allow-large``)."""

MAX_SECONDS = 4 * 3600.0
"""Estimated model time a run may need without ``allow_large`` (when the speed is known)."""

_BUFFER_FACTOR = 3  # float32 rows held while streaming: accumulator + resampling + strip copies


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, known before it starts.

    Attributes:
        info: The raster's georeferencing.
        window: Raster pixels to process.
        bands: 1-based bands used as R, G, B.
        gsd_m: Working resolution in m/px, None = native pixels.
        grid: Working grid placement (scales, processing span).
        tile_px, overlap_px: Tiling of the working grid.
        tiles: ``(rows, cols)`` of model tiles.
        seconds_per_tile: The segmenter's nominal model time per tile, when known.
        aoi_px: The AOI in raster pixel coordinates, or None.
    """

    info: RasterInfo
    window: PixelWindow
    bands: tuple[int, int, int]
    gsd_m: float | None
    grid: _Plan
    tile_px: int
    overlap_px: int
    tiles: tuple[int, int]
    seconds_per_tile: float | None
    aoi_px: Any = None
    bbox: Sequence[float] | None = None
    bbox_crs: Any = None

    @property
    def n_tiles(self) -> int:
        """Model tiles the run predicts."""
        return self.tiles[0] * self.tiles[1]

    @property
    def estimated_seconds(self) -> float | None:
        """Nominal model time (tiles x seconds per tile), or None when the speed is unknown."""
        return None if self.seconds_per_tile is None else self.n_tiles * self.seconds_per_tile

    @property
    def buffer_bytes(self) -> int:
        """Memory of the streaming buffers (one tile row of the working span, float32)."""
        rows = min(self.tile_px, self.grid.work_rows[1] - self.grid.work_rows[0])
        width = self.grid.work_cols[1] - self.grid.work_cols[0]
        return _BUFFER_FACTOR * 4 * rows * width


def tiles_on_axis(size: int, *, tile_px: int, overlap_px: int) -> int:
    """Number of tiles :func:`~backend.geo.tiling.tile_starts` places on an axis (O(1))."""
    last = max(size - tile_px, 0)
    return math.ceil(last / (tile_px - overlap_px)) + 1


def make_plan(
    dataset: DatasetReader,
    options: _Options,
    segmenter: Any,
    *,
    bbox: Sequence[float] | None,
    bbox_crs: Any,
    assume_crs: Any,
    source_name: str | None,
    aoi: Any = None,
    aoi_crs: Any = None,
    allow_large: bool = False,
    window: PixelWindow | None = None,
    work_span: tuple[tuple[int, int], tuple[int, int]] | None = None,
    concepts: Sequence[str] = (),
) -> RunPlan:
    """Validate the geometry of a run and plan its cost; nothing is read but metadata.

    Args:
        dataset: The open raster.
        options: Checked options.
        segmenter: Anything with optional ``image_size``, ``gsd_m`` and ``seconds_per_tile``
            (a loaded segmenter, or a description of one read from a checkpoint header).
        bbox: ``(minx, miny, maxx, maxy)`` or None (as for ``segment_raster``).
        bbox_crs: CRS of ``bbox``.
        assume_crs: CRS of a raster that has none.
        source_name: Name of the raster in messages and output.
        aoi: Area of interest (shapely geometry or WKT), or None.
        aoi_crs: CRS of ``aoi``; None = the raster's.
        allow_large: Run even beyond :data:`MAX_TILES` / :data:`MAX_SECONDS`.
        window: Raster pixels to process instead of the bbox's (a chunk of ``backend.batch``).
        work_span: Working-grid span ``((p0, p1), (q0, q1))`` to tile instead of the window's.
        concepts: Trained concepts the prompt names (lexicon keys); with ``gsd_m="auto"`` a
            segmenter's ``gsd_m_for(concepts)`` picks the working resolution.

    Raises:
        InputError, UnsupportedRasterError: Bad CRS, bbox, AOI, bands or tiling.
        ResourceError: The run exceeds a limit (the message gives the size, the estimated
            time and the fix).
    """
    from ..geo.raster import bbox_to_window, choose_bands, raster_info, resolve_crs
    from ..resources import check_fits

    crs = resolve_crs(dataset, assume_crs)
    info = raster_info(dataset, crs, name=source_name)
    aoi_px = None
    if aoi is not None:
        from ..geo.aoi import aoi_bounds, aoi_to_pixels, parse_aoi

        aoi_geometry = parse_aoi(aoi)
        if bbox is None:
            bbox, bbox_crs = aoi_bounds(aoi_geometry), aoi_crs
            if aoi_crs is None:
                _check_aoi_overlaps(info, aoi_geometry)
        aoi_px = aoi_to_pixels(aoi_geometry, aoi_crs, info)
    if window is None:
        window = bbox_to_window(info, bbox, bbox_crs)
    bands = choose_bands(info, options.bands)
    tile_px = options.tile_px or int(getattr(segmenter, "image_size", None) or 1024)
    overlap_px = tile_px // 8 if options.overlap_px is None else options.overlap_px
    if overlap_px >= tile_px:
        raise InputError(f"overlap_px={overlap_px} must be smaller than tile_px={tile_px}")
    gsd = options.gsd_m
    if gsd == "auto":  # the model's own: per concept of the prompt when the model says so
        gsd_for = getattr(segmenter, "gsd_m_for", None)
        gsd = gsd_for(concepts) if callable(gsd_for) else getattr(segmenter, "gsd_m", None)
    if gsd is not None and (not _finite(gsd) or gsd <= 0):
        raise InputError(f"segmenter gsd_m={gsd!r} must be > 0 or None")
    grid = _plan(info, window, gsd, tile_px, overlap_px, span=work_span)
    (p0, p1), (q0, q1) = grid.work_rows, grid.work_cols
    tiles = (
        tiles_on_axis(p1 - p0, tile_px=tile_px, overlap_px=overlap_px),
        tiles_on_axis(q1 - q0, tile_px=tile_px, overlap_px=overlap_px),
    )
    speed = getattr(segmenter, "seconds_per_tile", None)
    plan = RunPlan(
        info=info,
        window=window,
        bands=bands,
        gsd_m=None if gsd is None else float(gsd),
        grid=grid,
        tile_px=tile_px,
        overlap_px=overlap_px,
        tiles=tiles,
        seconds_per_tile=float(speed) if _finite(speed) and float(speed) > 0 else None,
        aoi_px=aoi_px,
        bbox=bbox,
        bbox_crs=bbox_crs,
    )
    if not allow_large:
        _check_limits(plan)
    check_fits(plan.buffer_bytes, "cpu", what=f"streaming {info.name} ({_size(plan)})")
    return plan


def _check_limits(plan: RunPlan) -> None:
    seconds = plan.estimated_seconds
    if plan.n_tiles <= MAX_TILES and (seconds is None or seconds <= MAX_SECONDS):
        return
    eta = "" if seconds is None else f", about {_duration(seconds)} of model time"
    gsd = "native pixels" if plan.gsd_m is None else f"{plan.gsd_m:g} m/px"
    raise ResourceError(
        f"this run needs {plan.n_tiles:,} tiles of {plan.tile_px} px ({_size(plan)} at {gsd}"
        f"{eta}); the limit is {MAX_TILES:,} tiles or {_duration(MAX_SECONDS)}. Choose a "
        "smaller extent or a coarser working resolution, or allow large runs to run it anyway "
        "(CLI --allow-large, Processing 'Allow large runs', API allow_large=True)"
    )


def _size(plan: RunPlan) -> str:
    rows = plan.grid.work_rows[1] - plan.grid.work_rows[0]
    cols = plan.grid.work_cols[1] - plan.grid.work_cols[0]
    return f"{rows:,} x {cols:,} working pixels"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _check_aoi_overlaps(info: RasterInfo, aoi_geometry: Any) -> None:
    """An AOI without ``aoi_crs`` is in the raster CRS: say so when it misses the raster."""
    from shapely.geometry import box

    from ..geo.raster import _raster_bounds

    if not aoi_geometry.intersects(box(*_raster_bounds(info))):
        minx, miny, maxx, maxy = aoi_geometry.bounds
        raise InputError(
            f"the AOI ({minx:.6g}, {miny:.6g}, {maxx:.6g}, {maxy:.6g}) does not overlap the "
            f"raster in the raster's CRS; if the AOI is in another CRS, give it with --aoi-crs "
            "(API: aoi_crs=...), e.g. --aoi-crs EPSG:4326"
        )


def check_not_an_input(
    out_path: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]]
) -> None:
    """Refuse an output that is (or resolves to) any input file, through links or case.

    The rule is :func:`backend.outputs.check_not_an_input`, shared by every writing command.

    Args:
        out_path: The output file.
        inputs: Every file the run reads (the raster and its sidecars / VRT sources).

    Raises:
        OutputError: ``out_path`` would replace an input.
    """
    from ..outputs import check_not_an_input as check

    check(out_path, inputs, option="output")

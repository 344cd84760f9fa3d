"""Georeferenced "segment by text": raster (+ bbox) + text -> polygons in the raster CRS.

The flow of :func:`segment_raster` (details and reasons in docs/pipeline.md):

1. Open the raster, resolve its CRS, turn the bbox (any CRS) into a pixel window.
2. Scale rule: resample the extent to the segmenter's working ground resolution on a grid
   anchored at the raster's pixel (0, 0) corner, so the same object lands on the same working
   pixels whatever the bbox or zoom.
3. Cover the extent with overlapping ``tile_px`` tiles, read each through a rasterio window,
   stretch it to uint8 RGB with statistics of the whole raster, and predict.
4. Stream: blend tiles (raised-cosine ramps) into an accumulator that holds only the rows of
   the current tile row; every finished band of rows is resampled back to the raster grid,
   nodata is zeroed, thresholded, and vectorised strip by strip; pieces that meet at strip
   seams are unioned. Memory depends on the extent's width, never on its area.
5. Attributes (score, geodesic area, provenance), then an atomic GeoPackage/GeoJSON write.

rasterio, shapely and pyproj are imported inside the functions (never torch), so importing
this module is cheap; :func:`warm_up` pays their start-up ahead of a query (the dock's preload),
and a run imports what it needs after its tiles in the background (:mod:`.prefetch`).
"""

from __future__ import annotations

from .api import segment_array, segment_raster, validate_inputs
from .blend import _accumulate  # noqa: F401  (tests import it from here)
from .prefetch import warm_up
from .result import FIELDS, SegmentResult

__all__ = [
    "FIELDS",
    "SegmentResult",
    "segment_array",
    "segment_raster",
    "validate_inputs",
    "warm_up",
]

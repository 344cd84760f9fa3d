"""Areas of interest: polygons (any CRS) that limit where results may appear. No torch.

The pipeline keeps only pixels whose centre lies inside the AOI (like nodata pixels, the rest
never becomes polygon), so polygons, scores and areas all describe the part inside the AOI.
The AOI is reprojected to the raster CRS with densified edges, then mapped to pixel space
through the inverse geotransform, where each strip is rasterised on demand (memory flat).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely
import shapely.affinity
import shapely.errors
from affine import Affine
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from ..errors import InputError
from .raster import RasterInfo

__all__ = ["aoi_bounds", "aoi_strip_mask", "aoi_to_pixels", "parse_aoi"]

_DENSIFY_PARTS = 64  # vertices added per AOI edge span before reprojecting


def parse_aoi(aoi: Any) -> BaseGeometry:
    """A polygonal shapely geometry from a shapely geometry or WKT text.

    Raises:
        InputError: Not a geometry, not polygonal, or empty.
    """
    geometry = aoi
    if isinstance(aoi, str):
        try:
            geometry = shapely.from_wkt(aoi)
        except (shapely.errors.ShapelyError, ValueError) as exc:
            raise InputError(
                f"aoi is not valid WKT ({exc}); pass a polygon such as 'POLYGON ((...))'"
            ) from exc
    if not isinstance(geometry, BaseGeometry):
        raise InputError(f"aoi must be a shapely polygon or WKT text, got {type(aoi).__name__}")
    geometry = shapely.make_valid(geometry)
    polygons = [g for g in getattr(geometry, "geoms", [geometry]) if g.area > 0]
    if geometry.is_empty or not polygons:
        raise InputError(
            f"aoi {shapely.to_wkt(geometry, rounding_precision=3)[:80]!r} has no area; "
            "select polygon features"
        )
    return shapely.unary_union(polygons)


def aoi_bounds(aoi: BaseGeometry) -> tuple[float, float, float, float]:
    """``(minx, miny, maxx, maxy)`` of the AOI in its own CRS (used as the bbox)."""
    minx, miny, maxx, maxy = aoi.bounds
    return (minx, miny, maxx, maxy)


def aoi_to_pixels(aoi: BaseGeometry, aoi_crs: Any, info: RasterInfo) -> BaseGeometry:
    """The AOI in raster pixel coordinates (column, row), reprojected with densified edges.

    Args:
        aoi: Polygonal geometry in ``aoi_crs``.
        aoi_crs: Its CRS; None means the raster CRS.
        info: The raster.

    Raises:
        InputError: Unknown CRS or a geometry that cannot be reprojected.
    """
    geometry = aoi
    if aoi_crs is not None:
        try:
            src = CRS.from_user_input(aoi_crs)
        except (CRSError, ValueError, TypeError) as exc:
            raise InputError(
                f"aoi_crs={aoi_crs!r} is not a CRS ({exc}); use e.g. 'EPSG:4326'"
            ) from exc
        dst = CRS.from_wkt(info.crs_wkt)
        if not src.equals(dst):
            minx, miny, maxx, maxy = geometry.bounds
            step = max(maxx - minx, maxy - miny) / _DENSIFY_PARTS
            if step > 0:
                geometry = shapely.segmentize(geometry, step)
            to_raster = Transformer.from_crs(src, dst, always_xy=True)

            def project(xy: np.ndarray) -> np.ndarray:
                x, y = to_raster.transform(xy[:, 0], xy[:, 1])
                return np.column_stack([x, y])

            geometry = shapely.transform(geometry, project)
            coords = shapely.get_coordinates(geometry)
            if not np.isfinite(coords).all():
                raise InputError(
                    f"aoi cannot be expressed in the raster CRS {info.crs}; check its CRS"
                )
    inverse: Affine = ~info.transform
    to_pixels = [inverse.a, inverse.b, inverse.d, inverse.e, inverse.c, inverse.f]
    return shapely.make_valid(shapely.affinity.affine_transform(geometry, to_pixels))


def aoi_strip_mask(
    aoi_px: BaseGeometry, row_off: int, col_off: int, height: int, width: int
) -> np.ndarray:
    """``(height, width)`` bool: True where the pixel centre lies inside the AOI.

    Args:
        aoi_px: The AOI in raster pixel coordinates (from :func:`aoi_to_pixels`).
        row_off: Raster row of the strip's first row.
        col_off: Raster column of the strip's first column.
        height: Strip height in pixels.
        width: Strip width in pixels.
    """
    from rasterio.features import geometry_mask

    minx, miny, maxx, maxy = aoi_px.bounds
    if (
        maxx <= col_off
        or minx >= col_off + width
        or maxy <= row_off
        or miny >= row_off + height
        or not all(math.isfinite(v) for v in (minx, miny, maxx, maxy))
    ):
        return np.zeros((height, width), dtype=bool)
    return geometry_mask(
        [aoi_px],
        out_shape=(height, width),
        transform=Affine.translation(col_off, row_off),
        invert=True,
    )

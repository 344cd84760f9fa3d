"""Example polygons and working-grid tiles for adapting a model to the user's imagery.

Reads a vector layer of example polygons (any CRS, reprojected to the raster's), each with its
text, and cuts square tiles of the raster at a working ground resolution together with their
rasterised masks. No torch: ``training.adapt`` builds its samples from these.

Example:
    >>> polys, notes = read_example_polygons("water.gpkg", crs_wkt=info.crs_wkt, text="water")
    >>> grid = work_grid(info, gsd_m=1.0)
    >>> rgb, valid = read_work_tile(reader, grid, row=0, col=0, size=256)
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from ..errors import InputError
from .raster import RasterInfo

logger = logging.getLogger(__name__)

__all__ = [
    "ExamplePolygon",
    "WorkGrid",
    "geometry_to_work_px",
    "rasterize_work",
    "read_area",
    "read_example_polygons",
    "read_work_tile",
    "work_grid",
]


@dataclass(frozen=True)
class ExamplePolygon:
    """One example: a polygon (in the raster's CRS, map units) and what it shows.

    Attributes:
        geometry: Polygon or MultiPolygon in the raster's CRS.
        text: The text taught for it (an attribute value, or the one text given for all).
        fid: Feature id in the source layer.
    """

    geometry: Any
    text: str
    fid: int


def _read_layer(
    path: str | os.PathLike[str], layer: str | int | None, what: str
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, list[np.ndarray]]:
    """``(meta, fids, wkb geometries, field arrays)`` of a vector layer, with clear errors."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    text = os.fspath(path)
    if not os.path.exists(text) and not text.startswith("/vsi"):
        raise InputError(f"{what} {text!r} does not exist; give a GeoPackage, shapefile, ...")
    try:
        meta, fids, geometry, fields = pyogrio.raw.read(text, layer=layer, return_fids=True)
    except (DataSourceError, DataLayerError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"cannot read {what} {text!r} ({first}); give a GeoPackage, shapefile or any "
            "OGR-readable polygon layer"
        ) from None
    return meta, fids, geometry, fields


def _reproject(geom: Any, project: Any) -> Any:
    """``geom`` with every coordinate passed through ``project(x, y) -> (x, y)``."""
    import shapely

    def apply(xy: np.ndarray) -> np.ndarray:
        x, y = project(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, apply)


def _transformer(src_crs: Any, crs_wkt: str, what: str) -> Any:
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    if not src_crs:
        raise InputError(f"{what} has no CRS; set one (e.g. in QGIS: Layer CRS) and try again")
    try:
        src = CRS.from_user_input(src_crs)
    except CRSError:
        raise InputError(f"{what} has an unreadable CRS {str(src_crs)[:60]!r}") from None
    dst = CRS.from_wkt(crs_wkt)
    if src.equals(dst):
        return None
    return Transformer.from_crs(src, dst, always_xy=True).transform


def read_example_polygons(
    path: str | os.PathLike[str],
    *,
    crs_wkt: str,
    layer: str | int | None = None,
    text_field: str | None = None,
    text: str | None = None,
    fids: Sequence[int] | None = None,
) -> tuple[list[ExamplePolygon], list[str]]:
    """Read example polygons, reprojected to ``crs_wkt``.

    Args:
        path: Vector file (GeoPackage, shapefile, GeoJSON, ...).
        crs_wkt: The raster's CRS.
        layer: Layer name or index (None = the first).
        text_field: Attribute holding each polygon's text (one of ``text_field`` / ``text``).
        text: One text for every polygon.
        fids: Keep only these feature ids (the selected features); None = all.

    Returns:
        ``(polygons, notes)``: the usable polygons (invalid ones repaired, empty and
        non-polygon geometries and empty texts skipped) and one note per kind of skip.

    Raises:
        InputError: Unreadable file, no CRS, a missing attribute, or no polygon at all.
    """
    import shapely

    what = f"example layer {os.fspath(path)!r}"
    if (text_field is None) == (text is None or not text.strip()):
        raise InputError(
            "give either one text for all examples (--text) or the attribute that holds each "
            "example's text (--text-field), not both and not neither"
        )
    meta, feature_ids, geometry, fields = _read_layer(path, layer, what)
    names = [str(n) for n in meta.get("fields", [])]
    values: list[Any]
    if text_field is not None:
        if text_field not in names:
            raise InputError(
                f"{what} has no attribute {text_field!r}; its attributes are "
                f"{', '.join(names) or 'none'}"
            )
        values = list(fields[names.index(text_field)])
    else:
        values = [text] * len(geometry)
    project = _transformer(meta.get("crs"), crs_wkt, what)
    keep = None if fids is None else {int(f) for f in fids}
    out: list[ExamplePolygon] = []
    skipped = {"not a polygon": 0, "empty text": 0}
    for fid, wkb, value in zip(feature_ids, geometry, values, strict=True):
        if keep is not None and int(fid) not in keep:
            continue
        geom = shapely.from_wkb(wkb) if wkb is not None else None
        if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            skipped["not a polygon"] += 1
            continue
        label = " ".join(str(value).split()) if value is not None else ""
        if not label:
            skipped["empty text"] += 1
            continue
        if project is not None:
            geom = _reproject(geom, project)
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
            geom = shapely.union_all(
                [g for g in getattr(geom, "geoms", [geom]) if g.geom_type.endswith("Polygon")]
            )
        if not geom.is_empty:
            out.append(ExamplePolygon(geom, label, int(fid)))
    notes = [f"{n} feature(s) skipped: {why}" for why, n in skipped.items() if n]
    if not out:
        chosen = "" if keep is None else f" among the {len(keep)} selected feature(s)"
        raise InputError(
            f"{what} has no polygon with a text{chosen}; digitise some example polygons "
            "(or select them) and try again"
        )
    return out, notes


def read_area(path: str | os.PathLike[str], *, crs_wkt: str) -> Any:
    """The union of the polygons of a vector file, reprojected to ``crs_wkt``.

    Raises:
        InputError: Unreadable file, no CRS or no polygon.
    """
    import shapely

    what = f"labelled-area layer {os.fspath(path)!r}"
    meta, _fids, geometry, _fields = _read_layer(path, None, what)
    parts = [g for g in shapely.from_wkb(geometry) if g is not None and not g.is_empty]
    parts = [shapely.make_valid(g) for g in parts if g.geom_type.endswith("Polygon")]
    if not parts:
        raise InputError(f"{what} has no polygon; draw the area that is fully labelled")
    area = shapely.union_all(parts)
    project = _transformer(meta.get("crs"), crs_wkt, what)
    return _reproject(area, project) if project is not None else area


@dataclass(frozen=True)
class WorkGrid:
    """The raster resampled to a working ground resolution (same origin and orientation).

    Attributes:
        transform: Working pixel -> map affine.
        height, width: Working grid size in pixels.
        scale_y, scale_x: Raster pixels per working pixel.
        gsd_m: Working resolution in m/px (None = the raster's own).
    """

    transform: Affine
    height: int
    width: int
    scale_y: float
    scale_x: float
    gsd_m: float | None


def work_grid(info: RasterInfo, gsd_m: float | None) -> WorkGrid:
    """The working grid of ``info`` at ``gsd_m`` m/px (None or within 0.5 % = native)."""
    if gsd_m is None:
        sx = sy = 1.0
    else:
        sx, sy = gsd_m / info.res_m[0], gsd_m / info.res_m[1]
        sx = 1.0 if abs(sx - 1.0) < 5e-3 else sx
        sy = 1.0 if abs(sy - 1.0) < 5e-3 else sy
    height = max(1, math.floor(info.height / sy + 1e-9))
    width = max(1, math.floor(info.width / sx + 1e-9))
    return WorkGrid(info.transform @ Affine.scale(sx, sy), height, width, sy, sx, gsd_m)


def geometry_to_work_px(geometry: Any, grid: WorkGrid) -> Any:
    """A map-unit geometry in working-grid pixel coordinates (x = column, y = row)."""
    from shapely import affinity

    inv = ~grid.transform
    return affinity.affine_transform(geometry, [inv.a, inv.b, inv.d, inv.e, inv.c, inv.f])


def rasterize_work(geometries: Sequence[Any], row: int, col: int, size: int) -> np.ndarray:
    """``(size, size)`` bool: pixel centres of the tile at ``(row, col)`` inside any geometry.

    Args:
        geometries: Polygons in working-grid pixel coordinates.
        row: Top row of the tile (working pixels).
        col: Left column of the tile (working pixels).
        size: Tile side in pixels.
    """
    from rasterio.features import rasterize

    shapes = [(g, 1) for g in geometries if g is not None and not g.is_empty]
    if not shapes:
        return np.zeros((size, size), dtype=bool)
    out = rasterize(
        shapes, out_shape=(size, size), transform=Affine.translation(col, row), fill=0,
        dtype="uint8",
    )
    return out.astype(bool)


def read_work_tile(
    reader: Any, grid: WorkGrid, row: int, col: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Read a square working-grid tile; the part outside the raster is invalid (black).

    Args:
        reader: A :class:`~backend.geo.tile_reader.TileReader` built with the grid's scales.
        grid: The working grid.
        row: Top row (working pixels; may be negative or reach past the grid).
        col: Left column (likewise).
        size: Tile side in pixels.

    Returns:
        ``(rgb (size, size, 3) uint8, valid (size, size) bool)``.
    """
    rgb = np.zeros((size, size, 3), dtype=np.uint8)
    valid = np.zeros((size, size), dtype=bool)
    r0, c0 = max(0, row), max(0, col)
    r1, c1 = min(grid.height, row + size), min(grid.width, col + size)
    if r1 <= r0 or c1 <= c0:
        return rgb, valid
    part, part_valid = reader.read_rgb(r0, c0, r1 - r0, c1 - c0)
    rgb[r0 - row : r1 - row, c0 - col : c1 - col] = part
    valid[r0 - row : r1 - row, c0 - col : c1 - col] = True if part_valid is None else part_valid
    return rgb, valid

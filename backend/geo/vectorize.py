"""Masks to polygons: trace pixel edges, merge pieces across strip seams, measure true areas.

The pipeline vectorises in *pixel space* (integer coordinates, exact) strip by strip; pieces
that touch a seam between strips are merged by a shapely union, then the merged polygons are
mapped to the raster CRS with the geotransform. No torch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from shapely import affinity
from shapely.geometry import MultiPolygon, Polygon, shape

__all__ = [
    "Piece",
    "SeamMerger",
    "geodesic_areas_m2",
    "mask_to_polygons",
    "pixel_to_map",
    "strip_pieces",
]

logger = logging.getLogger(__name__)


def mask_to_polygons(
    mask: np.ndarray,
    transform: Affine,
    *,
    min_area_px: int = 0,
    simplify_tolerance: float = 0.0,
) -> list[Polygon]:
    """Polygonise the ``True`` pixels of ``mask`` into polygons in map coordinates.

    Args:
        mask: ``(H, W)`` bool array.
        transform: Pixel-to-map affine transform of ``mask`` (rasterio convention).
        min_area_px: Drop polygons covering fewer pixels than this.
        simplify_tolerance: Douglas-Peucker tolerance in map units; ``0`` keeps all vertices.

    Returns:
        One polygon per 4-connected region, holes kept, vertices on pixel edges, in the CRS
        of ``transform``.
    """
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise ValueError(f"mask must be (H, W) bool, got shape {mask.shape} dtype {mask.dtype}")
    pixel_area = abs(transform.a * transform.e - transform.b * transform.d)
    polygons: list[Polygon] = []
    for geometry, _ in features.shapes(mask.view(np.uint8), mask=mask, transform=transform):
        polygon = shape(geometry)
        if polygon.area < min_area_px * pixel_area:
            continue
        if simplify_tolerance > 0:
            polygon = polygon.simplify(simplify_tolerance, preserve_topology=True)
        polygons.append(polygon)
    return polygons


@dataclass
class Piece:
    """A polygon (pixel coordinates) with the statistics needed to merge it.

    Attributes:
        geometry: Polygon in global pixel coordinates (x = column, y = row).
        prob_sum: Sum of the probabilities of its pixels.
        pixels: Number of its pixels.
    """

    geometry: Polygon | MultiPolygon
    prob_sum: float
    pixels: int

    @property
    def score(self) -> float:
        """Mean probability inside."""
        return self.prob_sum / self.pixels if self.pixels else 0.0


def strip_pieces(mask: np.ndarray, prob: np.ndarray, row_off: int, col_off: int) -> list[Piece]:
    """Polygonise one strip in global pixel coordinates, with per-polygon probability sums.

    Args:
        mask: ``(H, W)`` bool, True above the threshold.
        prob: ``(H, W)`` float32 probabilities of the same pixels.
        row_off: Global pixel row of ``mask[0, 0]``.
        col_off: Global pixel column of ``mask[0, 0]``.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
    # only the bounding box of the True pixels is traced and burnt: the same polygons (integer
    # pixel coordinates), without scanning the empty rows and columns of a sparse strip
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    mask, prob = mask[r0:r1, c0:c1], prob[r0:r1, c0:c1]
    to_pixels = Affine.translation(col_off + c0, row_off + r0)
    polygons = [
        shape(geometry)
        for geometry, _ in features.shapes(mask.view(np.uint8), mask=mask, transform=to_pixels)
    ]
    # probability sums of all polygons at once: burn each polygon's index (holes excluded) into
    # one label image and sum per label (one rasterize per strip, not one per polygon); the
    # labels cover exactly the True pixels, so only those are summed (same order, same sums)
    labels = features.rasterize(
        ((polygon, i + 1) for i, polygon in enumerate(polygons)),
        out_shape=mask.shape,
        transform=to_pixels,
        fill=0,
        dtype=np.int32,
    )
    sums = np.bincount(labels[mask], weights=prob[mask], minlength=len(polygons) + 1)
    return [
        Piece(polygon, float(sums[i + 1]), int(round(polygon.area)))
        for i, polygon in enumerate(polygons)
    ]


@dataclass
class _Group:
    pieces: list[Piece] = field(default_factory=list)


class SeamMerger:
    """Joins polygon pieces of consecutive horizontal strips into whole polygons.

    Feed the strips top to bottom with :meth:`add_strip`; each call returns the polygons that
    can no longer grow (they do not reach the strip's bottom seam). Pieces that share a
    stretch of seam (not just a corner, matching 4-connectivity) are unioned and their
    probability sums and pixel counts added, so an object crossing any number of strips or
    model tiles comes out as ONE polygon.
    """

    def __init__(self) -> None:
        self._open: list[tuple[Piece, _Group]] = []  # pieces touching the last bottom seam
        self._seam_y: int | None = None

    def add_strip(
        self, pieces: Sequence[Piece], top: int, bottom: int, *, last: bool
    ) -> list[Piece]:
        """Add the pieces of the strip covering rows ``[top, bottom)``; return finished ones."""
        groups: dict[int, _Group] = {}
        open_groups: dict[int, _Group] = {id(g): g for _, g in self._open}
        parent: dict[int, int] = {}

        def find(key: int) -> int:
            while parent.get(key, key) != key:
                key = parent[key]
            return key

        piece_group: list[_Group] = []
        seam_pieces = [p for p, _ in self._open]
        tree = shapely.STRtree([p.geometry for p in seam_pieces]) if seam_pieces else None
        for piece in pieces:
            group = _Group([piece])
            groups[id(group)] = group
            piece_group.append(group)
            if tree is None or self._seam_y != top or piece.geometry.bounds[1] != top:
                continue
            for idx in tree.query(piece.geometry, predicate="intersects"):
                other, other_group = self._open[int(idx)]
                shared = shapely.intersection(piece.geometry, other.geometry)
                if shared.length > 0:  # a shared edge, not just a corner point
                    a, b = find(id(group)), find(id(other_group))
                    if a != b:
                        parent[a] = b
        all_groups = {**open_groups, **groups}
        merged: dict[int, _Group] = {}
        for key, group in all_groups.items():
            root = find(key)
            merged.setdefault(root, _Group()).pieces.extend(group.pieces)
        # a merged group stays open when any of its pieces touches this strip's bottom seam
        new_open: list[tuple[Piece, _Group]] = []
        finished: list[Piece] = []
        for group in merged.values():
            touching = [] if last else [p for p in group.pieces if p.geometry.bounds[3] == bottom]
            if touching:
                new_open.extend((p, group) for p in touching)
            else:
                finished.extend(_union(group.pieces))
        self._open = new_open
        self._seam_y = bottom
        return finished


def _union(pieces: list[Piece]) -> list[Piece]:
    if len(pieces) == 1:
        return pieces
    geometry = shapely.union_all([p.geometry for p in pieces])
    prob_sum = sum(p.prob_sum for p in pieces)
    pixels = sum(p.pixels for p in pieces)
    if isinstance(geometry, Polygon):
        return [Piece(geometry, prob_sum, pixels)]
    # pieces joined through shared edges always union to one polygon; be defensive anyway
    logger.warning("seam merge produced %s; splitting it", geometry.geom_type)
    parts = [g for g in getattr(geometry, "geoms", []) if isinstance(g, Polygon)]
    total = sum(g.area for g in parts) or 1.0
    return [Piece(g, prob_sum * g.area / total, int(round(g.area))) for g in parts]


def pixel_to_map(geometries: Sequence[Polygon], transform: Affine) -> list[Polygon]:
    """Map polygons from global pixel coordinates to map coordinates (exact affine)."""
    matrix = [transform.a, transform.b, transform.d, transform.e, transform.c, transform.f]
    return [affinity.affine_transform(g, matrix) for g in geometries]


def geodesic_areas_m2(geometries: Sequence[Polygon], crs_wkt: str) -> list[float]:
    """True ground area (m^2) of each polygon, on the CRS's ellipsoid (pyproj ``Geod``).

    Coordinates are converted to the CRS's own geographic CRS, so this is right for
    projected CRSs (including Mercator, whose planar areas are far off) and geographic ones.
    A CRS without a datum (local/engineering) falls back to the planar area in its units.
    """
    from pyproj import CRS, Transformer

    crs = CRS.from_wkt(crs_wkt)
    geodetic = crs.geodetic_crs
    geod = crs.get_geod()
    if geodetic is None or geod is None:
        factor = 1.0
        if crs.axis_info and crs.axis_info[0].unit_conversion_factor:
            factor = crs.axis_info[0].unit_conversion_factor
        return [g.area * factor * factor for g in geometries]
    to_lonlat = Transformer.from_crs(crs, geodetic, always_xy=True)

    def project(coords: np.ndarray) -> np.ndarray:
        lon, lat = to_lonlat.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    areas: list[float] = []
    for geometry in geometries:
        # CCW shells and CW holes: Geod subtracts the holes only with this orientation
        lonlat = shapely.orient_polygons(shapely.transform(geometry, project))
        area, _ = geod.geometry_area_perimeter(lonlat)
        areas.append(abs(float(area)) if math.isfinite(area) else float("nan"))
    return areas

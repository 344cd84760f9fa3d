"""Objects across chunk borders: join the pieces of one raster's chunks into whole polygons.

Inside a chunk the pipeline already joins pieces across its strip seams
(``backend.geo.vectorize.SeamMerger``). Pieces that touch an inner border of a chunk's core
are kept in exact integer pixel coordinates; here, per raster and query, the pieces of
*different* chunks that share a stretch of border (an edge, not a corner: 4-connectivity, as
inside a raster) are unioned with the same ``_union`` the seam merger uses, their probability
sums and pixel counts added. Cores never overlap, so nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .chunkfile import ChunkData

__all__ = ["Feature", "merge_chunks"]


@dataclass
class Feature:
    """A whole polygon of one raster: geometry in the raster CRS and its statistics."""

    geometry: Any
    score: float
    pixels: int
    area_m2: float


def merge_chunks(
    chunks: Sequence[ChunkData], transform: Sequence[float], crs_wkt: str
) -> list[Feature]:
    """Whole polygons of one raster and query from its chunks (in chunk order).

    Args:
        chunks: The raster's chunk results for one query, in chunk (row-major) order.
        transform: The raster's pixel-to-map affine ``(a, b, c, d, e, f)``.
        crs_wkt: The raster's CRS (for geodesic areas of joined polygons).

    Returns:
        Features in a deterministic order: by the first chunk and position of their pieces.
    """
    import shapely
    from affine import Affine

    from ..geo.vectorize import Piece, _union, geodesic_areas_m2, pixel_to_map

    slots: list[tuple[tuple[int, int], Feature | None]] = []  # (order key, finished feature)
    pieces: list[tuple[tuple[int, int], int, Piece, Feature]] = []  # border pieces
    for k, chunk in enumerate(chunks):
        border_index = 0
        for i in range(len(chunk.score)):
            feature = Feature(
                chunk.map_geoms[i],
                float(chunk.score[i]),
                int(chunk.pixels[i]),
                float(chunk.area_m2[i]),
            )
            if not chunk.border[i]:
                slots.append(((k, i), feature))
                continue
            px = chunk.px_geoms[border_index]
            border_index += 1
            pieces.append(
                ((k, i), k, Piece(px, feature.score * feature.pixels, feature.pixels), feature)
            )
    if pieces:
        geoms = np.asarray([p[2].geometry for p in pieces], dtype=object)
        tree = shapely.STRtree(geoms)
        left, right = tree.query(geoms, predicate="intersects")
        keep = (left < right) & (
            np.array([p[1] for p in pieces])[left] != np.array([p[1] for p in pieces])[right]
        )
        left, right = left[keep], right[keep]
        parent = list(range(len(pieces)))

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        if left.size:
            shared = shapely.length(shapely.intersection(geoms[left], geoms[right]))
            for a, b, length in zip(left, right, shared, strict=True):
                if length > 0:  # a shared edge, not just a corner point
                    ra, rb = find(int(a)), find(int(b))
                    if ra != rb:
                        parent[max(ra, rb)] = min(ra, rb)
        groups: dict[int, list[int]] = {}
        for i in range(len(pieces)):
            groups.setdefault(find(i), []).append(i)
        joined: list[tuple[tuple[int, int], Piece]] = []
        for root, members in groups.items():
            if len(members) == 1:
                slots.append((pieces[root][0], pieces[root][3]))
                continue
            for piece in _union([pieces[m][2] for m in members]):
                joined.append((pieces[root][0], piece))
        if joined:
            matrix = Affine(*transform[:6])
            polygons = pixel_to_map([p.geometry for _, p in joined], matrix)
            areas = geodesic_areas_m2(polygons, crs_wkt)
            for (key, piece), polygon, area in zip(joined, polygons, areas, strict=True):
                slots.append((key, Feature(polygon, round(piece.score, 6), piece.pixels, area)))
    slots.sort(key=lambda s: s[0])
    return [f for _, f in slots if f is not None]

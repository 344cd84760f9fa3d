"""Tiles for an adaptation: where they go, the spatial hold-out, and their masks.

All geometry is in working-grid pixels of each raster (x = column, y = row). The examples'
area is split along its longer axis: a strip at the far end holding ``holdout_fraction`` of
the examples' area is the **hold-out zone**, the rest the **training zone**. A training tile
only shows pixels of the training zone (anything else is painted with the tile's mean colour
and is background), a hold-out tile only pixels of the hold-out zone, so no pixel of the
hold-out is ever seen in training.

With a fully labelled area the zones are cut out of it and every pixel in it that no example
covers is background. Without one, training tiles are centred on the examples (what no polygon
covers there is taken as background) plus background tiles at least half a tile away from
every example, and the hold-out is scored only near its examples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["MIN_EXAMPLE_PX", "RasterExamples", "Tile", "Zones", "sample_tiles", "split_holdout"]

MIN_EXAMPLE_PX = 12.0
"""Examples smaller than this many working pixels are skipped (with a warning)."""

_MIN_ZONE_SHARE = 0.05  # tiles with less of their own zone than this are dropped


@dataclass
class Tile:
    """One tile at the working resolution.

    Attributes:
        image: ``(S, S, 3)`` uint8; pixels outside ``zone`` painted with the mean colour.
        zone: ``(S, S)`` bool, the pixels that belong to this tile's split (and are valid).
        masks: Model text -> ``(S, S)`` bool target (inside ``zone`` only).
        raster: Index of the raster.
        row, col: Top-left working-grid pixel.
        split: ``"train"`` or ``"holdout"``.
    """

    image: np.ndarray
    zone: np.ndarray
    masks: dict[str, np.ndarray]
    raster: int
    row: int
    col: int
    split: str


@dataclass
class Zones:
    """The spatial split of one raster (working-grid pixels).

    Attributes:
        train: Where training tiles may show pixels.
        holdout: Where the hold-out is scored (never shown in training).
        axis: ``"x"`` (columns) or ``"y"`` (rows): the axis the strip was cut along.
        cut: Coordinate of the cut on that axis.
    """

    train: Any
    holdout: Any
    axis: str
    cut: float


@dataclass
class RasterExamples:
    """The examples of one raster, ready for sampling.

    Attributes:
        index: Raster index.
        reader: Reads working-grid tiles (``read_work_tile(reader, grid, ...)``).
        grid: The working grid (``backend.geo.examples.WorkGrid``).
        polygons: ``(geometry in working pixels, model text)`` pairs (inside the grid).
        area: The fully labelled area in working pixels, or None.
    """

    index: int
    reader: Any
    grid: Any
    polygons: list[tuple[Any, str]]
    area: Any = None
    zones: Zones | None = field(default=None)


def _half_plane(axis: str, lo: float, hi: float, frame: Any) -> Any:
    from shapely.geometry import box

    x0, y0, x1, y1 = frame.bounds
    return box(lo, y0, hi, y1) if axis == "x" else box(x0, lo, x1, hi)


def split_holdout(polygons: Sequence[Any], region: Any, fraction: float) -> Zones:
    """Cut ``region`` into a training zone and a hold-out strip at the far end of its axis.

    Args:
        polygons: Example geometries (working pixels).
        region: Where examples and background live (the labelled area or the grid frame).
        fraction: Share of the examples' area in the hold-out strip.

    Returns:
        The :class:`Zones`.

    Raises:
        InputError: The examples cannot be split (no area on one side).
    """
    import shapely

    union = shapely.union_all(list(polygons))
    x0, y0, x1, y1 = union.bounds
    axis = "x" if (x1 - x0) >= (y1 - y0) else "y"
    lo, hi = (x0, x1) if axis == "x" else (y0, y1)
    big = region.union(union).envelope.buffer(1.0)
    total = union.area

    def beyond(c: float) -> float:
        return union.intersection(_half_plane(axis, c, hi + 1.0, big)).area / total

    a, b = lo, hi
    for _ in range(40):  # bisection: beyond() falls from 1 to 0 over [lo, hi]
        mid = 0.5 * (a + b)
        a, b = (mid, b) if beyond(mid) > fraction else (a, mid)
    cut = 0.5 * (a + b)
    ex0, ey0, ex1, ey1 = big.bounds
    far = ex1 if axis == "x" else ey1
    near = ex0 if axis == "x" else ey0
    holdout = region.intersection(_half_plane(axis, cut, far + 1.0, big))
    train = region.intersection(_half_plane(axis, near - 1.0, cut, big))
    if union.intersection(train).area <= 0 or union.intersection(holdout).area <= 0:
        raise InputError(
            "the examples cannot be split into a training part and a spatial hold-out; "
            "draw examples over a larger area (at least two places)"
        )
    return Zones(train, holdout, axis, cut)


def _random_point(geom: Any, rng: np.random.Generator) -> tuple[float, float]:
    from shapely.geometry import Point

    x0, y0, x1, y1 = geom.bounds
    for _ in range(100):
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if geom.contains(Point(x, y)):
            return x, y
    p = geom.representative_point()
    return p.x, p.y


def _train_centres(
    ex: RasterExamples, zones: Zones, n: int, size: int, rng: np.random.Generator
) -> tuple[list[tuple[float, float]], list[str]]:
    """Tile centres: on the training examples, plus background (area or away from examples)."""
    import shapely
    from shapely.geometry import Point

    parts = [g.intersection(zones.train) for g, _ in ex.polygons]
    parts = [g for g in parts if not g.is_empty and g.area > 0]
    notes: list[str] = []
    n_pos = max(1, (n + 1) // 2 if ex.area is not None else (3 * n + 3) // 4)
    weights = np.sqrt(np.array([g.area for g in parts]))
    picks = rng.choice(len(parts), size=n_pos, p=weights / weights.sum())
    centres = [_random_point(parts[int(k)], rng) for k in picks]
    if ex.area is not None:
        centres += [_random_point(zones.train, rng) for _ in range(n - n_pos)]
        return centres, notes
    examples = shapely.union_all([g for g, _ in ex.polygons])
    x0, y0, x1, y1 = zones.train.bounds
    found = 0
    for _ in range(50 * (n - n_pos)):
        if found >= n - n_pos:
            break
        p = Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
        if zones.train.contains(p) and p.distance(examples) >= size / 2:
            centres.append((p.x, p.y))
            found += 1
    if found < n - n_pos:
        notes.append(f"only {found} background tile(s) found away from the examples in raster "
                     f"{ex.index + 1}: everything near the examples that no polygon covers is "
                     "taken as background")
    return centres, notes


def _holdout_origins(ex: RasterExamples, zone: Any, size: int, limit: int,
                     rng: np.random.Generator) -> list[tuple[int, int]]:
    """Top-left corners of a tile grid over ``zone`` (at most ``limit``, seeded pick)."""
    from shapely.geometry import box

    x0, y0, x1, y1 = zone.bounds
    out = []
    for row in range(int(np.floor(y0)), int(np.ceil(y1)), size):
        for col in range(int(np.floor(x0)), int(np.ceil(x1)), size):
            if zone.intersects(box(col, row, col + size, row + size)):
                out.append((row, col))
    if len(out) > limit:
        keep = sorted(rng.choice(len(out), size=limit, replace=False).tolist())
        out = [out[k] for k in keep]
    return out


def _make_tile(ex: RasterExamples, zone_geom: Any, row: int, col: int, size: int,
               split: str, texts: Sequence[str]) -> Tile | None:
    from backend.geo.examples import rasterize_work, read_work_tile

    rgb, valid = read_work_tile(ex.reader, ex.grid, row, col, size)
    zone = rasterize_work([zone_geom], row, col, size) & valid
    if zone.mean() < _MIN_ZONE_SHARE:
        return None
    image = rgb.copy()
    image[~zone] = rgb[zone].reshape(-1, 3).mean(0).round().astype(np.uint8)
    masks = {}
    for text in texts:
        geoms = [g for g, t in ex.polygons if t == text]
        masks[text] = rasterize_work(geoms, row, col, size) & zone
    return Tile(image, zone, masks, ex.index, row, col, split)


def sample_tiles(
    examples: Sequence[RasterExamples], *, size: int, fraction: float, max_tiles: int,
    seed: int,
) -> tuple[list[Tile], list[Tile], list[str]]:
    """Training and hold-out tiles of every raster.

    Args:
        examples: Per raster, the examples (working pixels) and readers.
        size: Tile side in working pixels (the model's input size).
        fraction: Hold-out share of the examples' area.
        max_tiles: Training tiles per raster (the hold-out gets at most half as many).
        seed: Placement seed.

    Returns:
        ``(train tiles, hold-out tiles, notes for the user)``.

    Raises:
        InputError: No usable tile (examples too small or off the raster's valid pixels).
    """
    from shapely.geometry import box

    train: list[Tile] = []
    holdout: list[Tile] = []
    notes: list[str] = []
    for ex in examples:
        rng = np.random.default_rng([seed, ex.index])
        frame = box(0, 0, ex.grid.width, ex.grid.height)
        region = frame if ex.area is None else ex.area.intersection(frame)
        geoms = [g for g, _ in ex.polygons]
        ex.zones = zones = split_holdout(geoms, region, fraction)
        texts = sorted({t for _, t in ex.polygons})
        centres, more = _train_centres(ex, zones, max_tiles, size, rng)
        notes += more
        for cx, cy in centres:
            row, col = int(round(cy - size / 2)), int(round(cx - size / 2))
            tile = _make_tile(ex, zones.train, row, col, size, "train", texts)
            if tile is not None:
                train.append(tile)
        scored = zones.holdout
        if ex.area is None:  # score only near the held-out examples
            import shapely

            near = shapely.union_all([g.buffer(size / 4) for g in geoms])
            scored = zones.holdout.intersection(near)
        for row, col in _holdout_origins(ex, scored, size, max(1, max_tiles // 2), rng):
            tile = _make_tile(ex, scored, row, col, size, "holdout", texts)
            if tile is not None:
                holdout.append(tile)
    if not train or not holdout:
        raise InputError(
            "no usable tile: the examples lie on no-data pixels or are too small at the working "
            "resolution; draw larger examples on valid pixels"
        )
    return train, holdout, notes

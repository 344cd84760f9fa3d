"""Raster access for the pipeline: open, georeference, window, bands.

Reading tiles is in :mod:`.tile_reader`, the stretch in :mod:`.radiometry`, in-memory pixels in
:mod:`.inmemory` (their names are still importable from here).

Everything here reads through rasterio *windows*: no function reads more than the window it
is asked for (the radiometric statistics use one decimated read of at most about a million
pixels per band). No torch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import CRSError, RasterioError, RasterioIOError
from rasterio.io import DatasetReader

from ..errors import InputError, RasterReadError, UnsupportedRasterError

__all__ = [
    "GDAL_CACHE_MB",
    "PixelWindow",
    "RasterInfo",
    "bbox_to_window",
    "choose_bands",
    "ground_resolution_m",
    "open_raster",
    "resolve_crs",
]

logger = logging.getLogger(__name__)

GDAL_CACHE_MB = 32
"""GDAL block cache used while the pipeline reads (MiB): bounded so memory stays flat."""


@dataclass(frozen=True)
class PixelWindow:
    """Integer pixel window of the raster: rows ``[row_off, row_off + height)``, same for cols."""

    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def row_stop(self) -> int:
        """One past the last row."""
        return self.row_off + self.height

    @property
    def col_stop(self) -> int:
        """One past the last column."""
        return self.col_off + self.width


@dataclass(frozen=True)
class RasterInfo:
    """What the pipeline needs to know about an open raster.

    Attributes:
        name: File name (or the caller's name for in-memory input), for provenance.
        width, height: Size in pixels.
        count: Number of bands.
        dtypes: Data type of each band.
        crs: The raster's CRS (or the assumed one).
        transform: Pixel-to-map affine (may be rotated or sheared).
        has_mask: True when some band has nodata, an alpha band or a mask band.
        colorinterp: Colour interpretation of each band (``"red"``, ``"alpha"``, ...).
        res_m: Ground length in metres of one pixel step along columns and along rows,
            measured geodesically at the raster centre (true also for geographic CRSs).
    """

    name: str
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]
    crs: CRS
    transform: Affine
    has_mask: bool
    colorinterp: tuple[str, ...]
    res_m: tuple[float, float]

    @property
    def crs_wkt(self) -> str:
        """The CRS as WKT."""
        return self.crs.to_wkt()

    @property
    def full_window(self) -> PixelWindow:
        """The whole raster."""
        return PixelWindow(0, 0, self.height, self.width)


def _looks_like_gdal_path(path: str) -> bool:
    return path.startswith("/vsi") or (":" in path and not os.path.splitdrive(path)[0])


@contextlib.contextmanager
def open_raster(path: str | os.PathLike[str]) -> Iterator[DatasetReader]:
    """Open a GDAL-readable raster for reading, with clear errors.

    Raises:
        RasterReadError: The file is missing or GDAL cannot read it as a raster.
        UnsupportedRasterError: It has no bands (e.g. a container of subdatasets).
    """
    text = os.fspath(path)
    if not _looks_like_gdal_path(text) and not Path(text).is_file():
        what = "is a folder, not a raster file" if Path(text).is_dir() else "does not exist"
        raise RasterReadError(
            f"raster {text!r} {what}; give the path of a GeoTIFF (or any GDAL raster)"
        )
    try:
        dataset = rasterio.open(text)
    except RasterioIOError as exc:
        raise RasterReadError(
            f"cannot read {text!r} as a raster ({_first_line(exc)}); give a GeoTIFF or any "
            "GDAL-readable raster"
        ) from exc
    try:
        if dataset.count == 0:
            raise UnsupportedRasterError(
                f"raster {text!r} has no bands (is it a container of subdatasets? "
                f"{', '.join(dataset.subdatasets[:3]) or 'none'}); open one band set instead"
            )
        yield dataset
    finally:
        dataset.close()


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def resolve_crs(dataset: DatasetReader, assume_crs: Any = None) -> CRS:
    """The CRS to use: the raster's own, else ``assume_crs``.

    Raises:
        UnsupportedRasterError: No CRS in the raster and none assumed, or no geotransform.
        InputError: ``assume_crs`` is not a valid CRS.
    """
    name = dataset.name
    if dataset.transform.is_identity and dataset.crs is None:
        hint = " (it has GCPs/RPCs only: warp it first, e.g. gdalwarp)" if dataset.gcps[0] else ""
        raise UnsupportedRasterError(
            f"raster {name!r} is not georeferenced: no geotransform{hint}; "
            "georeference it (e.g. gdal_translate -a_ullr/-a_srs) before segmenting"
        )
    if dataset.crs is not None:
        if assume_crs is not None:
            logger.warning("raster %s has a CRS; ignoring assume_crs=%r", name, assume_crs)
        return dataset.crs
    if assume_crs is None:
        raise UnsupportedRasterError(
            f"raster {name!r} has no CRS; pass assume_crs (CLI: --assume-crs EPSG:N) with the "
            "CRS its coordinates are in, or set it with gdal_edit.py -a_srs"
        )
    try:
        return CRS.from_user_input(assume_crs)
    except (CRSError, ValueError, TypeError) as exc:
        raise InputError(
            f"assume_crs={assume_crs!r} is not a CRS ({_first_line(exc)}); use e.g. 'EPSG:32633'"
        ) from exc


def ground_resolution_m(crs: CRS, transform: Affine, row: float, col: float) -> tuple[float, float]:
    """Geodesic ground length (m) of one pixel step along columns and rows at ``(row, col)``.

    Measured through rasterio and Vincenty's formula (:func:`backend.geo.geodesy.pixel_steps_m`,
    no pyproj import) when the CRS has a degree-based geographic base; otherwise with pyproj.
    """
    from .geodesy import pixel_steps_m

    steps = pixel_steps_m(crs, transform, row, col)
    if steps is not None and all(s > 0 for s in steps):
        return float(steps[0]), float(steps[1])
    from pyproj import CRS as ProjCRS
    from pyproj import Transformer

    pcrs = ProjCRS.from_wkt(crs.to_wkt())
    points = [transform @ (col, row), transform @ (col + 1, row), transform @ (col, row + 1)]
    geodetic = pcrs.geodetic_crs
    geod = pcrs.get_geod()
    if geodetic is None or geod is None:  # engineering / local CRS: trust the linear unit
        factor = _linear_units_factor(crs)
        (x0, y0), (x1, y1), (x2, y2) = points
        return math.hypot(x1 - x0, y1 - y0) * factor, math.hypot(x2 - x0, y2 - y0) * factor
    to_lonlat = Transformer.from_crs(pcrs, geodetic, always_xy=True)
    lon, lat = to_lonlat.transform([p[0] for p in points], [p[1] for p in points])
    _, _, dist_x = geod.inv(lon[0], lat[0], lon[1], lat[1])
    _, _, dist_y = geod.inv(lon[0], lat[0], lon[2], lat[2])
    if not (math.isfinite(dist_x) and math.isfinite(dist_y)) or dist_x <= 0 or dist_y <= 0:
        raise UnsupportedRasterError(
            f"cannot measure the ground pixel size of this raster in its CRS ({crs}); "
            "check the CRS and geotransform"
        )
    return float(dist_x), float(dist_y)


def _linear_units_factor(crs: CRS) -> float:
    try:
        return float(crs.linear_units_factor[1])
    except (CRSError, ValueError, TypeError):
        return 1.0


def raster_info(dataset: DatasetReader, crs: CRS, *, name: str | None = None) -> RasterInfo:
    """Collect :class:`RasterInfo` for an open dataset whose CRS was resolved to ``crs``."""
    flags = dataset.mask_flag_enums
    has_mask = any(band_flags != [MaskFlags.all_valid] for band_flags in flags)
    transform = dataset.transform
    res_m = ground_resolution_m(crs, transform, dataset.height / 2, dataset.width / 2)
    return RasterInfo(
        name=name or Path(dataset.name).name,
        width=dataset.width,
        height=dataset.height,
        count=dataset.count,
        dtypes=tuple(dataset.dtypes),
        crs=crs,
        transform=transform,
        has_mask=has_mask,
        colorinterp=tuple(ci.name for ci in dataset.colorinterp),
        res_m=res_m,
    )


def _check_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in bbox)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bbox={bbox!r} must be 4 numbers (minx, miny, maxx, maxy)") from exc
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InputError(f"bbox={bbox!r} must be 4 finite numbers (minx, miny, maxx, maxy)")
    minx, miny, maxx, maxy = values
    if minx >= maxx or miny >= maxy:
        raise InputError(
            f"bbox={values!r} has min >= max; give it as minx, miny, maxx, maxy with minx < maxx "
            "and miny < maxy"
        )
    return minx, miny, maxx, maxy


def bbox_to_window(
    info: RasterInfo, bbox: Sequence[float] | None, bbox_crs: Any = None
) -> PixelWindow:
    """The pixel window of the raster covering ``bbox``, clipped to the raster.

    The bbox is transformed to the raster CRS with densified edges (21 points per edge,
    rasterio.warp.transform_bounds), then to pixel space through the inverse geotransform
    (so rotated rasters get the pixel-space bounding box of the bbox), rounded outwards.

    Args:
        info: The raster.
        bbox: ``(minx, miny, maxx, maxy)`` or None for the whole raster.
        bbox_crs: CRS of ``bbox`` (anything rasterio accepts); None means the raster CRS.

    Raises:
        InputError: Bad bbox or CRS, or no overlap with the raster.
    """
    if bbox is None:
        return info.full_window
    from rasterio.warp import transform_bounds

    minx, miny, maxx, maxy = _check_bbox(bbox)
    if bbox_crs is not None:
        try:
            src = CRS.from_user_input(bbox_crs)
        except (CRSError, ValueError, TypeError) as exc:
            raise InputError(
                f"bbox_crs={bbox_crs!r} is not a CRS ({_first_line(exc)}); use e.g. 'EPSG:4326'"
            ) from exc
        if src != info.crs:
            try:
                minx, miny, maxx, maxy = transform_bounds(
                    src, info.crs, minx, miny, maxx, maxy, densify_pts=21
                )
            except (RasterioError, CRSError, ValueError) as exc:
                raise InputError(
                    f"cannot transform bbox={tuple(bbox)!r} from {bbox_crs} to the raster CRS "
                    f"({_first_line(exc)}); check the bbox and its CRS"
                ) from exc
            if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
                raise InputError(
                    f"bbox={tuple(bbox)!r} in {bbox_crs} cannot be expressed in the raster CRS; "
                    "check the bbox and its CRS"
                )
            if minx > maxx:
                raise InputError(
                    f"bbox={tuple(bbox)!r} crosses the antimeridian in the raster CRS; "
                    "split it into two requests"
                )
    inverse = ~info.transform
    corners = [inverse @ (x, y) for x in (minx, maxx) for y in (miny, maxy)]
    cols = [c for c, _ in corners]
    rows = [r for _, r in corners]
    eps = 1e-6  # a bbox exactly on pixel edges must not gain a pixel from rounding noise
    col0 = max(math.floor(min(cols) + eps), 0)
    col1 = min(math.ceil(max(cols) - eps), info.width)
    row0 = max(math.floor(min(rows) + eps), 0)
    row1 = min(math.ceil(max(rows) - eps), info.height)
    if col1 <= col0 or row1 <= row0:
        bounds = _raster_bounds(info)
        crs_note = f" (bbox given in {bbox_crs})" if bbox_crs is not None else ""
        raise InputError(
            f"bbox={tuple(bbox)!r}{crs_note} does not overlap the raster, whose bounds are "
            f"{tuple(round(b, 6) for b in bounds)} in {info.crs}; give a bbox inside them"
        )
    return PixelWindow(row0, col0, row1 - row0, col1 - col0)


def _raster_bounds(info: RasterInfo) -> tuple[float, float, float, float]:
    pts = [info.transform @ (c, r) for c in (0, info.width) for r in (0, info.height)]
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    return min(xs), min(ys), max(xs), max(ys)


def choose_bands(info: RasterInfo, bands: Sequence[int] | None) -> tuple[int, int, int]:
    """The three 1-based band indices to feed as RGB.

    Default: the first three non-alpha bands; a single (non-alpha) band is replicated to
    gray RGB. An explicit list of 1 or 3 indices is used as given (1 is replicated).

    Raises:
        InputError: Bad explicit list.
        UnsupportedRasterError: The default cannot be decided (two data bands).
    """
    if bands is not None:
        try:
            chosen = tuple(int(b) for b in bands)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"bands={bands!r} must be 1 or 3 band numbers, e.g. (1, 2, 3)"
            ) from exc
        if len(chosen) not in (1, 3):
            raise InputError(
                f"bands={chosen!r} must list 1 band (gray) or 3 bands (R, G, B), e.g. (4, 3, 2)"
            )
        bad = [b for b in chosen if not 1 <= b <= info.count]
        if bad:
            raise InputError(
                f"bands={chosen!r}: band {bad[0]} does not exist; the raster has bands "
                f"1..{info.count}"
            )
    else:
        data = [i + 1 for i, ci in enumerate(info.colorinterp) if ci != ColorInterp.alpha.name]
        if len(data) >= 3:
            chosen = tuple(data[:3])
        elif len(data) == 1:
            chosen = (data[0],)
        else:
            raise UnsupportedRasterError(
                f"raster {info.name!r} has {len(data)} data bands; choose them explicitly "
                "(bands=(1,) for gray or (1, 2, 1) ..., CLI: --bands 1)"
            )
    if len(chosen) == 1:
        chosen = chosen * 3
    return chosen  # type: ignore[return-value]


_MOVED = {  # names that moved to their own modules; still importable from here
    "Stretch": "radiometry",
    "StretchMode": "radiometry",
    "compute_stretch": "radiometry",
    "TileReader": "tile_reader",
    "array_dataset": "inmemory",
    "array_file": "inmemory",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{_MOVED[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

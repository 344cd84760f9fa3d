"""Raster access for the pipeline: open, georeference, window, read tiles, radiometry.

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
from typing import Any, Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import CRSError, RasterioError, RasterioIOError
from rasterio.io import DatasetReader, MemoryFile
from rasterio.windows import Window

from ..errors import InputError, RasterReadError, UnsupportedRasterError

__all__ = [
    "GDAL_CACHE_MB",
    "PixelWindow",
    "RasterInfo",
    "Stretch",
    "StretchMode",
    "TileReader",
    "array_dataset",
    "bbox_to_window",
    "choose_bands",
    "compute_stretch",
    "ground_resolution_m",
    "open_raster",
    "resolve_crs",
]

logger = logging.getLogger(__name__)

GDAL_CACHE_MB = 32
"""GDAL block cache used while the pipeline reads (MiB): bounded so memory stays flat."""

StretchMode = Literal["auto", "percentile", "none"]


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
    """Geodesic ground length (m) of one pixel step along columns and rows at ``(row, col)``."""
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


@dataclass(frozen=True)
class Stretch:
    """Linear stretch of each band from ``[lo, hi]`` to ``[0, 255]`` (uint8), clipped."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]

    def apply(self, data: np.ndarray) -> np.ndarray:
        """``(B, H, W)`` any dtype -> ``(B, H, W)`` uint8."""
        out = np.empty(data.shape, dtype=np.uint8)
        for b in range(data.shape[0]):
            self.apply_band(data[b], b, out=out[b])
        return out

    def apply_band(self, band: np.ndarray, index: int, *, out: np.ndarray) -> np.ndarray:
        """Stretch one ``(H, W)`` band with the statistics of band ``index`` into uint8 ``out``."""
        span = self.hi[index] - self.lo[index]
        gain = 255.0 / span if span > 0 else 0.0
        values = band.astype(np.float32)
        values -= self.lo[index]
        values *= gain
        np.nan_to_num(values, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(values, 0, 255, out=values)
        np.rint(values, out=values)
        out[...] = values
        return out


def compute_stretch(
    dataset: DatasetReader,
    bands: Sequence[int],
    *,
    mode: StretchMode = "auto",
    percentiles: tuple[float, float] = (2.0, 98.0),
    max_samples: int = 1_000_000,
    has_mask: bool = True,
) -> Stretch | None:
    """The radiometric stretch for the whole raster, or None for identity (uint8).

    ``auto``: identity for uint8, a per-band ``percentiles`` stretch otherwise. ``percentile``:
    always the stretch. ``none``: identity (values outside 0..255 are clipped).

    The percentiles come from ONE decimated read (nearest, at most ``max_samples`` pixels per
    band, overviews used when present) of the whole raster, nodata excluded - not from the
    extent and not per tile, so the same pixel gets the same colour whatever the bbox or the
    tiling (zoom-stable, seam-free).

    Raises:
        UnsupportedRasterError: No valid pixel in the raster.
    """
    unique = sorted(set(bands))
    dtypes = {dataset.dtypes[b - 1] for b in unique}
    if mode == "none" or (mode == "auto" and dtypes == {"uint8"}):
        return None
    factor = max(1.0, math.sqrt(dataset.width * dataset.height / max_samples))
    shape = (
        len(unique),
        max(1, math.ceil(dataset.height / factor)),
        max(1, math.ceil(dataset.width / factor)),
    )
    data = dataset.read(unique, out_shape=shape, resampling=Resampling.nearest)
    valid = np.ones(shape[1:], dtype=bool)
    if has_mask:
        masks = dataset.read_masks(unique, out_shape=shape, resampling=Resampling.nearest)
        valid = masks.any(axis=0)
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for k, b in enumerate(unique):
        values = data[k][valid]
        values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
        if values.size == 0:
            raise UnsupportedRasterError(
                f"raster {dataset.name!r} band {b} has no valid (non-nodata) pixel; "
                "nothing to segment"
            )
        p_lo, p_hi = np.percentile(values, percentiles)
        lo[b], hi[b] = float(p_lo), float(p_hi)
    logger.info("stretch %s: lo=%s hi=%s", percentiles, lo, hi)
    return Stretch(lo=tuple(lo[b] for b in bands), hi=tuple(hi[b] for b in bands))


class TileReader:
    """Reads working-grid tiles as model-ready RGB, and raster-grid validity masks.

    Args:
        dataset: The open raster.
        bands: Three 1-based band indices (R, G, B); repeats allowed.
        stretch: Radiometric stretch, or None for identity.
        scale_y, scale_x: Raster pixels per working pixel along rows and columns.
        has_mask: Whether any nodata / alpha / mask band must be respected.
    """

    def __init__(
        self,
        dataset: DatasetReader,
        bands: Sequence[int],
        stretch: Stretch | None,
        *,
        scale_y: float,
        scale_x: float,
        has_mask: bool,
    ) -> None:
        self.dataset = dataset
        self.bands = tuple(bands)
        self._unique = sorted(set(self.bands))
        self._order = [self._unique.index(b) for b in self.bands]
        self.stretch = stretch
        self.scale_y = scale_y
        self.scale_x = scale_x
        self.has_mask = has_mask
        self._lut: np.ndarray | None = None
        if len(self._unique) == 1 and dataset.dtypes[self._unique[0] - 1] == "uint8":
            with contextlib.suppress(ValueError):  # no colour table
                cmap = dataset.colormap(self._unique[0])
                lut = np.zeros((256, 3), dtype=np.uint8)
                for value, rgba in cmap.items():
                    lut[value] = rgba[:3]
                self._lut = lut
        area = scale_x * scale_y
        if scale_x == 1 and scale_y == 1:
            self._resampling = Resampling.nearest
        elif area >= 1:
            self._resampling = Resampling.average
        else:
            self._resampling = Resampling.bilinear

    def read_rgb(
        self, row_off: int, col_off: int, height: int, width: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Read a working-grid window.

        Returns:
            ``(H, W, 3)`` uint8 RGB with invalid pixels set to 0, and the ``(H, W)`` bool
            validity (None when the raster has no mask at all).
        """
        ds = self.dataset
        y0 = row_off * self.scale_y
        x0 = col_off * self.scale_x
        src_h = min(height * self.scale_y, ds.height - y0)
        src_w = min(width * self.scale_x, ds.width - x0)
        window = Window(x0, y0, src_w, src_h)
        shape = (len(self._unique), height, width)
        rgb = np.empty((height, width, 3), dtype=np.uint8)
        # band-sequential read, then one strided copy per band into the (H, W, 3) layout:
        # measured faster than GDAL's pixel-interleaved buffers and than a numpy transpose
        data = ds.read(self._unique, out_shape=shape, window=window, resampling=self._resampling)
        if self._lut is not None:
            rgb[...] = self._lut[data[0]]
        else:
            for k, src in enumerate(self._order):
                if self.stretch is not None:
                    self.stretch.apply_band(data[src], k, out=rgb[..., k])
                elif data.dtype == np.uint8:
                    rgb[..., k] = data[src]
                else:
                    rgb[..., k] = np.clip(np.nan_to_num(data[src]), 0, 255)
        valid = None
        if self.has_mask:
            masks = ds.read_masks(
                self._unique, window=window, out_shape=shape, resampling=Resampling.nearest
            )
            valid = masks.any(axis=0)
            rgb[~valid] = 0
        return rgb, valid

    def read_valid(self, window: PixelWindow) -> np.ndarray | None:
        """``(H, W)`` bool validity of a raster-grid window, or None without any mask.

        A pixel is valid when any of the used bands is (GDAL's per-dataset mask semantics).
        """
        if not self.has_mask:
            return None
        masks = self.dataset.read_masks(
            self._unique,
            window=Window(window.col_off, window.row_off, window.width, window.height),
        )
        return masks.any(axis=0)


@contextlib.contextmanager
def array_dataset(
    array: np.ndarray,
    transform: Affine | Sequence[float],
    crs: Any,
    *,
    valid_mask: np.ndarray | None = None,
) -> Iterator[DatasetReader]:
    """:func:`array_file`, opened: a read-only rasterio dataset over in-memory pixels."""
    with (
        array_file(array, transform, crs, valid_mask=valid_mask) as path,
        rasterio.open(path) as dataset,
    ):
        yield dataset


@contextlib.contextmanager
def array_file(
    array: np.ndarray,
    transform: Affine | Sequence[float],
    crs: Any,
    *,
    valid_mask: np.ndarray | None = None,
) -> Iterator[str]:
    """Write in-memory pixels as a GeoTIFF in GDAL's memory file system; yield its path.

    The ``/vsimem/`` path opens like any raster file (and is removed on exit), so in-memory
    input goes through exactly the code path of a file.

    Args:
        array: ``(H, W, B)`` or ``(H, W)`` pixels, any numeric dtype.
        transform: Pixel-to-map ``Affine``, or a 6-number GDAL geotransform
            ``(x0, dx, rx, y0, ry, dy)`` as ``osgeo.gdal`` and QGIS give it.
        crs: CRS of ``transform`` (WKT, ``"EPSG:N"``, ...).
        valid_mask: Optional ``(H, W)`` bool, True where pixels are valid.

    Raises:
        InputError: Bad shapes, dtype or CRS.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise InputError(f"array must be (H, W, bands), got shape {np.shape(array)}")
    if arr.dtype.kind not in "uif" or arr.dtype.itemsize > 8:
        raise InputError(f"array dtype {arr.dtype} is not a numeric raster type")
    if not isinstance(transform, Affine):
        try:
            coeffs = tuple(float(v) for v in transform)
        except (TypeError, ValueError) as exc:
            raise InputError(f"transform={transform!r} must be an Affine or 6 numbers") from exc
        if len(coeffs) != 6:
            raise InputError(
                f"transform={transform!r} must be an Affine or a GDAL geotransform "
                "(x0, dx, rx, y0, ry, dy)"
            )
        transform = Affine.from_gdal(*coeffs)
    try:
        crs_obj = CRS.from_user_input(crs)
    except (CRSError, ValueError, TypeError) as exc:
        raise InputError(f"crs={str(crs)[:80]!r} is not a CRS ({_first_line(exc)})") from exc
    height, width, count = arr.shape
    if valid_mask is not None and np.shape(valid_mask) != (height, width):
        raise InputError(
            f"valid_mask must be (H, W) = {(height, width)}, got shape {np.shape(valid_mask)}"
        )
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), MemoryFile() as memfile:
        with memfile.open(
            driver="GTiff",
            width=width,
            height=height,
            count=count,
            dtype=arr.dtype,
            crs=crs_obj,
            transform=transform,
            tiled=True,
        ) as dst:
            dst.write(np.moveaxis(arr, 2, 0))
            if valid_mask is not None:
                valid = np.asarray(valid_mask, dtype=bool)
                dst.write_mask(np.where(valid, 255, 0).astype(np.uint8))
        yield memfile.name

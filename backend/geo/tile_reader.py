"""Reading working-grid tiles as model-ready RGB, and raster-grid validity masks."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from ..errors import RasterReadError
from .gdal_errors import gdal_reason
from .radiometry import Stretch
from .raster import PixelWindow

__all__ = ["TileReader"]


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
        try:
            data = ds.read(
                self._unique, out_shape=shape, window=window, resampling=self._resampling
            )
        except RasterioError as exc:
            raise _damaged(ds, window, exc) from None
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
            try:
                masks = ds.read_masks(
                    self._unique, window=window, out_shape=shape, resampling=Resampling.nearest
                )
            except RasterioError as exc:
                raise _damaged(ds, window, exc) from None
            valid = masks.any(axis=0)
            rgb[~valid] = 0
        return rgb, valid

    def read_valid(self, window: PixelWindow) -> np.ndarray | None:
        """``(H, W)`` bool validity of a raster-grid window, or None without any mask.

        A pixel is valid when any of the used bands is (GDAL's per-dataset mask semantics).
        """
        if not self.has_mask:
            return None
        win = Window(window.col_off, window.row_off, window.width, window.height)
        try:
            masks = self.dataset.read_masks(self._unique, window=win)
        except RasterioError as exc:
            raise _damaged(self.dataset, win, exc) from None
        return masks.any(axis=0)


def _damaged(dataset: DatasetReader, window: Window, exc: BaseException) -> RasterReadError:
    """The error for pixels that cannot be decoded: the file and the damaged window."""
    row0, col0 = int(window.row_off), int(window.col_off)
    row1 = int(math.ceil(window.row_off + window.height))
    col1 = int(math.ceil(window.col_off + window.width))
    reason = gdal_reason(exc)
    return RasterReadError(
        f"{dataset.name}: the pixels of rows {row0}-{row1}, columns {col0}-{col1} cannot be "
        f"read ({reason}); the file is damaged or truncated: re-export or re-download it"
    )

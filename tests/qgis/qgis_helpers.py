"""Helpers shared by the QGIS tests (imported as ``qgis_helpers``; tests/qgis is on sys.path)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
VENV_SITE = (
    Path(sys.prefix)
    / "lib"
    / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    / ("site-packages")
)

# The red square of `red_square_tif` in raster pixels: rows 16..31, cols 24..39 of 64 x 64.
ORIGIN_X, ORIGIN_Y, PIXEL = 500_000.0, 4_100_064.0, 1.0
RED_ROWS, RED_COLS = (16, 32), (24, 40)
RED_BOX = (
    ORIGIN_X + RED_COLS[0] * PIXEL,
    ORIGIN_Y - RED_ROWS[1] * PIXEL,
    ORIGIN_X + RED_COLS[1] * PIXEL,
    ORIGIN_Y - RED_ROWS[0] * PIXEL,
)
RED_AREA_M2 = 16 * 16 * PIXEL * PIXEL

# A real GeoTIFF shipped with the repo: 413 x 426 px RGB, 0.27 m pixels, EPSG:26911.
DEMO_RASTER = ROOT / "demo_data" / "SpaceNet_AOI_2_Las_Vegas-056155973080_01_P001-WV03-RGB.tif"
MODEL_CARD = ROOT / "docs" / "model_card.md"


def card_weights_sha256() -> str:
    """The ``weights sha256`` row of docs/model_card.md (= ``Segmenter.checkpoint_sha256`` of
    the bundled weights); read, not hard-coded, so retrained weights need no test edit."""
    import re

    match = re.search(r"weights sha256[^`\n]*`([0-9a-f]{64})`", MODEL_CARD.read_text())
    assert match, "docs/model_card.md has no `weights sha256` row"
    return match.group(1)


def write_geotiff(
    path: Path,
    image: np.ndarray,
    origin: tuple[float, float],
    pixel: float,
    epsg: int,
) -> Path:
    """Write an ``(H, W, 3)`` uint8 image as a GeoTIFF with GDAL (no rasterio needed)."""
    from osgeo import gdal, osr

    height, width, bands = image.shape
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), width, height, bands, gdal.GDT_Byte)
    dataset.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    for band in range(bands):
        dataset.GetRasterBand(band + 1).WriteRaster(
            0, 0, width, height, np.ascontiguousarray(image[..., band]).tobytes()
        )
    dataset.FlushCache()
    dataset = None
    return path


def red_square_image(size: int = 64) -> np.ndarray:
    """Grey-green noise with one pure red square at RED_ROWS x RED_COLS (seeded)."""
    rng = np.random.default_rng(0)
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = rng.integers(20, 90, (size, size))
    image[..., 1] = rng.integers(90, 160, (size, size))
    image[..., 2] = rng.integers(20, 90, (size, size))
    image[RED_ROWS[0] : RED_ROWS[1], RED_COLS[0] : RED_COLS[1]] = (255, 0, 0)
    return image


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Process Qt events until ``condition()`` is true or ``timeout`` seconds passed."""
    from qgis.PyQt.QtCore import QCoreApplication

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QCoreApplication.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    QCoreApplication.processEvents()
    return condition()


def messages(iface: object, level: str) -> list[str]:
    """Message-bar texts of a level ("Info", "Warning", "Critical", "Success")."""
    from qgis.core import Qgis

    return list(iface.messageBar().get_messages(getattr(Qgis, level)))  # type: ignore[attr-defined]


# --- a local XYZ tile layer (file:// URLs, no network) ---------------------------------------
XYZ_ZOOM, XYZ_X0, XYZ_Y0 = 17, 70000, 50000
WEB_MERCATOR_HALF = 20037508.342789244


def xyz_tile_bounds() -> tuple[float, float, float, float]:
    """EPSG:3857 bounds of the 2 x 2 tiles written by :func:`write_xyz_tiles`."""
    tile_m = 2 * WEB_MERCATOR_HALF / 2**XYZ_ZOOM
    minx = -WEB_MERCATOR_HALF + XYZ_X0 * tile_m
    maxy = WEB_MERCATOR_HALF - XYZ_Y0 * tile_m
    return (minx, maxy - 2 * tile_m, minx + 2 * tile_m, maxy)


def xyz_red_bounds() -> tuple[float, float, float, float]:
    """EPSG:3857 bounds of the red square (tile pixels 192..320 of the 512 x 512 mosaic)."""
    minx, miny, maxx, maxy = xyz_tile_bounds()
    px = (maxx - minx) / 512
    return (minx + 192 * px, maxy - 320 * px, minx + 320 * px, maxy - 192 * px)


def write_xyz_tiles(root: Path) -> str:
    """Write 2 x 2 PNG tiles (green, one red square across their shared corner); return the
    QGIS ``wms`` provider URI of an XYZ layer reading them through ``file://`` URLs."""
    from qgis.PyQt.QtGui import QColor, QImage, QPainter

    for dx in range(2):
        for dy in range(2):
            image = QImage(256, 256, QImage.Format_ARGB32)
            image.fill(QColor(60, 130, 60))
            painter = QPainter(image)
            painter.fillRect(192 - 256 * dx, 192 - 256 * dy, 128, 128, QColor(255, 0, 0))
            painter.end()
            folder = root / str(XYZ_ZOOM) / str(XYZ_X0 + dx)
            folder.mkdir(parents=True, exist_ok=True)
            assert image.save(str(folder / f"{XYZ_Y0 + dy}.png"))
    url = f"file://{root}/%7Bz%7D/%7Bx%7D/%7By%7D.png"
    return f"type=xyz&url={url}&zmin={XYZ_ZOOM}&zmax={XYZ_ZOOM}"

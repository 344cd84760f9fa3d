"""Pixel ground size without pyproj: Vincenty's formula and rasterio's transform match pyproj."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS as ProjCRS
from pyproj import Geod, Transformer
from rasterio.crs import CRS

from backend.geo.geodesy import geographic_frame, pixel_steps_m, vincenty_inverse_m
from backend.geo.raster import ground_resolution_m

ROOT = Path(__file__).resolve().parents[3]
WGS84 = (6378137.0, 1 / 298.257223563)


def _pyproj_steps(crs: CRS, transform: Affine, row: float, col: float) -> tuple[float, float]:
    """The former pyproj-only measurement (the reference)."""
    pcrs = ProjCRS.from_wkt(crs.to_wkt())
    to_lonlat = Transformer.from_crs(pcrs, pcrs.geodetic_crs, always_xy=True)
    points = [transform @ (col, row), transform @ (col + 1, row), transform @ (col, row + 1)]
    lon, lat = to_lonlat.transform([p[0] for p in points], [p[1] for p in points])
    geod = pcrs.get_geod()
    return geod.inv(lon[0], lat[0], lon[1], lat[1])[2], geod.inv(lon[0], lat[0], lon[2], lat[2])[2]


def _local_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Short-step length from the ellipsoid's radii of curvature (exact to O(step^3))."""
    a, f = WGS84
    e2 = f * (2 - f)
    phi = math.radians((lat1 + lat2) / 2)
    w = math.sqrt(1 - e2 * math.sin(phi) ** 2)
    north = a * (1 - e2) / w**3 * math.radians(lat2 - lat1)
    east = a / w * math.cos(phi) * math.radians(lon2 - lon1)
    return math.hypot(north, east)


def test_vincenty_matches_pyproj_geod_and_short_steps_keep_their_digits():
    rng = np.random.default_rng(1)
    geod = Geod(ellps="WGS84")
    for spread, rel in ((60.0, 1e-10), (1.0, 1e-10), (1e-3, 1e-9)):
        for _ in range(200):
            lon, lat = rng.uniform(-180, 180), rng.uniform(-89, 89)
            lon2, lat2 = lon + rng.uniform(-spread, spread), lat + rng.uniform(-spread, spread)
            lat2 = float(np.clip(lat2, -89.9, 89.9))
            want = geod.inv(lon, lat, lon2, lat2)[2]
            assert vincenty_inverse_m(lon, lat, lon2, lat2, *WGS84) == pytest.approx(want, rel=rel)
    for spread in (1e-9, 1e-7, 1e-5):  # 0.1 mm to 1 m: against the local formula, 1e-10
        for _ in range(200):
            lon, lat = rng.uniform(-180, 180), rng.uniform(-89, 89)
            lon2, lat2 = lon + rng.uniform(-spread, spread), lat + rng.uniform(-spread, spread)
            got = vincenty_inverse_m(lon, lat, lon2, lat2, *WGS84)
            assert got == pytest.approx(_local_m(lon, lat, lon2, lat2), rel=1e-10)
    assert vincenty_inverse_m(10.0, 20.0, 10.0, 20.0, *WGS84) == 0.0


@pytest.mark.parametrize(
    ("crs", "transform"),
    [
        ("EPSG:32633", Affine(0.5, 0, 500000, 0, -0.5, 5000000)),
        ("EPSG:32633", Affine(0.01, 0, 300000, 0, -0.01, 7000000)),
        ("EPSG:32633", Affine(1000, 0, 300000, 0, -1000, 7000000)),
        ("EPSG:4326", Affine(1e-5, 0, 10, 0, -1e-5, 60)),
        ("EPSG:4326", Affine(0.1, 0, 100, 0, -0.1, -30)),
        ("EPSG:3857", Affine(0.3, 0, 1e6, 0, -0.3, 6e6)),
        ("EPSG:3035", Affine(10, 0.5, 4e6, 0.2, -10, 3e6)),  # rotated / sheared
        ("EPSG:27700", Affine(0.25, 0, 5e5, 0, -0.25, 2e5)),  # Airy ellipsoid
        ("ESRI:53009", Affine(100, 0, 0, 0, -100, 1e6)),  # sphere
    ],
)
def test_pixel_steps_match_the_pyproj_measurement(crs, transform):
    crs = CRS.from_user_input(crs)
    for row, col in ((0, 0), (500, 300)):
        got = pixel_steps_m(crs, transform, row, col)
        assert got is not None
        assert got == pytest.approx(_pyproj_steps(crs, transform, row, col), rel=1e-7)
        assert ground_resolution_m(crs, transform, row, col) == got


def test_unsure_frames_fall_back_to_pyproj():
    grads = CRS.from_epsg(4807)  # NTF (Paris): angles in grads
    assert geographic_frame(grads.to_wkt()) is None
    transform = Affine(0.001, 0, 1, 0, -0.001, 50)
    assert pixel_steps_m(grads, transform, 0, 0) is None
    want = _pyproj_steps(grads, transform, 0, 0)
    assert ground_resolution_m(grads, transform, 0, 0) == pytest.approx(want, rel=1e-12)
    assert geographic_frame('LOCAL_CS["local",UNIT["metre",1]]') is None
    beyond_the_pole = Affine(0.1, 0, 100, 0, -0.1, -80)  # row 500 is at latitude -130
    assert pixel_steps_m(CRS.from_epsg(4326), beyond_the_pole, 500, 300) is None


def test_planning_a_run_imports_no_pyproj(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests" / "data")!r})
        import make_data as md
        path = md.write_geotiff({str(tmp_path / "r.tif")!r}, md.background(64, 64),
                                transform=md.utm_transform(0.5))
        from backend.pipeline import validate_inputs
        plan = validate_inputs(path, "red")
        assert plan.info.res_m[0] > 0.49
        print("pyproj" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.strip() == "False"

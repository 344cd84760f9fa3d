"""Ground length of a pixel step without pyproj: rasterio's PROJ and Vincenty's inverse formula.

Planning a run needs one number from the CRS, the ground size of a pixel
(:func:`backend.geo.raster.ground_resolution_m`). Importing pyproj for it costs more than the rest
of a small run's planning (its package import alone is 0.04-0.1 s in a fresh process), while
rasterio, already loaded, transforms to the CRS's own geographic CRS just as well. The geodesic
length on that CRS's ellipsoid then comes from Vincenty's inverse formula, written here with the
cancellation-free form of its ``sin(sigma)`` term, so steps of a few centimetres keep full
precision. Anything this module cannot read with certainty (no ``GEOGCS``, angular units other
than degrees, no convergence) returns None and the caller uses pyproj as before. No torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from affine import Affine
    from rasterio.crs import CRS

__all__ = ["geographic_frame", "pixel_steps_m", "vincenty_inverse_m"]

_NUMBER = r"\s*([-+0-9.eE]+)\s*"
_SPHEROID = re.compile(r'SPHEROID\["[^"]*",' + _NUMBER + "," + _NUMBER)
_UNIT = re.compile(r'UNIT\["[^"]*",' + _NUMBER)
_DEGREE = math.pi / 180.0


def _bracket_block(text: str, start: int) -> str | None:
    """``text[start:]`` up to the ``]`` closing the first ``[`` after ``start`` (quotes skipped)."""
    depth, quoted = 0, False
    for i in range(start, len(text)):
        char = text[i]
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return None


def geographic_frame(wkt: str) -> tuple[str, float, float] | None:
    """The base geographic CRS of a WKT1 CRS, and its ellipsoid.

    Args:
        wkt: WKT1 (GDAL flavour, as ``rasterio.crs.CRS.to_wkt()`` writes it).

    Returns:
        ``(GEOGCS WKT, semi-major axis in metres, flattening)``, or None when the CRS has no
        ``GEOGCS`` (engineering CRS) or its angles are not in degrees.
    """
    start = wkt.find("GEOGCS[")
    if start < 0:
        return None
    block = _bracket_block(wkt, start)
    if block is None:
        return None
    spheroid = _SPHEROID.search(block)
    units = _UNIT.findall(block)
    if spheroid is None or len(units) != 1:
        return None
    try:
        semi_major, inverse_flattening = float(spheroid.group(1)), float(spheroid.group(2))
        angle = float(units[0])
    except ValueError:
        return None
    if not (semi_major > 0 and math.isfinite(inverse_flattening) and inverse_flattening >= 0):
        return None
    if not math.isclose(angle, _DEGREE, rel_tol=1e-9):
        return None
    flattening = 1.0 / inverse_flattening if inverse_flattening > 0 else 0.0
    return block, semi_major, flattening


def vincenty_inverse_m(
    lon1: float, lat1: float, lon2: float, lat2: float, semi_major: float, flattening: float
) -> float | None:
    """Geodesic distance (m) between two points (degrees) on an ellipsoid (Vincenty, 1975).

    Accurate to well below a millimetre for any pair that is not nearly antipodal; pixel steps
    never are. ``sin(sigma)`` uses ``sin(U2 - U1) + 2 sin U1 cos U2 sin^2(lambda / 2)``, with
    ``U2 - U1`` taken from the latitude difference, instead of the textbook difference of
    products, which loses about half the digits for steps of a few centimetres.

    Returns:
        The distance, 0.0 for the same point, None when the iteration does not converge.
    """
    f = flattening
    b = semi_major * (1.0 - f)
    big_l = (lon2 - lon1) * _DEGREE
    phi1, phi2 = lat1 * _DEGREE, lat2 * _DEGREE
    u1 = math.atan((1.0 - f) * math.tan(phi1))
    u2 = math.atan((1.0 - f) * math.tan(phi2))
    sin_u1, cos_u1, sin_u2, cos_u2 = math.sin(u1), math.cos(u1), math.sin(u2), math.cos(u2)
    # U2 - U1 from the latitude difference, not as a difference of two arctangents
    sin_du = math.sin(
        math.atan2(
            (1.0 - f) * math.sin((lat2 - lat1) * _DEGREE),
            math.cos(phi1) * math.cos(phi2) + (1.0 - f) ** 2 * math.sin(phi1) * math.sin(phi2),
        )
    )
    lam = big_l
    for _ in range(200):
        sin_lam, cos_lam = math.sin(lam), math.cos(lam)
        north = sin_du + 2.0 * sin_u1 * cos_u2 * math.sin(lam / 2.0) ** 2
        sin_sigma = math.hypot(cos_u2 * sin_lam, north)
        if sin_sigma == 0.0:
            return 0.0
        cos_sigma = sin_u1 * sin_u2 + cos_u1 * cos_u2 * cos_lam
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = cos_u1 * cos_u2 * sin_lam / sin_sigma
        cos2_alpha = 1.0 - sin_alpha * sin_alpha
        cos_2sm = cos_sigma - 2.0 * sin_u1 * sin_u2 / cos2_alpha if cos2_alpha else 0.0
        c = f / 16.0 * cos2_alpha * (4.0 + f * (4.0 - 3.0 * cos2_alpha))
        previous = lam
        lam = big_l + (1.0 - c) * f * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (2.0 * cos_2sm * cos_2sm - 1.0))
        )
        if abs(lam - previous) <= 1e-14 * abs(lam):  # relative: steps are tiny angles
            break
    else:
        return None
    u_sq = cos2_alpha * (semi_major * semi_major - b * b) / (b * b)
    big_a = 1.0 + u_sq / 16384.0 * (4096.0 + u_sq * (-768.0 + u_sq * (320.0 - 175.0 * u_sq)))
    big_b = u_sq / 1024.0 * (256.0 + u_sq * (-128.0 + u_sq * (74.0 - 47.0 * u_sq)))
    term = cos_sigma * (2.0 * cos_2sm * cos_2sm - 1.0) - big_b / 6.0 * cos_2sm * (
        4.0 * sin_sigma * sin_sigma - 3.0
    ) * (4.0 * cos_2sm * cos_2sm - 3.0)
    delta_sigma = big_b * sin_sigma * (cos_2sm + big_b / 4.0 * term)
    return b * big_a * (sigma - delta_sigma)


def pixel_steps_m(
    crs: CRS, transform: Affine, row: float, col: float
) -> tuple[float, float] | None:
    """Geodesic length (m) of one pixel step along columns and along rows at ``(row, col)``.

    The three points are transformed to the CRS's base geographic CRS by rasterio (GDAL/PROJ)
    and measured with :func:`vincenty_inverse_m` on its ellipsoid.

    Returns:
        ``(along columns, along rows)``, or None when this path cannot decide (no geographic
        base CRS, non-degree angles, failed transform or iteration): use pyproj then.
    """
    from rasterio.crs import CRS as RioCRS
    from rasterio.warp import transform as warp_transform

    try:
        frame = geographic_frame(crs.to_wkt())
        if frame is None:
            return None
        geographic, semi_major, flattening = frame
        points: Sequence[tuple[float, float]] = [
            transform @ (col, row),
            transform @ (col + 1, row),
            transform @ (col, row + 1),
        ]
        lon, lat = warp_transform(
            crs, RioCRS.from_wkt(geographic), [p[0] for p in points], [p[1] for p in points]
        )
    except Exception:  # any failure here (GDAL/PROJ errors have many types): pyproj decides
        return None
    if not all(math.isfinite(v) for v in (*lon, *lat)) or max(abs(v) for v in lat) > 90.0:
        return None  # pyproj then decides (it reports such points as not measurable)
    dist_x = vincenty_inverse_m(lon[0], lat[0], lon[1], lat[1], semi_major, flattening)
    dist_y = vincenty_inverse_m(lon[0], lat[0], lon[2], lat[2], semi_major, flattening)
    if dist_x is None or dist_y is None:
        return None
    return dist_x, dist_y

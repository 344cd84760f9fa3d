"""The default minimum polygon area: a number of working pixels, so it follows the resolution.

Blobs of a few pixels at the working resolution are noise of the model's coarse mask, not
objects (five of 16 "the buildings" polygons on the bundled orthophoto were under 25 m² at
1 m/px). "Auto" drops polygons smaller than :data:`AUTO_PIXELS` working pixels: 25 m² at
1 m/px (buildings), 1.6 m² at 0.25 m/px (vehicles). A value the user types is used as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .i18n import tr

AUTO = -1.0
"""The stored and requested value that means "Auto"."""
AUTO_PIXELS = 25
"""Polygons under this many working pixels are dropped on "Auto" (a 5 × 5 px blob)."""


def working_gsd(gsd_m: float | None, segmenter: Any, concepts: Sequence[str]) -> float | None:
    """The working resolution a run will use (m/px; None = the raster's own pixels).

    Mirrors the backend's choice: the requested value, else the segmenter's per-concept
    resolution (``gsd_m_for``), else its ``gsd_m``.
    """
    if gsd_m:
        return float(gsd_m)
    gsd_for = getattr(segmenter, "gsd_m_for", None)
    value = gsd_for(list(concepts)) if callable(gsd_for) else None
    value = value or getattr(segmenter, "gsd_m", None)
    return float(value) if value else None


def resolve(min_area_m2: float, gsd_m: float | None) -> tuple[float, str]:
    """``(square metres, what to tell the user)`` for the requested minimum area."""
    if min_area_m2 >= 0:
        return float(min_area_m2), tr("minimum area {a:g} m²").format(a=min_area_m2)
    if not gsd_m:
        return 0.0, tr("no minimum area (Auto: the raster's own pixels, size not known here)")
    area = AUTO_PIXELS * gsd_m * gsd_m
    return area, tr("minimum area {a:.3g} m² (Auto: {n} px at {g:g} m/px)").format(
        a=area, n=AUTO_PIXELS, g=gsd_m
    )

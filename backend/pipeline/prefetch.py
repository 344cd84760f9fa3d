"""A run's one-off start-up costs, paid before the query (:func:`warm_up`) or meanwhile.

In a fresh process (the CLI, a batch worker, a script) a small run spends more time starting
up than working: importing shapely and ``rasterio.features`` for vectorising, pyproj for the
geodesic areas, GDAL's ``osgeo.ogr`` for writing a GeoPackage, and the GeoPackage driver's
own start-up (0.1-0.3 s together on the 2-core machine). None of it is needed before the first
tile has been predicted, so the run (:mod:`backend.pipeline.run`) calls :func:`start_imports` at
its first model call: a background thread does it while the model computes (and releases the
GIL); started earlier, it would slow the main thread's opening, planning and first read. A module
the main thread reaches first is simply waited for (Python's per-module import lock), and a
failure here is ignored: the main thread imports again and reports the error where it always
did. It is a pure optimisation: results do not depend on it.

Inside QGIS the dock's preload calls :func:`warm_up` on the plugin's backend thread, where the
queries run later, so the first query finds everything imported and started.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

__all__ = ["after_tile_modules", "start_imports", "warm_up"]

logger = logging.getLogger(__name__)

_PACKAGE = __package__.rsplit(".", 1)[0]  # "backend", or the plugin's vendored copy
_OGR_WRITER = f"{_PACKAGE}.geo.ogr_writer"
_PLANNING = tuple(
    f"{_PACKAGE}.{name}"
    for name in ("geo.raster", "geo.geodesy", "geo.radiometry", "geo.tile_reader", "resources")
)
"""Modules a run imports before its first tile."""


def after_tile_modules(out_path: str | os.PathLike[str] | None) -> tuple[str, ...]:
    """Modules a run imports only once its tiles are predicted, in the order it needs them.

    Args:
        out_path: The run's output file (None: nothing is written).

    Returns:
        Absolute module names: the vectoriser (shapely, ``rasterio.features``), pyproj (areas),
        and for an output the writers, with ``osgeo.ogr`` for a GeoPackage while pyogrio is not
        loaded (the engine :func:`backend.geo.writers.write_polygons` then picks for a small
        layer).
    """
    names = [f"{_PACKAGE}.geo.vectorize", "pyproj"]
    if out_path is not None:
        names.append(f"{_PACKAGE}.geo.writers")
        if Path(out_path).suffix.lower() == ".gpkg" and "pyogrio" not in sys.modules:
            names += ["osgeo.ogr", "osgeo.osr", _OGR_WRITER]
    return tuple(names)


def start_imports(names: Sequence[str]) -> threading.Thread | None:
    """Import ``names`` (those not imported yet) in a background thread, in order.

    The thread is not a daemon, and the run joins it when its tiles are done: a process that
    exits (a CLI error, say) while the thread is inside GDAL's or PROJ's start-up would
    otherwise abort in native code instead of exiting with its own status.

    When the GeoPackage engine (``backend.geo.ogr_writer``) is among them, the thread then
    also starts GDAL's GeoPackage driver (:func:`backend.geo.ogr_writer.warm_up`).

    Returns:
        The started thread, or None when every module was imported already.
    """
    missing = [name for name in names if name not in sys.modules]
    if not missing:
        return None
    thread = threading.Thread(
        target=_import_all, args=(missing, _OGR_WRITER in missing), name="rs2sam-imports",
        daemon=False,
    )  # fmt: skip
    thread.start()
    return thread


def warm_up() -> None:
    """Pay a run's one-off start-up costs now, on the calling thread.

    Imports every module a run uses, opens an in-memory GeoTIFF (rasterio's GDAL drivers and
    PROJ database), makes a pyproj transformer (pyproj's PROJ database) and starts GDAL's
    GeoPackage driver when ``osgeo`` is installed. GDAL and PROJ keep part of that state per
    thread: call it on the thread that will run the queries. Failures are logged and ignored
    (the query then meets and reports them).
    """
    names = (*_PLANNING, *after_tile_modules("warm_up.gpkg"))
    _import_all([name for name in names if name not in sys.modules], warm_writer=False)
    steps = [(f"{_PACKAGE}.geo.inmemory", "warm_up_gdal"), (__name__, "_warm_up_pyproj")]
    if _OGR_WRITER in sys.modules:
        steps.append((_OGR_WRITER, "warm_up"))
    for module, function in steps:
        try:
            getattr(importlib.import_module(module), function)()
        except Exception as exc:  # a warm-up must never break the caller (the dock)
            logger.debug("warming up %s.%s failed: %s", module, function, exc)


def _warm_up_pyproj() -> None:
    from pyproj import CRS, Transformer

    crs = CRS.from_epsg(32633)
    Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True).transform(500000.0, 0.0)
    crs.get_geod()


def _import_all(names: Sequence[str], warm_writer: bool) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the run imports it again and reports the error there
            logger.debug("background import of %s failed: %s", name, exc)
    if warm_writer and _OGR_WRITER in sys.modules:
        try:
            sys.modules[_OGR_WRITER].warm_up()
        except Exception as exc:  # the write reports its own errors
            logger.debug("warming up the GeoPackage driver failed: %s", exc)

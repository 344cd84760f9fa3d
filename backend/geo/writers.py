"""Atomic GeoPackage / GeoJSON writers (pyogrio, or GDAL's ``osgeo.ogr`` for small layers).

pyogrio was chosen because its wheels bundle their own GDAL, so the same writer works in a
plain venv and inside the QGIS process next to QGIS's GDAL (checked with QGIS 3.22 / GDAL 3.6),
and it writes whole columns at once (no per-feature Python loop). Its first import also
imports pandas (0.25-0.3 s), so a small layer in a process that has not loaded pyogrio yet
goes through ``osgeo.ogr`` when it is installed (:mod:`backend.geo.ogr_writer`).

A file is first written to a temporary name in the target folder and then renamed, so a
failed or cancelled run never leaves a partial file, and an existing file is replaced only
when ``overwrite=True``.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DependencyError, OutputError

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

__all__ = ["DRIVERS", "check_output_path", "write_polygons"]

logger = logging.getLogger(__name__)

DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}
"""Output file extension -> OGR driver."""

_NUMPY_TYPES: dict[type, Any] = {str: object, float: np.float64, int: np.int64}


def check_output_path(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Check that ``path`` can be written, before any work is done.

    Raises:
        OutputError: Unknown extension, folder missing / not a folder / not writable, or the
            file exists and ``overwrite`` is False.
    """
    out = Path(path)
    if out.suffix.lower() not in DRIVERS:
        raise OutputError(
            f"output {str(out)!r} has an unsupported extension; use .gpkg (GeoPackage) or "
            ".geojson"
        )
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.exists():
        raise OutputError(
            f"output folder {str(folder)!r} does not exist; create it or choose another --out"
        )
    if not folder.is_dir():
        raise OutputError(f"output folder {str(folder)!r} is not a folder; choose another --out")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            f"output folder {str(folder)!r} is not writable; choose another --out or fix its "
            "permissions"
        )
    if out.is_dir():
        raise OutputError(f"output {str(out)!r} is a folder; give a file name ending in .gpkg")
    if out.exists() and not overwrite:
        raise OutputError(
            f"output {str(out)!r} already exists; pass overwrite=True (CLI: --overwrite) or "
            "choose another name"
        )
    return out


def write_polygons(
    path: str | os.PathLike[str],
    polygons: Sequence[BaseGeometry],
    records: Sequence[Mapping[str, Any]],
    *,
    crs_wkt: str,
    schema: Sequence[tuple[str, type]],
    overwrite: bool = False,
    layer: str = "segments",
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write polygons and their attributes as one polygon layer, atomically.

    Args:
        path: ``.gpkg`` or ``.geojson`` file.
        polygons: Shapely polygons (or multipolygons) in ``crs_wkt``.
        records: One mapping of field values per polygon.
        crs_wkt: CRS of the layer.
        schema: ``(field name, str | float | int)`` in output order; also used for an empty layer.
        overwrite: Replace an existing file.
        layer: Layer name (GeoPackage).
        metadata: Layer metadata key/values (GeoPackage only).

    Returns:
        The written path.

    Raises:
        OutputError: See :func:`check_output_path`; or the write failed (nothing is left behind).
    """
    out = check_output_path(path, overwrite=overwrite)
    if len(polygons) != len(records):
        raise ValueError(f"{len(polygons)} polygons but {len(records)} records")
    driver = DRIVERS[out.suffix.lower()]
    write = _choose_engine(len(polygons), driver)
    import shapely  # here, not at import: check_output_path runs before a run starts

    geometry = np.array(shapely.to_wkb(np.asarray(polygons, dtype=object)), dtype=object)
    fields = [name for name, _ in schema]
    field_data = [
        np.array([r[name] for r in records], dtype=_NUMPY_TYPES[kind]) for name, kind in schema
    ]
    geometry_type = (
        "MultiPolygon" if any(g.geom_type == "MultiPolygon" for g in polygons) else "Polygon"
    )
    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}.tmp{out.suffix}")
    options: dict[str, Any] = {}
    if driver == "GPKG":
        options["dataset_options"] = {"VERSION": "1.2"}  # readable by older GDALs (QGIS 3.22)
        if metadata:
            options["layer_metadata"] = dict(metadata)
    try:
        write(
            str(tmp),
            geometry,
            field_data,
            fields,
            driver=driver,
            layer=layer,
            geometry_type=geometry_type,
            crs=crs_wkt,
            **options,
        )
        if overwrite:
            os.replace(tmp, out)
        else:
            _rename_no_clobber(tmp, out)
    except OutputError:
        raise
    except Exception as exc:
        if _is_disk_full(exc) or _out_of_space(out, tmp):
            raise OutputError(_disk_full_message(out)) from None
        raise OutputError(f"could not write {str(out)!r}: {exc}") from exc
    finally:
        _remove_leftovers(tmp)
    logger.info("wrote %d polygons to %s", len(polygons), out)
    return out


OGR_MAX_FEATURES = 5000
"""GeoPackage layers up to this size go through ``osgeo.ogr`` while pyogrio is not loaded
(per feature, about 25 us each; pyogrio's column write wins beyond)."""


def _choose_engine(n_features: int, driver: str) -> Any:
    """The ``write(path, geometry, field_data, fields, **options)`` function to use.

    ``osgeo.ogr`` for a small GeoPackage while pyogrio is not loaded (GeoJSON stays with
    pyogrio: an empty GeoJSON layer written by GDAL 3.6 loses its field list).
    """
    import sys

    small = n_features <= OGR_MAX_FEATURES and driver == "GPKG"
    if small and "pyogrio" not in sys.modules:
        try:
            from osgeo import ogr  # noqa: F401 - is GDAL's own binding installed?

            from . import ogr_writer
        except ImportError:
            pass
        else:
            return ogr_writer.write_layer
    try:
        from pyogrio.raw import write
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise DependencyError("pyogrio is missing; install it with `pip install pyogrio`") from exc
    return write


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_LOW_SPACE = 1024**2  # bytes: a folder with less free space than this counts as full
_FULL_TEXTS = ("disk is full", "no space left", "disk quota", "file too large")


def _is_disk_full(exc: BaseException) -> bool:
    """Whether a write failed for lack of space (OSError errno, or GDAL/SQLite's own words)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _FULL_ERRNOS:
            return True
        if any(text in str(seen).lower() for text in _FULL_TEXTS):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _out_of_space(out: Path, tmp: Path) -> bool:
    """After a failed write: is the folder (nearly) full, or the file at the process's size limit?

    GDAL/SQLite often report a full disk only as "Failed to commit transaction", so the space
    itself is looked at.
    """
    folder = out.parent if str(out.parent) else Path(".")
    try:
        if shutil.disk_usage(folder).free < _LOW_SPACE:
            return True
    except OSError:
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    except (ImportError, OSError, ValueError):  # pragma: no cover - not on Windows
        return False
    if soft == resource.RLIM_INFINITY:
        return False
    try:
        return tmp.stat().st_size + _LOW_SPACE >= soft
    except OSError:
        return False


def _disk_full_message(out: Path) -> str:
    folder = out.parent if str(out.parent) else Path(".")
    try:
        free = f"{shutil.disk_usage(folder).free / 1024**2:.0f} MB free"
    except OSError:
        free = "free space unknown"
    return (
        f"the disk holding {str(folder)!r} is full, over quota or at its file-size limit "
        f"({free}) while writing {out.name!r}; nothing was written: free some space or choose "
        "another --out"
    )


def _rename_no_clobber(tmp: Path, out: Path) -> None:
    """Rename without ever replacing a file that appeared meanwhile (hard link, then unlink)."""
    try:
        os.link(tmp, out)
    except FileExistsError as exc:
        raise OutputError(
            f"output {str(out)!r} already exists; pass overwrite=True (CLI: --overwrite) or "
            "choose another name"
        ) from exc
    except OSError:  # file system without hard links: a best-effort check, then rename
        if out.exists():
            raise OutputError(
                f"output {str(out)!r} already exists; pass overwrite=True (CLI: --overwrite)"
            ) from None
        os.replace(tmp, out)
    else:
        tmp.unlink()


def _remove_leftovers(tmp: Path) -> None:
    for leftover in (tmp, Path(f"{tmp}-journal"), Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        try:
            leftover.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:  # pragma: no cover - nothing better to do
            logger.warning("could not remove temporary file %s: %s", leftover, exc)

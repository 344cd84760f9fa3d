"""Writing a small polygon layer through GDAL's own Python bindings (``osgeo.ogr``).

Why a second engine beside pyogrio: importing pyogrio imports pandas (and pyarrow/geopandas
when installed) to detect its optional features: 0.25-0.3 s and about 60 MiB on the first
write of a process, more than writing a typical result (tens to hundreds of polygons) costs.
``osgeo.ogr`` imports in a fraction of that and, inside QGIS, is QGIS's own GDAL. It writes
feature by feature, so :func:`backend.geo.writers.write_polygons` uses it only for small
layers, when it is installed and pyogrio is not already loaded (see ``_choose_engine``).

GDAL's errors are collected by an error handler pushed for the duration of the write (GDAL's
handler stack is per thread) instead of switching ``osgeo`` to exceptions, which would change
it for every other user of the process (QGIS plugins), and nothing is printed to stderr.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["warm_up", "write_layer"]

_WARM_UP_PATH = "/vsimem/rs2sam_warm_up.gpkg"


def write_layer(
    path: str,
    geometry: np.ndarray,
    field_data: Sequence[np.ndarray],
    fields: Sequence[str],
    *,
    driver: str,
    layer: str,
    geometry_type: str,
    crs: str,
    dataset_options: dict[str, str] | None = None,
    layer_metadata: dict[str, str] | None = None,
) -> None:
    """Write one layer (the arguments of ``pyogrio.raw.write`` that the writers use).

    Args:
        path: New file.
        geometry: ``(n,)`` object array of WKB bytes.
        field_data: One ``(n,)`` array per field: object (str), float64 or int64.
        fields: Field names, in order.
        driver: ``"GPKG"`` or ``"GeoJSON"``.
        layer: Layer name.
        geometry_type: ``"Polygon"`` or ``"MultiPolygon"``.
        crs: WKT (or anything ``OSRSetFromUserInput`` reads).
        dataset_options: Creation options of the file.
        layer_metadata: Key/values stored with the layer (GeoPackage).

    Raises:
        RuntimeError: GDAL refused something; the message is GDAL's.
    """
    from osgeo import gdal

    errors = _Errors(gdal)
    gdal.PushErrorHandler(errors)
    try:
        _write(path, geometry, field_data, fields, errors, driver=driver, layer=layer,
               geometry_type=geometry_type, crs=crs, dataset_options=dataset_options,
               layer_metadata=layer_metadata)  # fmt: skip
    finally:
        gdal.PopErrorHandler()
    errors.raise_first()


def warm_up() -> None:
    """Initialise GDAL's GeoPackage driver with a throw-away in-memory file (``/vsimem/``).

    The first GeoPackage a process creates costs 15-25 ms more than the next ones (SQLite and
    the driver's own start-up, the PROJ database for the default CRS); a run pays that here,
    in the background or before the query, instead of in its write step. Any failure is
    ignored: the real write reports its own errors.
    """
    from osgeo import gdal, ogr, osr

    errors = _Errors(gdal)
    gdal.PushErrorHandler(errors)
    try:
        driver = ogr.GetDriverByName("GPKG")
        dataset = driver.CreateDataSource(_WARM_UP_PATH) if driver is not None else None
        if dataset is not None:
            srs = osr.SpatialReference()
            srs.ImportFromEPSG(4326)
            dataset.CreateLayer("warm_up", srs, ogr.wkbPolygon)
            dataset = None
            gdal.Unlink(_WARM_UP_PATH)
    finally:
        gdal.PopErrorHandler()


class _Errors:
    """GDAL error handler that keeps the failures' messages (first one first)."""

    def __init__(self, gdal: Any) -> None:
        self.failure = gdal.CE_Failure
        self.messages: list[str] = []

    def __call__(self, level: int, _code: int, message: str) -> None:
        if level >= self.failure:
            self.messages.append(str(message))

    def raise_first(self, fallback: str = "") -> None:
        """Raise the first failure (or ``fallback`` when GDAL said nothing)."""
        if self.messages or fallback:
            raise RuntimeError(self.messages[0] if self.messages else fallback)


def _write(
    path: str,
    geometry: np.ndarray,
    field_data: Sequence[np.ndarray],
    fields: Sequence[str],
    errors: _Errors,
    *,
    driver: str,
    layer: str,
    geometry_type: str,
    crs: str,
    dataset_options: dict[str, str] | None,
    layer_metadata: dict[str, str] | None,
) -> None:
    from osgeo import ogr, osr

    def check(value: Any) -> Any:
        errors.raise_first("" if value is not None else "GDAL returned no object")
        return value

    def ok(code: int) -> None:
        errors.raise_first("" if code == 0 else f"OGR error {code}")

    options = [f"{k}={v}" for k, v in (dataset_options or {}).items()]
    dataset = check(ogr.GetDriverByName(driver).CreateDataSource(path, options=options))
    try:
        srs = osr.SpatialReference()
        if srs.SetFromUserInput(crs) != 0:
            raise RuntimeError(f"GDAL cannot read the CRS {crs[:80]!r}")
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        kind = ogr.wkbMultiPolygon if geometry_type == "MultiPolygon" else ogr.wkbPolygon
        out = check(dataset.CreateLayer(layer, srs, kind))
        for name, column in zip(fields, field_data, strict=True):
            ok(out.CreateField(ogr.FieldDefn(name, _ogr_type(column.dtype, ogr))))
        definition = out.GetLayerDefn()
        ok(out.StartTransaction())
        columns = [column.tolist() for column in field_data]
        multi = kind == ogr.wkbMultiPolygon and driver == "GPKG"
        for i, wkb in enumerate(geometry):
            feature = ogr.Feature(definition)
            for k, column in enumerate(columns):
                feature.SetField(k, column[i])
            shape = check(ogr.CreateGeometryFromWkb(bytes(wkb)))
            if multi:  # one geometry type per GeoPackage layer, as pyogrio writes it
                shape = ogr.ForceToMultiPolygon(shape)
            feature.SetGeometryDirectly(shape)
            ok(out.CreateFeature(feature))
        ok(out.CommitTransaction())
        if layer_metadata:
            out.SetMetadata(dict(layer_metadata))
        out = None
        dataset.FlushCache()
    finally:
        dataset = None  # closes the file (GDAL writes the rest of it here)


def _ogr_type(dtype: np.dtype[Any], ogr: Any) -> int:
    if np.issubdtype(dtype, np.integer):
        return int(ogr.OFTInteger64)
    if np.issubdtype(dtype, np.floating):
        return int(ogr.OFTReal)
    return int(ogr.OFTString)

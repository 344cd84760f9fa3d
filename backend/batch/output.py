"""The job's output: one layer per query, written raster by raster, renamed into place at the end.

``gpkg`` (default) is a GeoPackage 1.2 through pyogrio, appended raster by raster so memory does
not grow with the job. ``parquet`` is GeoParquet 1.1 (WKB geometry column, ``geo`` metadata)
through pyarrow, streamed as row groups; pyarrow comes with the ``scale`` extra (the bundled GDAL
of pyogrio has no Parquet driver, and geopandas is not needed for this). Both are written under
a temporary name in the output folder and renamed when complete: a killed job leaves no partial
layer.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DependencyError, OutputError
from ..pipeline.result import FIELDS

__all__ = ["FORMATS", "OUTPUT_FIELDS", "LayerWriter", "make_writer", "reproject"]

OUTPUT_FIELDS: tuple[tuple[str, type], ...] = (*FIELDS, ("source_raster", str))
"""Fields of a batch layer: the pipeline's (contract §4 + provenance) plus the raster's path."""

_NUMPY = {str: object, float: np.float64, int: np.int64}


class LayerWriter:
    """Appends features to one layer under a temporary name; :meth:`commit` renames it.

    Args:
        path: Final file.
        crs_wkt: CRS of every geometry written.
        metadata: Layer metadata (GeoPackage) / file metadata (GeoParquet).
    """

    suffix = ""

    def __init__(self, path: Path, crs_wkt: str, metadata: dict[str, str]) -> None:
        self.path = path
        self.crs_wkt = crs_wkt
        self.metadata = metadata
        self.tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
        self.count = 0

    def write(self, geoms: Sequence[Any], records: dict[str, list[Any]]) -> None:
        """Append features: ``records`` maps each field of :data:`OUTPUT_FIELDS` to values."""
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def commit(self) -> Path:
        """Finish the file and rename it to ``path`` (replacing the job's previous output)."""
        try:
            self._finish()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            raise OutputError(f"could not write {str(self.path)!r}: {exc}") from exc
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Remove the temporary file, if any."""
        if self.tmp.exists():
            self.tmp.unlink()


class _GpkgWriter(LayerWriter):
    suffix = ".gpkg"
    _created = False

    def write(self, geoms: Sequence[Any], records: dict[str, list[Any]]) -> None:
        if not len(geoms) and self._created:
            return
        import shapely
        from pyogrio.raw import write

        options: dict[str, Any] = {"append": self._created}
        if not self._created:
            options["dataset_options"] = {"VERSION": "1.2"}  # readable by QGIS 3.22's GDAL
            options["layer_metadata"] = dict(self.metadata)
        write(
            str(self.tmp),
            np.array(shapely.to_wkb(np.asarray(geoms, dtype=object)), dtype=object),
            [np.array(records[n], dtype=_NUMPY[t]) for n, t in OUTPUT_FIELDS],
            [n for n, _ in OUTPUT_FIELDS],
            driver="GPKG",
            layer="segments",
            geometry_type="Polygon",
            crs=self.crs_wkt,
            **options,
        )
        self._created = True
        self.count += len(geoms)

    def _finish(self) -> None:
        if not self._created:  # no feature at all: an empty layer with the schema
            self.write([], {n: [] for n, _ in OUTPUT_FIELDS})


class _ParquetWriter(LayerWriter):
    suffix = ".parquet"

    def __init__(self, path: Path, crs_wkt: str, metadata: dict[str, str]) -> None:
        super().__init__(path, crs_wkt, metadata)
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise DependencyError(
                "GeoParquet output needs pyarrow; install the scale extra "
                "(pip install '.[scale]') or use --format gpkg"
            ) from exc
        from pyproj import CRS

        self._pa = pa
        types = {str: pa.string(), float: pa.float64(), int: pa.int64()}
        geo = {
            "version": "1.1.0",
            "primary_column": "geometry",
            "columns": {
                "geometry": {
                    "encoding": "WKB",
                    "geometry_types": ["Polygon"],
                    "crs": CRS.from_wkt(crs_wkt).to_json_dict(),
                }
            },
        }
        self.schema = pa.schema(
            [pa.field("geometry", pa.binary())] + [pa.field(n, types[t]) for n, t in OUTPUT_FIELDS],
            metadata={
                b"geo": json.dumps(geo).encode(),
                **{k.encode(): v.encode() for k, v in metadata.items()},
            },
        )
        self._writer = pq.ParquetWriter(str(self.tmp), self.schema, compression="zstd")

    def write(self, geoms: Sequence[Any], records: dict[str, list[Any]]) -> None:
        import shapely

        if not len(geoms):
            return
        columns = [
            self._pa.array(list(shapely.to_wkb(np.asarray(geoms, dtype=object))), self._pa.binary())
        ]
        columns += [self._pa.array(records[n], self.schema.field(n).type) for n, _ in OUTPUT_FIELDS]
        self._writer.write_table(self._pa.Table.from_arrays(columns, schema=self.schema))
        self.count += len(geoms)

    def _finish(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        self._writer.close()  # idempotent
        super().abort()


FORMATS: dict[str, type[LayerWriter]] = {"gpkg": _GpkgWriter, "parquet": _ParquetWriter}
"""Output format name -> writer class."""


def make_writer(fmt: str, path: Path, crs_wkt: str, metadata: dict[str, str]) -> LayerWriter:
    """The writer of format ``fmt`` (a key of :data:`FORMATS`)."""
    return FORMATS[fmt](path, crs_wkt, metadata)


def reproject(geoms: Sequence[Any], src_wkt: str, dst_wkt: str, max_segment: float) -> list[Any]:
    """Polygons from ``src_wkt`` to ``dst_wkt``; edges densified to ``max_segment`` (source units).

    Straight edges in one CRS bend in another, so long pixel edges are first split into
    pieces no longer than ``max_segment`` (a few pixels), then every vertex is transformed.
    """
    import shapely
    from pyproj import CRS, Transformer

    src, dst = CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt)
    if src == dst or not len(geoms):
        return list(geoms)
    transformer = Transformer.from_crs(src, dst, always_xy=True)

    def move(xy: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    dense = shapely.segmentize(np.asarray(geoms, dtype=object), max_segment)
    return list(shapely.transform(dense, move))

"""The osgeo.ogr engine writes the same layer as pyogrio, and a small write loads no pandas."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pyogrio
import pytest
import shapely
from rasterio.crs import CRS
from shapely.geometry import box

from backend.errors import OutputError
from backend.geo import ogr_writer, writers
from backend.geo.writers import write_polygons

pytest.importorskip("osgeo.ogr")

SCHEMA = [("prompt", str), ("score", float), ("pixels", int)]
WKT = CRS.from_epsg(32633).to_wkt()


def _layer(n: int, multi: bool = False):
    polygons = [box(i, 0, i + 1, 1).difference(box(i + 0.4, 0.4, i + 0.6, 0.6)) for i in range(n)]
    if multi and polygons:
        polygons[0] = shapely.MultiPolygon([polygons[0], box(50, 50, 51, 51)])
    records = [{"prompt": f"red {i}", "score": 0.5 + i / 10, "pixels": 10 + i} for i in range(n)]
    return polygons, records


def _write(path, engine, monkeypatch, n=3, multi=False, **kw):
    monkeypatch.setattr(writers, "_choose_engine", lambda _n, _driver: engine)
    polygons, records = _layer(n, multi)
    return write_polygons(path, polygons, records, crs_wkt=WKT, schema=SCHEMA, **kw)


@pytest.mark.parametrize(
    ("suffix", "n", "multi"),
    [(".gpkg", 3, False), (".gpkg", 2, True), (".gpkg", 0, False), (".geojson", 3, False)],
)
def test_same_layer_as_pyogrio(tmp_path, monkeypatch, suffix, n, multi):
    meta = {"prompt": "red", "tile_px": "1024"} if suffix == ".gpkg" else None
    a = _write(tmp_path / f"ogr{suffix}", ogr_writer.write_layer, monkeypatch, n, multi,
               metadata=meta)  # fmt: skip
    b = _write(tmp_path / f"pyogrio{suffix}", pyogrio.raw.write, monkeypatch, n, multi,
               metadata=meta)  # fmt: skip
    info_a, info_b = pyogrio.read_info(a), pyogrio.read_info(b)
    for key in ("crs", "features", "geometry_type", "layer_metadata"):
        assert info_a[key] == info_b[key], key
    assert list(info_a["fields"]) == list(info_b["fields"]) == ["prompt", "score", "pixels"]
    assert list(info_a["dtypes"]) == list(info_b["dtypes"])
    _, _, geom_a, fields_a = pyogrio.raw.read(a)
    _, _, geom_b, fields_b = pyogrio.raw.read(b)
    for ga, gb in zip(geom_a, geom_b, strict=True):
        assert shapely.equals_exact(shapely.from_wkb(ga), shapely.from_wkb(gb), 0.0)
    for fa, fb in zip(fields_a, fields_b, strict=True):
        assert list(fa) == list(fb)
    if n:
        assert info_a["features"] == n and list(fields_a[2]) == [10 + i for i in range(n)]


def test_failed_ogr_write_leaves_nothing(tmp_path, monkeypatch):
    def fail(path, *args, **kwargs):
        ogr_writer.write_layer(path, *args, **kwargs)
        raise RuntimeError("sqlite3_exec failed: database or disk is full")

    with pytest.raises(OutputError, match="is full"):
        _write(tmp_path / "o.gpkg", fail, monkeypatch)
    assert os.listdir(tmp_path) == []


def test_bad_crs_is_an_output_error(tmp_path, monkeypatch):
    monkeypatch.setattr(writers, "_choose_engine", lambda _n, _d: ogr_writer.write_layer)
    polygons, records = _layer(1)
    with pytest.raises(OutputError, match="CRS"):
        write_polygons(tmp_path / "o.gpkg", polygons, records, crs_wkt="nonsense", schema=SCHEMA)
    assert os.listdir(tmp_path) == []


def test_small_write_in_a_fresh_process_loads_no_pandas(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        from shapely.geometry import box
        from backend.geo.writers import write_polygons
        write_polygons({str(tmp_path / "o.gpkg")!r}, [box(0, 0, 1, 1)],
                       [{{"prompt": "red"}}], crs_wkt="EPSG:32633", schema=[("prompt", str)])
        print(sorted(m for m in ("pandas", "pyogrio") if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert pyogrio.read_info(tmp_path / "o.gpkg")["features"] == 1


def test_large_layers_and_loaded_pyogrio_use_pyogrio():
    assert writers._choose_engine(writers.OGR_MAX_FEATURES + 1, "GPKG") is pyogrio.raw.write
    assert writers._choose_engine(1, "GeoJSON") is pyogrio.raw.write
    assert writers._choose_engine(1, "GPKG") is pyogrio.raw.write  # loaded in this process

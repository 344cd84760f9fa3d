"""Atomic GeoPackage / GeoJSON writing."""

from __future__ import annotations

import os

import pyogrio
import pytest
import shapely
from rasterio.crs import CRS
from shapely.geometry import box

from backend.errors import OutputError
from backend.geo import writers
from backend.geo.writers import check_output_path, write_polygons

SCHEMA = [("prompt", str), ("score", float), ("pixels", int)]
WKT = CRS.from_epsg(32633).to_wkt()


def _write(path, n=2, **kw):
    polygons = [box(i, 0, i + 1, 1).difference(box(i + 0.4, 0.4, i + 0.6, 0.6)) for i in range(n)]
    records = [{"prompt": "red", "score": 0.5 + i / 10, "pixels": 10 + i} for i in range(n)]
    return write_polygons(path, polygons, records, crs_wkt=WKT, schema=SCHEMA, **kw)


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
def test_roundtrip(tmp_path, suffix):
    out = _write(tmp_path / f"o{suffix}")
    info = pyogrio.read_info(out)
    assert info["crs"] == "EPSG:32633" and info["features"] == 2
    _, _, geometry, fields = pyogrio.raw.read(out)
    first = shapely.from_wkb(geometry[0])
    assert len(first.interiors) == 1 and first.area == pytest.approx(0.96)
    assert list(fields[1]) == pytest.approx([0.5, 0.6])
    assert os.listdir(tmp_path) == [out.name]


def test_empty_layer_keeps_the_schema(tmp_path):
    out = _write(tmp_path / "e.gpkg", n=0)
    info = pyogrio.read_info(out)
    assert info["features"] == 0 and list(info["fields"]) == ["prompt", "score", "pixels"]


def test_no_overwrite_unless_asked(tmp_path):
    out = tmp_path / "o.gpkg"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        _write(out)
    assert out.read_bytes() == b"keep me"
    _write(out, overwrite=True)
    assert pyogrio.read_info(out)["features"] == 2
    assert os.listdir(tmp_path) == ["o.gpkg"]


def test_file_appearing_during_the_write_is_not_clobbered(tmp_path, monkeypatch):
    out = tmp_path / "race.gpkg"
    real_write = pyogrio.raw.write

    def write_then_someone_else_creates(path, *args, **kwargs):
        real_write(path, *args, **kwargs)
        out.write_bytes(b"theirs")

    monkeypatch.setattr(pyogrio.raw, "write", write_then_someone_else_creates)
    with pytest.raises(OutputError, match="already exists"):
        _write(out)
    assert out.read_bytes() == b"theirs"
    assert os.listdir(tmp_path) == ["race.gpkg"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    real_write = pyogrio.raw.write

    def write_then_fail(path, *args, **kwargs):
        real_write(path, *args, **kwargs)  # a complete temp file exists now
        raise RuntimeError("disk full")

    monkeypatch.setattr(pyogrio.raw, "write", write_then_fail)
    with pytest.raises(OutputError, match="disk full"):
        _write(tmp_path / "o.gpkg")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing" / "o.gpkg", "does not exist"),
        (lambda p: (p / "file.txt").write_text("x") and p / "file.txt" / "o.gpkg", "not a folder"),
        (lambda p: p / "o.shp", "unsupported extension"),
        (lambda p: (p / "d.gpkg").mkdir() or p / "d.gpkg", "is a folder"),
    ],
)
def test_bad_output_paths(tmp_path, make, match):
    with pytest.raises(OutputError, match=match):
        check_output_path(make(tmp_path))


def test_read_only_folder(tmp_path, monkeypatch):
    # root ignores chmod, so simulate what os.access reports for a read-only folder
    monkeypatch.setattr(writers.os, "access", lambda path, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        check_output_path(tmp_path / "o.gpkg")

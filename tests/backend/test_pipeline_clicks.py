"""Clicks in the pipeline: per-tile clicks, the clicks field, refining one click's tiles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from shapely.geometry import Point, box

from backend.errors import InputError
from backend.pipeline import segment_raster
from backend.pipeline.clicks import Click, parse_clicks, parse_point, read_points
from backend.pipeline.refine import merge_region, refine_raster
from backend.standins import ClickRedSegmenter, RedSegmenter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_data as md

RES = 0.5
X0, Y0 = md.UTM33_ORIGIN


def _xy(row: float, col: float) -> tuple[float, float]:
    return X0 + col * RES, Y0 - row * RES


def _raster(path: Path, h: int = 256, w: int = 256) -> Path:
    image = md.paint(md.background(h, w), md.rect_mask(h, w, 40, 60, 100, 140))
    return md.write_geotiff(path, image, transform=md.utm_transform())


def test_point_parsing_and_files(tmp_path):
    assert parse_point("10.5, -3") == Click(10.5, -3.0, True)
    assert parse_point("1,2,-") == Click(1.0, 2.0, False)
    for bad in ("1", "1,2,x", "a,b", "1,2,3,4", "nan,1"):
        with pytest.raises(InputError, match="point"):
            parse_point(bad)
    f = tmp_path / "pts.txt"
    f.write_text("# clicks\n1,2,+\n\n3,4,-  # wrong roof\n")
    assert read_points(f) == [Click(1, 2, True), Click(3, 4, False)]
    g = tmp_path / "pts.geojson"
    g.write_text('{"type":"FeatureCollection","features":[{"type":"Feature","geometry":'
                 '{"type":"Point","coordinates":[5,6]},"properties":{"label":0}}]}')
    assert read_points(g) == [Click(5, 6, False)]
    f.write_text("1,2\nbroken\n")
    with pytest.raises(InputError, match="line 2"):
        read_points(f)
    assert parse_clicks("1,2,+;3,4,-") == [Click(1, 2, True), Click(3, 4, False)]


def test_clicks_reach_only_their_tiles_and_are_stored(tmp_path):
    path = _raster(tmp_path / "r.tif")
    seg = ClickRedSegmenter(image_size=128)
    text_only = segment_raster(path, "the red roof", seg)
    x, y = _xy(200.5, 200.5)  # far from the red square: a positive click adds a square there
    result = segment_raster(path, "the red roof", seg, points=[Click(x, y, True)])
    assert len(result) == len(text_only) + 1
    assert any(g.contains(Point(x, y)) for g in result.polygons)
    assert not any(g.contains(Point(x, y)) for g in text_only.polygons)
    assert {a["clicks"] for a in result.attributes} == {f"{x:.10g},{y:.10g},+"}
    assert {a["clicks"] for a in text_only.attributes} == {""}
    # only the tiles holding the click were predicted with it, in tile pixels
    assert 1 <= len(seg.click_calls) < result.n_tiles
    assert all(len(c) == 1 and c[0][2] for c in seg.click_calls)


def test_negative_click_removes_and_bad_clicks_are_clear(tmp_path):
    path = _raster(tmp_path / "r.tif")
    seg = ClickRedSegmenter(image_size=128)
    x, y = _xy(70.5, 100.5)  # the middle of the red square
    result = segment_raster(path, "the red roof", seg, points=[Click(x, y, False)])
    assert not any(g.contains(Point(x, y)) for g in result.polygons)
    with pytest.raises(InputError, match="outside the raster"):
        segment_raster(path, "the red roof", seg, points=[Click(X0 - 100, Y0, True)])
    with pytest.raises(InputError, match="outside the processed extent"):
        segment_raster(path, "the red roof", seg, bbox=(X0, Y0 - 50, X0 + 50, Y0),
                       points=[Click(*_xy(200, 200), True)])
    with pytest.raises(InputError, match="takes no clicks"):
        segment_raster(path, "the red roof", RedSegmenter(image_size=128),
                       points=[Click(x, y, True)])


def test_refine_reruns_the_clicked_tiles_and_merges(tmp_path):
    path = _raster(tmp_path / "r.tif")
    seg = ClickRedSegmenter(image_size=128)
    first = segment_raster(path, "the red roof", seg)
    calls = seg.calls
    x, y = _xy(200.5, 200.5)
    ref = refine_raster(path, "the red roof", [Click(x, y, True)], first.polygons, first.scores,
                        segmenter=seg)
    assert ref.n_tiles < first.n_tiles  # only the tiles under the click
    assert seg.calls - calls == ref.n_tiles
    assert ref.region.contains(Point(x, y))
    assert any(g.contains(Point(x, y)) for g in ref.polygons)
    # the full run with the same click gives the same answer near the click
    full = segment_raster(path, "the red roof", seg, points=[Click(x, y, True)])
    kept = [g for i, g in enumerate(first.polygons) if i not in ref.remove] + ref.polygons
    near = box(x - 10, y - 10, x + 10, y + 10)
    a = sum(g.intersection(near).area for g in kept)
    b = sum(g.intersection(near).area for g in full.polygons)
    assert a == pytest.approx(b, rel=1e-6) and a > 0
    assert {r["clicks"] for r in ref.attributes} == {f"{x:.10g},{y:.10g},+"}
    with pytest.raises(InputError, match="outside the raster"):
        refine_raster(path, "the red roof", [Click(X0 - 5, Y0 + 5, True)], first.polygons,
                      first.scores, segmenter=seg)
    with pytest.raises(InputError, match="outside the processed extent"):
        refine_raster(path, "the red roof", [Click(*_xy(200, 200), True)], first.polygons,
                      first.scores, segmenter=seg, bbox=(X0, Y0 - 50, X0 + 50, Y0))


def test_merge_keeps_an_object_cut_by_the_region_whole():
    old = [box(0, 0, 10, 10), box(20, 20, 30, 30)]
    region = box(5, -5, 15, 15)
    new = [box(5, 0, 12, 10)]  # the object grows to the right inside the region
    remove, polys, scores = merge_region(old, [0.8, 0.9], new, [0.6], region)
    assert remove == [0]
    assert len(polys) == 1 and polys[0].equals(box(0, 0, 12, 10))
    assert scores[0] == pytest.approx((50 * 0.8 + 70 * 0.6) / 120)


def test_cli_points(tmp_path, capsys):
    import pyogrio

    from backend.cli import main

    path = _raster(tmp_path / "r.tif", 96, 96)
    x, y = _xy(50.5, 40.5)
    pts = tmp_path / "pts.txt"
    pts.write_text(f"{x},{y},-\n")
    out = tmp_path / "o.gpkg"
    base = ["segment", str(path), "--text", "the red roof", "--config", "test-tiny",
            "--device", "cpu", "--quiet", "--threshold", "0.3"]
    assert main([*base, "--out", str(out), "--point", f"{x},{y},+", "--points", str(pts)]) == 0
    meta, _, _, field_data = pyogrio.raw.read(out)
    names = list(meta["fields"])
    assert "clicks" in names
    values = set(field_data[names.index("clicks")])
    assert values <= {f"{x:.10g},{y:.10g},+;{x:.10g},{y:.10g},-"}
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "b.gpkg"), "--point", "1,2,?"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: point '1,2,?' must be") and "\n" not in err
    assert main([*base, "--out", str(tmp_path / "c.gpkg"), "--point", f"{X0 - 50},{Y0}"]) == 2
    assert "outside the raster" in capsys.readouterr().err
    assert not (tmp_path / "b.gpkg").exists() and not (tmp_path / "c.gpkg").exists()

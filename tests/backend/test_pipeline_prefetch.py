"""Start-up work moved out of the first answer: background imports, warm_up, cheaper checks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backend.errors import InputError
from backend.pipeline.blend import _check_prob
from backend.pipeline.prefetch import after_tile_modules, start_imports

ROOT = Path(__file__).resolve().parents[2]


def _fresh(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_start_imports_imports_the_missing_ones_and_ignores_failures():
    assert start_imports(["sys", "json"]) is None  # imported already: no thread
    name = "wave" if "wave" not in sys.modules else "sndhdr"
    thread = start_imports([name, "no_such_module_rs2sam"])
    assert thread is not None and not thread.daemon  # a process exit waits for it
    thread.join(10)
    assert name in sys.modules and "no_such_module_rs2sam" not in sys.modules


def test_after_tile_modules_follow_the_output():
    assert after_tile_modules(None) == ("backend.geo.vectorize", "pyproj")
    assert "backend.geo.writers" in after_tile_modules("out.geojson")
    assert "osgeo.ogr" not in after_tile_modules("out.geojson")


def test_a_fresh_run_writes_the_same_layer_with_the_background_imports(tmp_path):
    got = _fresh(
        f"""
        import json, sys
        sys.path.insert(0, {str(ROOT / "tests" / "data")!r})
        import make_data as md
        image = md.paint(md.background(300, 300), md.rect_mask(300, 300, 40, 50, 70, 70))
        path = md.write_geotiff({str(tmp_path / "r.tif")!r}, image,
                                transform=md.utm_transform(0.5))
        import threading
        from backend.pipeline import segment_raster
        from backend.standins import SleepSegmenter
        seen = {{}}

        class Seen(SleepSegmenter):
            def predict(self, image, text):
                seen.setdefault("at_predict", [t.name for t in threading.enumerate()])
                return super().predict(image, text)

        def stage(name, done, total):
            if name == "read":
                seen["shapely_before"] = "shapely" in sys.modules
        result = segment_raster(path, "red", Seen(0.05, image_size=256), gsd_m=None,
                                out_path={str(tmp_path / "o.gpkg")!r}, stage=stage)
        import pyogrio
        info = pyogrio.read_info(result.out_path)
        print(json.dumps({{"n": len(result), "area": result.attributes[0]["area_m2"],
                          "features": info["features"], "crs": info["crs"], **seen,
                          "threads": sorted(t.name for t in threading.enumerate())}}))
        """
    )
    assert got["n"] == 1 and got["features"] == 1 and got["crs"] == "EPSG:32633"
    assert got["area"] == pytest.approx(30 * 20 * 0.25, rel=1e-3)
    assert not got["shapely_before"]  # nothing of the vectoriser before the run
    assert "rs2sam-imports" in got["at_predict"]  # started with the first model call
    assert "rs2sam-imports" not in got["threads"]  # and ended with the run


def test_a_failing_run_joins_the_import_thread_before_it_raises(tmp_path):
    """A run that fails after its first model call leaves no import thread behind.

    (A process that exited while the thread was in GDAL's start-up aborted with SIGABRT
    instead of the CLI's exit 2: tests/backend/test_reliability.py's full-disk case.)
    """
    got = _fresh(
        f"""
        import json, sys, threading
        sys.path.insert(0, {str(ROOT / "tests" / "data")!r})
        import make_data as md
        image = md.background(300, 300)
        path = md.write_geotiff({str(tmp_path / "r.tif")!r}, image,
                                transform=md.utm_transform(0.5))
        from backend.pipeline import segment_raster
        from backend.standins import SleepSegmenter
        seen = {{}}

        class Fails(SleepSegmenter):
            def predict(self, image, text):
                seen["at_predict"] = [t.name for t in threading.enumerate()]
                raise RuntimeError("model failed")

        try:
            segment_raster(path, "red", Fails(0.0, image_size=256), gsd_m=None,
                           out_path={str(tmp_path / "o.gpkg")!r})
        except RuntimeError as exc:
            seen["error"] = str(exc)
        seen["threads"] = [t.name for t in threading.enumerate()]
        print(json.dumps(seen))
        """
    )
    assert got["error"] == "model failed"
    assert "rs2sam-imports" in got["at_predict"]
    assert "rs2sam-imports" not in got["threads"]
    assert not (tmp_path / "o.gpkg").exists()


def test_warm_up_leaves_nothing_to_import_or_start():
    got = _fresh(
        """
        import json, sys
        from backend.pipeline import warm_up
        warm_up()
        from osgeo import gdal
        names = ["pyproj", "shapely", "rasterio.features", "backend.geo.vectorize",
                 "backend.geo.writers", "backend.geo.ogr_writer", "backend.geo.tile_reader"]
        print(json.dumps({"missing": [n for n in names if n not in sys.modules],
                          "leftover": gdal.VSIStatL("/vsimem/rs2sam_warm_up.gpkg") is not None}))
        """
    )
    assert got == {"missing": [], "leftover": False}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_prob_rejects_every_non_finite_value(bad):
    prob = np.full((4, 4), 0.5, dtype=np.float32)
    prob[2, 3] = bad
    with pytest.raises(InputError, match="1 non-finite"):
        _check_prob(prob, 4)


def test_check_prob_clips_only_a_contract_breaker():
    good = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    assert _check_prob(good, 4) is good  # no copy
    bad = good * 2 - 0.5
    clipped = _check_prob(bad, 4)
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    assert np.array_equal(clipped, np.clip(bad, 0, 1))
    assert _check_prob(np.ones((4, 4), dtype=np.float64), 4).dtype == np.float32


def test_blending_behind_the_model_gives_the_same_result(tmp_path, monkeypatch):
    """Blend + vectorise in a helper thread (read-ahead on) or inline: the same polygons."""
    import threading

    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import make_data as md

    from backend.pipeline import segment_raster
    from backend.pipeline.stream import StripVectoriser
    from backend.standins import RedSegmenter

    push, pushed_on = StripVectoriser.push, set()

    def recording_push(self, *args, **kwargs):
        pushed_on.add(threading.current_thread().name.split("_")[0])
        return push(self, *args, **kwargs)

    monkeypatch.setattr(StripVectoriser, "push", recording_push)

    image = md.background(700, 900)
    for r0, c0 in ((30, 40), (200, 230), (240, 500), (600, 820)):  # some cross tile seams
        md.paint(image, md.rect_mask(700, 900, r0, c0, r0 + 70, c0 + 55))
    path = md.write_geotiff(tmp_path / "r.tif", image, transform=md.utm_transform(0.5))
    results, threads = {}, {}
    for ahead in (True, False):
        seg = RedSegmenter(image_size=256)
        seg.read_ahead = ahead
        pushed_on.clear()
        results[ahead] = segment_raster(path, "red", seg, gsd_m=None)
        threads[ahead] = set(pushed_on)
    assert threads == {True: {"rs2sam-blend"}, False: {threading.current_thread().name}}
    a, b = results[True], results[False]
    assert len(a) == len(b) == 4 and a.n_tiles == b.n_tiles > 9
    for pa, pb, ra, rb in zip(a.polygons, b.polygons, a.attributes, b.attributes, strict=True):
        assert pa.equals_exact(pb, 0) and ra["score"] == rb["score"]
        assert ra["area_m2"] == rb["area_m2"] and ra["pixels"] == rb["pixels"] == 70 * 55


def test_an_error_while_blending_behind_reaches_the_caller(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    import make_data as md

    from backend.pipeline import segment_raster
    from backend.standins import ConstantSegmenter

    path = md.write_geotiff(
        tmp_path / "r.tif", md.background(600, 600), transform=md.utm_transform(0.5)
    )

    class NaNOnSecond(ConstantSegmenter):
        read_ahead = True

        def predict(self, image, text):
            prob = super().predict(image, text)
            if self.calls == 2:
                prob[5, 5] = np.nan
            return prob

    seg = NaNOnSecond(0.9, image_size=256)
    with pytest.raises(InputError, match="1 non-finite"):
        segment_raster(path, "red", seg, gsd_m=None)
    assert 2 <= seg.calls <= 3  # found after at most one more model call

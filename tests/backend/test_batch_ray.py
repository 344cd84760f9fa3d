"""The Ray engine on a local cluster started here (2 CPUs, one cluster for the module)."""

from __future__ import annotations

import pytest
from batch_data import TILE, make_set, objects
from test_batch import _features, iou, read_layer

from backend.batch import BatchOptions, run_batch
from backend.batch.spec import SegmenterSpec

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _options(folder, out, **kw):
    return BatchOptions(
        inputs=[str(folder / "*.tif")],
        queries=["red things"],
        out_dir=str(out),
        segmenter=SegmenterSpec("standin", {"name": "red", "image_size": TILE}),
        tile_px=TILE,
        overlap_px=16,
        chunk_tiles=2,
        gsd_m=None,
        progress=False,
        **kw,
    )


def test_ray_engine_equals_the_single_process_run(cluster, tmp_path):
    folder = tmp_path / "in"
    paths = make_set(folder)
    local = run_batch(_options(folder, tmp_path / "local"))
    summary = run_batch(_options(folder, tmp_path / "ray", engine="ray", workers=2))
    assert summary.exit_code == 1  # the corrupt file
    assert [f["raster"] for f in summary.failures] == [str(folder / "corrupt.tif")]
    assert summary.done == local.done == 48 and summary.failed == 0
    _, geoms, records = read_layer(tmp_path / "ray" / "red_things.gpkg")
    _, ref_geoms, ref_records = read_layer(tmp_path / "local" / "red_things.gpkg")
    assert len(geoms) == len(ref_geoms) == sum(len(objects(k)) for k in range(len(paths)))
    for g_ref, r_ref in zip(ref_geoms, ref_records, strict=True):
        same = [
            i for i, r in enumerate(records) if r["source_raster"] == r_ref["source_raster"]
        ]
        best = max(same, key=lambda i: iou(geoms[i], g_ref))
        assert iou(geoms[best], g_ref) >= 0.999
        assert records[best]["pixels"] == r_ref["pixels"]
    assert _features(tmp_path / "ray" / "red_things.gpkg") == _features(
        tmp_path / "local" / "red_things.gpkg"
    )
    assert ray.is_initialized()  # the engine leaves a session it did not start running


def test_ray_job_resumes_a_local_job(cluster, tmp_path):
    """Engines are interchangeable mid-job: stop a local run, finish it on Ray."""
    folder = tmp_path / "in"
    make_set(folder, n=3, corrupt=False)
    options = _options(folder, tmp_path / "j", stop_after=5)
    with pytest.raises(Exception, match="stop_after"):
        run_batch(options)
    options.stop_after = None
    options.engine, options.workers = "ray", 2
    summary = run_batch(options)
    assert summary.exit_code == 0 and summary.skipped == 5 and summary.processed == 7
    assert run_batch(_options(folder, tmp_path / "clean")).exit_code == 0
    assert _features(tmp_path / "j" / "red_things.gpkg") == _features(
        tmp_path / "clean" / "red_things.gpkg"
    )


def test_cli_engine_ray_exit_1_lists_the_corrupt_file(cluster, tmp_path, capsys):
    import json

    from batch_data import ARGS

    from backend.cli import main

    folder = tmp_path / "in"
    make_set(folder, n=1)
    args = [str(folder / "*.tif"), "--text", "red", "--out", str(tmp_path / "j"), "--quiet"]
    code = main(["batch", *args, "--standin", "red", "--engine", "ray", "--workers", "2", *ARGS])
    out, err = capsys.readouterr()
    assert code == 1
    summary = json.loads(out)
    assert summary["engine"] == "ray" and summary["done"] == 4 and summary["polygons"]["red"] == 5
    assert "corrupt.tif" in err

"""The optional ``stage`` callback of segment_raster / segment_array (used by the QGIS dock)."""

from __future__ import annotations

import numpy as np

from backend.pipeline import segment_array, segment_raster
from backend.standins import RedSegmenter
from tests.backend.test_pipeline import square_raster


def test_stages_in_order_with_tile_counts(tmp_path):
    path = square_raster(tmp_path / "sq.tif")
    stages: list[tuple[str, int, int]] = []
    result = segment_raster(
        path,
        "red",
        RedSegmenter(),
        out_path=tmp_path / "out.gpkg",
        tile_px=64,
        overlap_px=8,
        stage=lambda *args: stages.append(args),
    )
    n = result.n_tiles
    assert n > 1
    assert stages == [
        ("read", 0, 0),
        *[("tiles", k, n) for k in range(1, n + 1)],
        ("vectorize", 0, 0),
        ("write", 0, 0),
    ]


def test_no_write_stage_without_output_and_segment_array_passes_it_on():
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:32, 16:32] = (255, 0, 0)
    stages: list[str] = []
    segment_array(
        image,
        (500000.0, 1.0, 0.0, 4100064.0, 0.0, -1.0),
        "EPSG:32633",
        "red",
        RedSegmenter(),
        tile_px=64,
        stage=lambda name, _done, _total: stages.append(name),
    )
    assert stages == ["read", "tiles", "vectorize"]

"""Soak: 100 queries through the API with the bundled model; memory must not creep (issue 15).

RSS is read from /proc after a warm-up of 10 queries (model loaded, allocator pools filled)
and after the 100th; growth must stay under 5 %.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

from backend import load_segmenter, segment_raster

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_data as md

QUERIES = ["the buildings", "water", "the road", "vegetation", "the red roof"]


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_100_api_queries_do_not_grow_memory(tmp_path: Path) -> None:
    segmenter = load_segmenter(device="cpu")
    # one model tile per query: the raster is at the model's own working resolution
    size, gsd = segmenter.image_size, segmenter.gsd_m or 1.0
    image = md.paint(md.background(size, size), md.rect_mask(size, size, 40, 60, 200, 230))
    raster = md.write_geotiff(tmp_path / "soak.tif", image, transform=md.utm_transform(gsd))
    counts = []
    baseline = 0
    for i in range(100):
        out = tmp_path / f"q{i % 3}.gpkg"  # files written and replaced, as a user would
        result = segment_raster(
            raster, QUERIES[i % len(QUERIES)], segmenter, out_path=out, overwrite=True
        )
        assert result.n_tiles == 1
        counts.append(len(result))
        del result
        if i == 9:
            gc.collect()
            baseline = rss_bytes()
    gc.collect()
    final = rss_bytes()
    growth = (final - baseline) / baseline
    print(
        f"soak: RSS after 10 queries {baseline / 2**20:.1f} MiB, after 100 "
        f"{final / 2**20:.1f} MiB, growth {growth * 100:+.2f} %"
    )
    assert growth < 0.05, f"RSS grew {growth * 100:.1f} % over 90 queries"
    # the same query gives the same answer every time (no state leaks between runs)
    by_query = {q: {c for j, c in enumerate(counts) if j % 5 == k} for k, q in enumerate(QUERIES)}
    assert all(len(v) == 1 for v in by_query.values()), by_query

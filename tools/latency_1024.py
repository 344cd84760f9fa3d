"""CPU latency of one 1024² extent through the real pipeline, per checkpoint (issue 18).

    PYTHONPATH=$PWD .venv/bin/python tools/latency_1024.py A.safetensors [B.safetensors ...]

Writes a 1024² test GeoTIFF (``bench.rasters.make_raster``) once, loads each checkpoint on the
CPU with one torch thread, runs ``segment_raster`` once to warm up and then three times at the
raster's native resolution; prints the median, min and max seconds per checkpoint as JSON.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    """Time every checkpoint in ``argv``; returns the exit status."""
    import torch

    torch.set_num_threads(1)
    import backend
    from backend.pipeline import segment_raster
    from bench.rasters import make_raster

    raster = Path(tempfile.gettempdir()) / "latency_1024.tif"
    if not raster.exists():
        make_raster(raster, 1024)
    out = {}
    for path in argv:
        seg = backend.load_segmenter(path, device="cpu", threads=1)
        segment_raster(str(raster), "the buildings", segmenter=seg, gsd_m=None)  # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            segment_raster(str(raster), "the buildings", segmenter=seg, gsd_m=None)
            times.append(time.perf_counter() - t0)
        out[path] = {"model": seg.name, "median_s": statistics.median(times),
                     "min_s": min(times), "max_s": max(times)}
        print(json.dumps({path: out[path]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Pipeline scaling: time per megapixel and peak RSS of ``segment_raster`` against raster size.

Each size runs in a FRESH subprocess (peak RSS from ``VmHWM``, which exec resets) with the
same stand-in, ``SleepSegmenter`` (a fixed sleep per 1024 x 1024 tile plus fixed numpy
work), so the pipeline's own cost can be read without model noise. The rasters are the ones
``make bench`` uses (:mod:`bench.rasters`); every run checks that each square comes back as
exactly one polygon with IoU >= 0.99, so a fast but wrong pipeline cannot pass. Unlike
``make bench`` it reports CPU time besides wall time, the pipeline's own stage timings, and
(``--profile``) a cProfile top 15: what dominates the time.

    python bench/pipeline_scaling.py --sizes 1000 10000 --seconds 0.2 \
        --work-dir /tmp/rs2sam_bench --out bench_out/pipeline_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TILE_PX = 1024
sys.path.insert(0, str(ROOT))

from bench.rasters import ORIGIN_X, ORIGIN_Y, make_raster, squares_for  # noqa: E402


def _vm_hwm_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _vm_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(raster: Path, size: int, seconds: float, profile: bool) -> dict[str, Any]:
    """One measured run in this process."""
    import shapely
    from shapely.geometry import box

    import backend.geo.raster
    import backend.geo.vectorize
    import backend.geo.writers  # noqa: F401 - import cost is not part of the run
    from backend.pipeline import segment_raster
    from backend.standins import SleepSegmenter

    seg = SleepSegmenter(seconds, image_size=TILE_PX)
    # warm-up on a tiny extent: imports, GDAL driver and PROJ database set-up are one-off costs
    segment_raster(raster, "red", seg, bbox=(ORIGIN_X, ORIGIN_Y - 5, ORIGIN_X + 5, ORIGIN_Y))
    seg.calls = 0
    model_cpu = [0.0]
    predict = seg.predict

    def timed_predict(image: np.ndarray, text: str) -> np.ndarray:
        c0 = time.process_time()
        out = predict(image, text)
        model_cpu[0] += time.process_time() - c0
        return out

    seg.predict = timed_predict  # type: ignore[method-assign]
    rss_before = _vm_rss_mib()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(segment_raster, raster, "red", seg)
        stats = pstats.Stats(prof).sort_stats("tottime")
        stats.print_stats(15)
    else:
        result = segment_raster(raster, "red", seg)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    peak = _vm_hwm_mib()
    expected = [box(*sq.map_box()) for sq in squares_for(size)]
    tree = shapely.STRtree(result.polygons)
    ok = len(result.polygons) == len(expected)
    for square in expected:
        hits = [result.polygons[i] for i in tree.query(square, predicate="intersects")]
        ok &= (
            len(hits) == 1
            and hits[0].intersection(square).area / hits[0].union(square).area >= 0.99
        )
    mpx = size * size / 1e6
    model_s = result.timings["model"]
    return {
        "size_px": size,
        "mpx": mpx,
        "tiles": result.n_tiles,
        "wall_s": wall,
        "model_s": model_s,
        "overhead_s": wall - model_s,
        "overhead_s_per_mpx": (wall - model_s) / mpx,
        "s_per_mpx": wall / mpx,
        "cpu_s": cpu,
        "model_cpu_s": model_cpu[0],
        "overhead_cpu_s_per_mpx": (cpu - model_cpu[0]) / mpx,
        "timings": result.timings,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak,
        "polygons": len(result.polygons),
        "squares": len(expected),
        "squares_ok": bool(ok),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seconds", type=float, default=0.2, help="sleep per 1024^2 tile")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/rs2sam_bench"))
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--profile", action="store_true", help="print a cProfile top 15")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.child_size, args.seconds, args.profile)))
        return 0
    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_LIB", "PROJ_DATA")}
    env["PYTHONPATH"] = str(ROOT)
    rows = []
    for size in args.sizes:
        path = args.work_dir / f"bench_{size}.tif"
        t0 = time.perf_counter()
        make_raster(path, size)
        gen = time.perf_counter() - t0
        cmd = [sys.executable, __file__, "--child", str(path), "--child-size", str(size)]
        cmd += ["--seconds", str(args.seconds)] + (["--profile"] if args.profile else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        if args.profile:
            print(proc.stdout.rsplit("\n", 2)[0], file=sys.stderr)
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["file_mib"] = path.stat().st_size / 2**20
        row["generate_s"] = gen
        rows.append(row)
    header = (
        "| raster | Mpx | tiles | wall s | model s | overhead s/Mpx (wall) "
        "| overhead CPU s/Mpx | s/Mpx | peak RSS MiB | squares ok |"
    )
    print(header)
    print("|" + "---|" * 10)
    for r in rows:
        print(
            f"| {r['size_px']}² | {r['mpx']:.0f} | {r['tiles']} | {r['wall_s']:.1f} | "
            f"{r['model_s']:.1f} | {r['overhead_s_per_mpx']:.4f} | "
            f"{r['overhead_cpu_s_per_mpx']:.4f} | {r['s_per_mpx']:.3f} | "
            f"{r['peak_rss_mib']:.0f} | {r['squares_ok']} ({r['polygons']}/{r['squares']}) |"
        )
    machine = {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "seconds_per_tile": args.seconds,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine, "runs": rows}, indent=2))
    return 0 if all(r["squares_ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

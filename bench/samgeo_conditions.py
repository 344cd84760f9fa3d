"""Pipeline overhead under the conditions of the side-by-side samgeo comparison (issue 19).

Fixed 200 ms per model call (not scaled by tile area), 1024 px tiles with 128 px overlap,
native resolution, each size in a FRESH process with NO warm-up (lazy imports, GDAL and PROJ
start-up are paid inside the measured call, as a user's first call pays them). Overhead =
wall time of the ``segment_raster`` call - 0.2 s x model calls. Every red square must come
back as one polygon with IoU >= 0.99, so a fast but wrong pipeline cannot pass.

    python -m bench.samgeo_conditions --sizes 1000 4000 10000 [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 0.2


class FixedSleepSegmenter:
    """200 ms per call whatever the tile size, then the red pixels (like samgeo's stand-in)."""

    name = "standin-fixed-sleep"
    checkpoint_sha256 = ""
    image_size = 1024
    gsd_m = None

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        self.calls += 1
        time.sleep(SECONDS)
        return ((image[..., 0] > 150) & (image[..., 1] < 100) & (image[..., 2] < 100)).astype(
            np.float32
        )


def iou(a: Any, b: Any) -> float:
    """Intersection over union of two polygons."""
    return a.intersection(b).area / a.union(b).area


def child(raster: Path, size: int, profile: bool) -> dict[str, Any]:
    """One measured call in this fresh process (nothing imported or opened before)."""
    t0 = time.perf_counter()
    from backend.pipeline import segment_raster

    seg = FixedSleepSegmenter()
    kwargs = {"gsd_m": None, "tile_px": 1024, "overlap_px": 128}
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(segment_raster, raster, "red", seg, **kwargs)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(12)
    else:
        result = segment_raster(raster, "red", seg, **kwargs)
    wall = time.perf_counter() - t0
    from shapely.geometry import box

    from bench.rasters import squares_for

    expected = [box(*sq.map_box()) for sq in squares_for(size)]
    ok = len(result.polygons) == len(expected)
    for square in expected:
        hits = [p for p in result.polygons if p.intersects(square)]
        ok &= len(hits) == 1 and iou(hits[0], square) >= 0.99
    mpx = size * size / 1e6
    model_s = SECONDS * seg.calls
    return {
        "size_px": size,
        "mpx": mpx,
        "calls": seg.calls,
        "wall_s": wall,
        "overhead_s": wall - model_s,
        "overhead_s_per_mpx": (wall - model_s) / mpx,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "squares_ok": bool(ok),
    }


def run(sizes: list[int], work_dir: Path, profile: bool = False) -> list[dict[str, Any]]:
    """Each size in a fresh ``python -m bench.samgeo_conditions --child`` process."""
    sys.path.insert(0, str(ROOT))
    from bench.rasters import make_raster

    env = {k: v for k, v in os.environ.items() if k not in ("PROJ_LIB", "PROJ_DATA")}
    env["PYTHONPATH"] = str(ROOT)
    rows = []
    for size in sizes:
        path = work_dir / f"bench_{size}px.tif"
        make_raster(path, size)
        cmd = [sys.executable, "-m", "bench.samgeo_conditions", "--child", str(path)]
        cmd += ["--child-size", str(size)] + (["--profile"] if profile else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        if profile:
            print(proc.stderr[-6000:], file=sys.stderr)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 10000])
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/rs2sam_bench"))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.child_size, args.profile)))
        return 0
    rows = run(args.sizes, args.work_dir, args.profile)
    print("| raster | Mpx | calls | wall s | overhead s/Mpx | read | blend | vectorize | ok |")
    print("|" + "---|" * 9)
    for r in rows:
        t = r["timings"]
        print(
            f"| {r['size_px']}² | {r['mpx']:.0f} | {r['calls']} | {r['wall_s']:.1f} | "
            f"{r['overhead_s_per_mpx']:.4f} | {t['read']:.2f} | {t['blend']:.2f} | "
            f"{t['vectorize']:.2f} | {r['squares_ok']} |"
        )
    return 0 if all(r["squares_ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

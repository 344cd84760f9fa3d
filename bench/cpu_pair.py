"""fp32 and another mode of one config in ONE process, tiles interleaved (a shared machine).

``python -m bench.cpu_pair --config official-large --mode int8 --rounds 2`` builds the model
twice from the same seed (one copy prepared for ``--mode``), then times
fp32, mode, fp32, mode, ... on the same real tile, with the fp32 GEMM limit (and the dynamic
int8 Linear's) measured before each tile. Load from other processes then hits both modes
alike, so the ratio of the medians is the speed-up on this CPU even when the absolute times
are not. Prints ``BENCH_JSON``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch


def main(argv: list[str] | None = None) -> int:
    """Interleaved tiles; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_pair", description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--mode", default="int8")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from backend.model.architectures import architecture_of
    from backend.model.configs import get_model_config
    from backend.model.segmenter import Segmenter
    from bench.cpu_speed import _crop, _peak_rss_mib, bigmem_lock, gemm_limits

    cfg = get_model_config(args.config)
    with bigmem_lock(cfg.name):
        segs = {
            "fp32": Segmenter(
                architecture_of(cfg).build(cfg, device="cpu", seed=0), precision="fp32"
            ),
            args.mode: Segmenter(
                architecture_of(cfg).build(cfg, device="cpu", seed=0), precision=args.mode
            ),
        }
        image = _crop(cfg.image_size)
        times: dict[str, list[float]] = {k: [] for k in segs}
        limits: list[dict[str, float]] = []
        for seg in segs.values():
            seg.predict(image, "the buildings")  # warm-up
        for _ in range(args.rounds):
            for name, seg in segs.items():
                limits.append(gemm_limits(args.threads, seconds=0.5))
                t0 = time.perf_counter()
                seg.predict(image, "the buildings")
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "config": cfg.name,
        "mode": args.mode,
        "tile_s": times,
        "median_s": med,
        "speedup": med["fp32"] / med[args.mode],
        "fp32_gemm_gflops_before_each_tile": [lim["fp32"] for lim in limits],
        "int8_gemm_gflops_before_each_tile": [lim["int8"] for lim in limits],
        "peak_rss_mib": _peak_rss_mib(),
    }
    print("BENCH_JSON " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

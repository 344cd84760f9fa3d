"""One benchmark case in this (fresh) process; prints one JSON line on stdout.

Usage (what ``python -m bench`` runs, once per repetition)::

    python -m bench.case pipeline --raster R.tif --segmenter sleep|test-tiny|nano
    python -m bench.case latency --config nano --raster R.tif
    python -m bench.case vectorize --size 4096
    python -m bench.case train --config nano --steps 6 [--batch 2]   (torchrun for DDP)
    python -m bench.case batch --inputs 'DIR/*.tif' --out DIR --engine local|ray --workers N
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _rss_mib() -> float:
    """Current resident set size of this process in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib() -> float:
    """Peak RSS of this process so far, in MiB.

    Read from ``VmHWM`` (reset at exec), not ``ru_maxrss``, which Linux carries over from
    the parent across fork + exec and would report the orchestrator's own size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TimedSegmenter:
    """Wraps a segmenter and adds up the seconds spent inside the model calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_s = 0.0
        self.tiles = 0
        for name in ("name", "checkpoint_sha256", "image_size", "gsd_m"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        t0 = time.perf_counter()
        out = self.inner.predict(image, text)
        self.model_s += time.perf_counter() - t0
        self.tiles += 1
        return out


def _segmenter(kind: str, threads: int) -> Any:
    if kind in ("sleep", "sleep0"):
        from backend.standins import SleepSegmenter

        return SleepSegmenter(0.2 if kind == "sleep" else 0.0, image_size=1024)
    return _load_model(kind, "cpu", threads)


def _load_model(config: str, device: str, threads: int) -> Any:
    """``nano`` with the shipped default weights (when present), other configs random-init.

    Random weights give noise masks whose thousands of fragments make vectorising, not the
    model, dominate the time; the trained weights give the output a user actually gets.
    """
    import torch

    torch.set_num_threads(threads)
    import backend
    from backend.model.segmenter import DEFAULT_WEIGHTS

    if config == "nano" and DEFAULT_WEIGHTS.is_file():
        return backend.load_segmenter(DEFAULT_WEIGHTS, device=device, threads=threads)
    return backend.load_segmenter(config=config, device=device, threads=threads)


def _weights(seg: Any) -> str:
    """``"random"`` or the first 12 hex digits of the loaded weights' SHA-256."""
    sha = getattr(getattr(seg, "inner", seg), "checkpoint_sha256", "")
    return sha[:12] if sha else "random"


def _check_squares(result: Any, squares_json: Path) -> dict[str, Any]:
    """IoU of each known square with the polygon that covers it; count of extra polygons."""
    from shapely.geometry import box

    from bench.rasters import Square

    squares = [Square(**d) for d in json.loads(squares_json.read_text())]
    polys = list(result.polygons)
    ious, used = [], set()
    pieces_per_square = []
    for sq in squares:
        target = box(*sq.map_box())
        hits = [i for i, p in enumerate(polys) if p.intersects(target)]
        pieces_per_square.append(len(hits))
        used.update(hits)
        if hits:
            from shapely.ops import unary_union

            got = unary_union([polys[i] for i in hits])
            ious.append(got.intersection(target).area / got.union(target).area)
        else:
            ious.append(0.0)
    return {
        "squares": len(squares),
        "polygons": len(polys),
        "min_iou": min(ious) if ious else None,
        "max_pieces_per_square": max(pieces_per_square) if pieces_per_square else None,
        "extra_polygons": len(polys) - len(used),
    }


def case_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    import backend
    from backend.pipeline import segment_raster

    seg = TimedSegmenter(_segmenter(args.segmenter, args.threads))
    import rasterio

    with rasterio.open(args.raster) as ds:
        mpx = ds.width * ds.height / 1e6
    # one tiny call first: lazy imports and GDAL/PROJ initialisation are a once-per-process
    # cost (reported as warmup_s), not a per-megapixel one
    from bench.rasters import make_raster

    warm_raster = Path(args.raster).with_name("warmup_64px.tif")
    make_raster(warm_raster, 64)
    t0 = time.perf_counter()
    segment_raster(warm_raster, "warm-up", segmenter=_segmenter("sleep0", args.threads), gsd_m=None)
    warmup = time.perf_counter() - t0
    rss_before = _rss_mib()
    t0 = time.perf_counter()
    result = segment_raster(args.raster, "red squares", segmenter=seg, gsd_m=None)
    total = time.perf_counter() - t0
    out: dict[str, Any] = {
        "case": "pipeline",
        "segmenter": args.segmenter,
        "weights": _weights(seg),
        "mpx": mpx,
        "total_s": total,
        "model_s": seg.model_s,
        "overhead_s": total - seg.model_s,
        "overhead_s_per_mpx": (total - seg.model_s) / mpx,
        "s_per_mpx": total / mpx,
        "overhead_ratio": (total - seg.model_s) / seg.model_s if seg.model_s else None,
        "tiles": seg.tiles,
        "warmup_s": warmup,
        "rss_before_mib": rss_before,
        "peak_rss_mib": _peak_rss_mib(),
        "backend_version": backend.__version__,
    }
    if args.segmenter == "sleep":
        out.update(_check_squares(result, Path(args.raster).with_suffix(".json")))
    return out


def case_latency(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    from backend.pipeline import segment_raster

    t_import = time.perf_counter() - t_start
    t0 = time.perf_counter()
    seg = _load_model(args.config, args.device, args.threads)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    segment_raster(args.raster, "the buildings", segmenter=seg, gsd_m=None)
    t_first = time.perf_counter() - t0
    warm = []
    for _ in range(args.warm_runs):
        t0 = time.perf_counter()
        segment_raster(args.raster, "the buildings", segmenter=seg, gsd_m=None)
        warm.append(time.perf_counter() - t0)
    return {
        "case": "latency",
        "config": args.config,
        "weights": _weights(seg),
        "device": str(seg.device),
        "import_s": t_import,
        "load_s": t_load,
        "cold_s": t_load + t_first,
        "cold_with_import_s": t_import + t_load + t_first,
        "warm_s": float(np.median(warm)) if warm else None,
        "warm_runs_s": warm,
        "peak_rss_mib": _peak_rss_mib(),
    }


def case_vectorize(args: argparse.Namespace) -> dict[str, Any]:
    from affine import Affine

    from backend.geo.vectorize import mask_to_polygons

    rng = np.random.default_rng(0)
    n = args.size
    # dense, fragmented: random blobs at two scales, about half the pixels set
    coarse = rng.random((n // 8 + 1, n // 8 + 1)) > 0.5
    fine = rng.random((n, n)) > 0.7
    mask = np.kron(coarse, np.ones((8, 8), dtype=bool))[:n, :n] ^ fine
    transform = Affine(0.5, 0, 500_000, 0, -0.5, 5_000_000)
    t0 = time.perf_counter()
    polys = mask_to_polygons(mask, transform)
    dt = time.perf_counter() - t0
    return {
        "case": "vectorize",
        "mpx": n * n / 1e6,
        "polygons": len(polys),
        "seconds": dt,
        "polygons_per_s": len(polys) / dt,
        "mpx_per_s": n * n / 1e6 / dt,
        "peak_rss_mib": _peak_rss_mib(),
    }


def case_train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    from backend.model.rs2sam import build_model
    from training.losses import ReferringLoss

    torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = build_model(args.config)
    model.train()
    net: torch.nn.Module = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    groups = model.param_groups()
    opt = torch.optim.AdamW(
        [{"params": groups["base"], "lr": 5e-5}, {"params": groups["new"], "lr": 1e-4}],
        weight_decay=0.01,
    )
    loss_fn = ReferringLoss()
    size = model.image_size
    rng = np.random.default_rng(rank)
    images = rng.integers(0, 255, (args.batch, size, size, 3), dtype=np.uint8)
    masks = torch.from_numpy(rng.random((args.batch, size, size)) > 0.7).float()
    texts = ["the largest storage tank", "the vehicle on the left"] * args.batch
    texts = texts[: args.batch]

    def step() -> None:
        inputs = model.prepare_inputs(images, texts)
        out = net(inputs)
        loss = loss_fn(out.logits, masks, out.boundary_weight)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    if world > 1:
        dist.barrier()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if world > 1:
        dist.barrier()
    dt = time.perf_counter() - t0
    samples = args.steps * args.batch * world
    out = {
        "case": "train",
        "config": args.config,
        "processes": world,
        "threads_per_process": args.threads,
        "batch_per_process": args.batch,
        "image_size": size,
        "samples_per_s": samples / dt,
        "peak_rss_mib": _peak_rss_mib(),
    }
    if world > 1:
        dist.destroy_process_group()
    return out if rank == 0 else {}


def case_batch(args: argparse.Namespace) -> dict[str, Any]:
    """A batch job over the rasters of ``--inputs`` (a glob) with the 200 ms stand-in."""
    import shutil

    from backend.batch import BatchOptions, run_batch
    from backend.batch.spec import SegmenterSpec

    shutil.rmtree(args.out, ignore_errors=True)
    seconds = float(args.seconds)
    summary = run_batch(
        BatchOptions(
            inputs=[args.inputs],
            queries=["red squares"],
            out_dir=args.out,
            segmenter=SegmenterSpec("standin", {"name": "sleep", "seconds": seconds}),
            engine=args.engine,
            workers=args.workers,
            threads=args.threads,
            gsd_m=None,
            tile_px=1024,
            overlap_px=128,
            progress=False,
        )
    )
    return {
        "case": "batch",
        "engine": args.engine,
        "workers": args.workers,
        "threads": args.threads,
        "chunks": summary.processed,
        "polygons": sum(summary.polygons.values()),
        "failures": len(summary.failures),
        "run_s": summary.run_seconds,
        "total_s": summary.seconds,
        "chunks_per_s": summary.chunks_per_s,
        "model_share": summary.model_share,
        "peak_rss_mib": _peak_rss_mib(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.case")
    sub = parser.add_subparsers(dest="kind", required=True)
    p = sub.add_parser("pipeline")
    p.add_argument("--raster", required=True)
    p.add_argument("--segmenter", default="sleep")
    p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("latency")
    p.add_argument("--raster", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warm-runs", type=int, default=3)
    p = sub.add_parser("vectorize")
    p.add_argument("--size", type=int, default=4096)
    p = sub.add_parser("train")
    p.add_argument("--config", required=True)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p = sub.add_parser("batch")
    p.add_argument("--inputs", required=True, help="a quoted glob of rasters")
    p.add_argument("--out", required=True)
    p.add_argument("--engine", default="local")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=0.2)
    args = parser.parse_args(argv)
    handler = {
        "batch": case_batch,
        "pipeline": case_pipeline,
        "latency": case_latency,
        "vectorize": case_vectorize,
        "train": case_train,
    }[args.kind]
    result = handler(args)
    if result:
        sys.stdout.write("BENCH_JSON " + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

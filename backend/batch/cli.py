"""``python -m backend batch`` / ``rs2sam batch``: the batch job on the command line.

Exit status: 0 everything done; 1 some raster or chunk failed (the others are in the output;
the JSON summary on stdout lists the failures; re-run to retry them); 2 a bad argument or input
(one line on stderr, nothing started); 130 interrupted (Ctrl-C or SIGTERM: re-run the same
command to resume).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

__all__ = ["add_batch_parser", "run_batch_command"]

EXIT_FAILED_CHUNKS = 1


def add_batch_parser(sub: Any, bands: Any, gsd: Any) -> None:
    """Add the ``batch`` sub-command to ``python -m backend``'s sub-parsers."""
    p = sub.add_parser(
        "batch",
        help="segment many rasters or a whole mosaic; resumable, local or on Ray",
        description="Segment every raster of INPUT (files, quoted globs, .txt lists of paths, "
        "VRT mosaics) for each --text; write one layer per query into --out (a folder, which "
        "also holds the job's manifest: re-run the same command to resume).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="raster, 'glob/*.tif', list.txt")
    p.add_argument("--text", action="append", required=True, help="a query; repeat for more")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--format", default="gpkg", choices=("gpkg", "parquet"), help="output format")
    p.add_argument("--crs", metavar="CRS", help="output CRS (default: the first raster's)")
    p.add_argument("--engine", default="local", help="local (default) or ray")
    p.add_argument("--workers", type=int, default=1, help="worker processes / Ray actors")
    p.add_argument("--threads-per-worker", type=int, default=2, metavar="N",
                   help="chunks each worker runs at once (I/O overlaps the model)")  # fmt: skip
    p.add_argument("--address", help="Ray cluster: auto or ray://HOST:10001 (default: local)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G", help="Ray GPUs")
    p.add_argument("--chunk-tiles", type=int, default=8, metavar="N",
                   help="model tiles per chunk side (default 8)")  # fmt: skip
    model = p.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", metavar="PATH", help="a .safetensors checkpoint")
    model.add_argument("--config", metavar="NAME", help="model config name (random init)")
    model.add_argument("--standin", help=argparse.SUPPRESS)  # red | constant | sleep[:SECONDS]
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for each model")
    p.add_argument("--threshold", type=float, default=0.5, help="probability cut (default 0.5)")
    p.add_argument("--min-area", type=float, default=0.0, metavar="M2", help="drop smaller (m²)")
    p.add_argument("--simplify", type=float, default=0.0, metavar="M", help="map units")
    p.add_argument("--bands", type=bands, metavar="B,B,B", help="bands as R,G,B (or one band)")
    p.add_argument("--gsd", type=gsd, default="auto", metavar="M", help="m/px, native or auto")
    p.add_argument("--assume-crs", metavar="CRS", help="CRS of rasters that have none")
    p.add_argument("--tile-px", type=int, metavar="N", help="model tile size (default: model's)")
    p.add_argument("--overlap-px", type=int, metavar="N", help="tile overlap (default tile/8)")
    p.add_argument("--batch-size", type=int, default=1, metavar="N", help="tiles per batch")
    p.add_argument("--restart", action="store_true", help="forget the folder's job; start anew")
    p.add_argument("--overwrite", action="store_true", help="replace output files not this job's")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")
    p.set_defaults(handler=run_batch_command)


def _spec(args: argparse.Namespace) -> Any:
    from ..errors import InputError
    from .spec import SegmenterSpec

    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads} must be >= 1")
    if args.standin is not None:
        name, _, seconds = args.standin.partition(":")
        options: dict[str, Any] = {"name": name, "image_size": args.tile_px or 1024}
        if seconds:
            try:
                options["seconds"] = float(seconds)
            except ValueError:
                raise InputError(f"--standin {args.standin!r}: seconds must be a number") from None
        return SegmenterSpec("standin", options)
    options = {"device": args.device}
    if args.checkpoint:
        from pathlib import Path

        if not Path(args.checkpoint).is_file():
            raise InputError(f"--checkpoint {args.checkpoint!r} does not exist; check the path")
        options["checkpoint"] = str(Path(args.checkpoint).absolute())
    if args.config:
        options["config"] = args.config
    if args.threads is not None:
        options["threads"] = args.threads
    return SegmenterSpec("model", options)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # same path as Ctrl-C: stop, keep what is done


def run_batch_command(args: argparse.Namespace) -> int:
    """Run the job of parsed ``args``; print the JSON summary; return the exit status."""
    from .job import BatchOptions, run_batch

    options = BatchOptions(
        inputs=list(args.inputs),
        queries=list(args.text),
        out_dir=args.out,
        segmenter=_spec(args),
        fmt=args.format,
        out_crs=args.crs,
        engine=args.engine,
        workers=args.workers,
        threads=args.threads_per_worker,
        address=args.address,
        gpus_per_worker=args.gpus_per_worker,
        chunk_tiles=args.chunk_tiles,
        threshold=args.threshold,
        min_area_m2=args.min_area,
        simplify=args.simplify,
        bands=args.bands,
        gsd_m=args.gsd,
        assume_crs=args.assume_crs,
        tile_px=args.tile_px,
        overlap_px=args.overlap_px,
        batch_size=args.batch_size,
        restart=args.restart,
        overwrite=args.overwrite,
        progress=False if args.quiet else None,
    )
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        summary = run_batch(options)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(json.dumps(summary.to_json(), indent=2))
    for failure in summary.failures:
        where = f"chunk {failure['chunk']} of " if failure["chunk"] is not None else ""
        print(f"failed: {where}{failure['raster']}: {failure['error']}", file=sys.stderr)
    return EXIT_FAILED_CHUNKS if summary.exit_code else 0

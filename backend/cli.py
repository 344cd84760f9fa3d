"""Command line: ``python -m backend segment RASTER --text TEXT --out OUT.gpkg [...]``.

Exit status 0 on success; 2 on a user error, with one line on stderr that names the bad value
and the fix (no traceback, no output file left behind); 130 when interrupted (Ctrl-C), 143 on
SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from .cli_args import parse_bands as _bands
from .cli_args import parse_bbox as _bbox
from .cli_args import parse_gsd as _gsd
from .errors import Cancelled, DependencyError, InputError, Rs2SamError

__all__ = ["main"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class _Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C so temporary files are removed."""


def _on_sigterm() -> Any:
    """Turn SIGTERM into :class:`_Terminated` (main thread only); return the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    return signal.signal(signal.SIGTERM, handler)


class _UsageError(Exception):
    """An argparse error, turned into one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m backend`` argument parser."""
    parser = _Parser(prog="python -m backend", description="Segment by text (RS2-SAM 2) backend.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    seg = sub.add_parser(
        "segment",
        help="segment what a text describes in a georeferenced raster; write polygons",
        description="Segment what TEXT describes in RASTER and write polygons (raster CRS) "
        "to a GeoPackage or GeoJSON.",
    )
    seg.add_argument("raster", metavar="RASTER", help="any GDAL-readable georeferenced raster")
    seg.add_argument("--text", required=True, help="what to segment, e.g. 'the river'")
    seg.add_argument("--out", required=True, metavar="OUT.gpkg", help=".gpkg or .geojson")
    seg.add_argument("--bbox", type=_bbox, metavar="MINX,MINY,MAXX,MAXY", help="area to process")
    seg.add_argument("--bbox-crs", metavar="CRS", help="CRS of --bbox (default: the raster's)")
    seg.add_argument(
        "--aoi",
        metavar="WKT|FILE",
        help="area of interest: polygon WKT, or a vector file whose polygons are used",
    )
    seg.add_argument("--aoi-crs", metavar="CRS", help="CRS of a WKT --aoi (default: the raster's)")
    model = seg.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", metavar="PATH", help="a .safetensors checkpoint")
    model.add_argument("--config", metavar="NAME", help="model config name (random init)")
    model.add_argument(
        "--standin",
        choices=("red", "constant", "sleep"),
        help=argparse.SUPPRESS,  # stand-in segmenters for tests and benchmarks
    )
    seg.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    seg.add_argument("--threads", type=int, metavar="N", help="CPU threads for the model")
    seg.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16", "int8"),
        help="auto (default: fastest within the fidelity bar) | fp32 | bf16 | int8",
    )
    seg.add_argument("--threshold", type=float, default=0.5, help="probability cut (default 0.5)")
    seg.add_argument("--min-area", type=float, default=0.0, metavar="M2", help="drop smaller (m²)")
    seg.add_argument("--simplify", type=float, default=0.0, metavar="M", help="map units")
    seg.add_argument("--bands", type=_bands, metavar="B,B,B", help="bands as R,G,B (or one band)")
    seg.add_argument(
        "--gsd", type=_gsd, default="auto", metavar="M", help="working m/px, 'native' or 'auto'"
    )
    seg.add_argument("--assume-crs", metavar="CRS", help="CRS of a raster that has none")
    seg.add_argument("--tile-px", type=int, metavar="N", help="model tile size (default: model's)")
    seg.add_argument("--overlap-px", type=int, metavar="N", help="tile overlap (default tile/8)")
    seg.add_argument("--batch-size", type=int, default=1, metavar="N", help="tiles per batch")
    seg.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    seg.add_argument(
        "--allow-large",
        action="store_true",
        help="run even when the plan exceeds the limits (10,000 tiles or 4 h of model time)",
    )
    seg.add_argument("--point", action="append", default=[], metavar="X,Y[,+|-]",
                     help="a click in the raster's CRS next to the text (+ belongs, - does not; "
                          "repeatable); the tiles holding it are predicted with it")
    seg.add_argument("--points", metavar="FILE", help="clicks: lines X,Y[,+|-] or a GeoJSON")
    seg.add_argument("--quiet", action="store_true", help="no progress bar")
    seg.add_argument("-v", "--verbose", action="store_true", help="log details")
    seg.set_defaults(handler=_segment)

    imp = sub.add_parser(
        "import-official",
        help="convert the published RS2-SAM 2 weights (a release folder) into one checkpoint",
        description="Convert a folder of the published RS2-SAM 2 weights (ReeF2025/RS2-SAM2: "
        "rrsisd/ or refseg/) into one self-describing .safetensors checkpoint that "
        "--checkpoint, load_segmenter and the QGIS plugin take. Needs the [official] extra.",
    )
    imp.add_argument("folder", metavar="DIR", help="release folder with config.json and weights")
    imp.add_argument("--out", required=True, metavar="FILE.safetensors", help="checkpoint")
    imp.add_argument("--fp16", action="store_true", help="store float16 (half the file size)")
    imp.add_argument(
        "--gsd",
        type=float,
        default=None,
        metavar="M",
        help="working resolution in m/px stored with the model (default 0.5)",
    )
    imp.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    imp.add_argument("-v", "--verbose", action="store_true", help="log details")
    imp.set_defaults(handler=_import_official)

    from .batch.cli import add_batch_parser

    add_batch_parser(sub, _bands, _gsd)  # sets handler=run_batch_command
    from .model_store.cli import add_models_parser

    add_models_parser(sub)  # sets handler=run_models_command
    return parser


def _import_official(args: argparse.Namespace) -> int:
    from .model.official.importer import import_official

    result = import_official(
        args.folder, args.out, fp16=args.fp16, gsd_m=args.gsd, overwrite=args.overwrite
    )
    print(result.summary())
    return EXIT_OK


def _load_segmenter(args: argparse.Namespace) -> Any:
    if args.standin is not None:
        from . import standins

        if args.standin == "red":
            return standins.RedSegmenter()
        if args.standin == "constant":
            return standins.ConstantSegmenter(1.0)
        return standins.SleepSegmenter(0.05)
    try:
        from . import load_segmenter
    except ImportError as exc:  # pragma: no cover - packaging problem
        raise DependencyError(f"the model package cannot be imported ({exc})") from exc
    return load_segmenter(
        args.checkpoint,
        config=args.config,
        device=args.device,
        threads=args.threads,
        precision=args.precision,
    )


def _describe_segmenter(args: argparse.Namespace) -> Any:
    """The model's tile size, working resolution and speed, without loading it."""
    if args.standin is not None:
        return _load_segmenter(args)
    from .model.segmenter import describe_model

    return describe_model(
        args.checkpoint, config=args.config, device=args.device, precision=args.precision
    )


def _read_aoi(value: str, crs: str | None) -> tuple[str, str | None]:
    """``--aoi``: WKT text, or a vector file (all its polygons, in the file's CRS)."""
    from pathlib import Path

    path = Path(value)
    if not path.exists():
        if value.lstrip().upper().startswith(("POLYGON", "MULTIPOLYGON")):
            return value, crs
        raise InputError(f"--aoi {value!r} is neither an existing vector file nor polygon WKT")
    import pyogrio
    import shapely

    try:
        meta, _, geometry, _ = pyogrio.raw.read(str(path))
    except Exception as exc:  # pyogrio raises several DataSource/IO error types
        raise InputError(f"--aoi {value!r} is not a readable vector file ({exc})") from exc
    polygons = [g for g in shapely.from_wkb(geometry) if g is not None and g.area > 0]
    if not polygons:
        raise InputError(f"--aoi {value!r} holds no polygons; give a polygon layer")
    return shapely.unary_union(polygons).wkt, meta.get("crs") or crs


def _segment(args: argparse.Namespace) -> int:
    from .pipeline import segment_raster, validate_inputs

    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads {args.threads} must be >= 1")
    from .outputs import check_not_an_input

    check_not_an_input(args.out, [p for p in (args.aoi, args.checkpoint) if p], option="--out")
    common: dict[str, Any] = {
        "bbox": args.bbox,
        "bbox_crs": args.bbox_crs,
        "out_path": args.out,
        "overwrite": args.overwrite,
        "assume_crs": args.assume_crs,
        "bands": args.bands,
        "threshold": args.threshold,
        "min_area_m2": args.min_area,
        "simplify": args.simplify,
        "gsd_m": args.gsd,
    }
    aoi: dict[str, Any] = {}
    if args.aoi is not None:
        aoi["aoi"], aoi["aoi_crs"] = _read_aoi(args.aoi, args.aoi_crs)
    # validate and plan the whole run (inputs, output, cost) before loading a model
    plan = validate_inputs(
        args.raster,
        args.text,
        segmenter=_describe_segmenter(args),
        tile_px=args.tile_px,
        overlap_px=args.overlap_px,
        allow_large=args.allow_large,
        **aoi,
        **common,
    )
    logger.info("plan: %d tiles of %d px", plan.n_tiles, plan.tile_px)
    from .pipeline.clicks import parse_point, read_points

    points = [parse_point(p) for p in args.point] + (read_points(args.points) if args.points
                                                      else [])
    segmenter = _load_segmenter(args)
    from tqdm import tqdm

    with tqdm(
        total=100,
        unit="%",
        disable=True if args.quiet else None,  # None: only on a terminal
        file=sys.stderr,
        bar_format="{l_bar}{bar}| {elapsed}<{remaining}",
        desc="segment",
    ) as bar:

        def progress(percent: float) -> None:
            bar.update(max(0.0, percent - bar.n))

        result = segment_raster(
            args.raster,
            args.text,
            segmenter,
            tile_px=args.tile_px,
            overlap_px=args.overlap_px,
            batch_size=args.batch_size,
            allow_large=args.allow_large,
            progress=progress,
            points=points,
            **aoi,
            **common,
        )
    total_area = sum(result.areas_m2)
    mean_score = sum(result.scores) / len(result.scores) if result.scores else 0.0
    gsd = "native" if result.gsd_m is None else f"{result.gsd_m:g} m"
    print(
        f"{len(result)} polygons, {total_area:.1f} m² in total, mean score {mean_score:.3f} "
        f"-> {result.out_path} ({result.timings['total']:.1f} s, {result.n_tiles} tiles of "
        f"{result.tile_px} px at {gsd}, model {getattr(segmenter, 'name', 'custom')})"
    )
    return EXIT_OK


_NEGATIVE = re.compile(r"-(\d|\.\d|inf|nan)", re.IGNORECASE)  # numbers, -inf, -nan


def _join_negative_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """Join ``--bbox -12.5,40,-12,41`` into ``--bbox=-12.5,40,-12,41``.

    argparse reads a value that starts with a minus sign as an option, so negative
    coordinates and numbers are joined to their option first.
    """
    takes_value = {
        option
        for action in _all_actions(parser)
        if action.nargs is None
        and action.option_strings
        and action.nargs != 0
        and not isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction)
        for option in action.option_strings
    }
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if item in takes_value and i + 1 < len(items) and _NEGATIVE.match(items[i + 1]):
            out.append(f"{item}={items[i + 1]}")
            i += 2
            continue
        out.append(item)
        i += 1
    return out


def _all_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    actions = list(parser._actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                actions += _all_actions(sub)
    return actions


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(
            _join_negative_values(parser, sys.argv[1:] if argv is None else argv)
        )
    except _UsageError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    rasterio_logger = logging.getLogger("rasterio")
    old_level = rasterio_logger.level
    previous = _on_sigterm()
    try:
        with warnings.catch_warnings():
            if not args.verbose:  # GDAL chatter would break the one-line error contract
                rasterio_logger.setLevel(logging.CRITICAL)
                warnings.filterwarnings("ignore", module="rasterio")
            return args.handler(args)
    except Cancelled as exc:
        print(f"cancelled: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Rs2SamError as exc:
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("cancelled: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _Terminated:
        print("cancelled: terminated (SIGTERM); no output written", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        rasterio_logger.setLevel(old_level)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

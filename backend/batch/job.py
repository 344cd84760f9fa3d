"""A batch job from start to end: check, plan, run (resumably), merge, write, summarise.

    check inputs/output ─ manifest (new or resumed) ─ start workers ─ plan new rasters
      └─ run pending/failed chunks: each outcome is stored (atomic file) and recorded
           └─ per query: per raster merge chunk borders → filter/simplify → output CRS → write

Everything before "start workers" is cheap and raises :class:`~backend.errors.Rs2SamError`
for job-level mistakes (CLI exit 2). Per-raster and per-chunk problems are recorded and listed
in the summary (exit 1). A job that is killed or interrupted keeps what is done: re-running the
same command skips it and produces the output an uninterrupted run would have.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import Cancelled, InputError, OutputError, Rs2SamError
from ..outputs import check_not_an_input
from ..pipeline.options import GsdOption, _check_options
from ..text.lexicon import require_words
from .engines import EngineConfig, make_engine
from .manifest import MANIFEST_NAME, Manifest
from .output import FORMATS
from .spec import SegmenterSpec
from .worker import ChunkOutcome, ChunkTask, WorkerOptions

__all__ = ["BatchInterrupted", "BatchOptions", "BatchSummary", "run_batch"]

WORK_DIR = ".rs2sam_batch"
"""Folder (inside the output folder) of the per-chunk result files."""


class BatchInterrupted(Cancelled):
    """The job stopped before every chunk ran (test hook or signal); re-run to resume."""


@dataclass
class BatchOptions:
    """A batch job (see ``python -m backend batch --help`` for the meaning of each).

    Only ``inputs``, ``queries``, ``out_dir``, the segmenter and the chunk-shaping options
    (``chunk_tiles``, ``threshold``, ``bands``, ``gsd_m``, ``assume_crs``, ``tile_px``,
    ``overlap_px``, ``batch_size``) identify a job for resuming; output options (``fmt``,
    ``out_crs``, ``min_area_m2``, ``simplify``) and the engine may change between runs.
    """

    inputs: list[str]
    queries: list[str]
    out_dir: str
    segmenter: SegmenterSpec = field(default_factory=SegmenterSpec)
    fmt: str = "gpkg"
    out_crs: str | None = None
    engine: str = "local"
    workers: int = 1
    threads: int = 2
    address: str | None = None
    gpus_per_worker: float = 0.0
    chunk_tiles: int = 8
    threshold: float = 0.5
    min_area_m2: float = 0.0
    simplify: float = 0.0
    bands: tuple[int, ...] | None = None
    gsd_m: GsdOption = "auto"
    assume_crs: str | None = None
    tile_px: int | None = None
    overlap_px: int | None = None
    batch_size: int = 1
    restart: bool = False
    overwrite: bool = False
    progress: bool | None = None
    stop_after: int | None = None  # test hook: stop like a kill after this many outcomes


@dataclass
class BatchSummary:
    """What a run did (printed as JSON by the CLI)."""

    chunks: int = 0
    done: int = 0
    skipped: int = 0
    processed: int = 0
    failed: int = 0
    polygons: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    run_seconds: float = 0.0
    chunks_per_s: float = 0.0
    chunks_per_s_per_worker: float = 0.0
    model_share: float | None = None
    engine: str = "local"
    workers: int = 1
    warnings: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """0 when everything was done, 1 when some chunk or raster failed."""
        return 1 if self.failures else 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON."""
        return asdict(self)


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60]
    return slug or "query"


def output_paths(out_dir: Path, queries: list[str], fmt: str) -> dict[str, Path]:
    """One file per query, named after it (``the_buildings.gpkg``)."""
    paths: dict[str, Path] = {}
    used: set[str] = set()
    for query in queries:
        name, n = _slug(query), 2
        while name in used:
            name, n = f"{_slug(query)}_{n}", n + 1
        used.add(name)
        paths[query] = out_dir / f"{name}{FORMATS[fmt].suffix}"
    return paths


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {str(out_dir)!r} is a file; give a folder for the job")
    if not out_dir.exists():
        parent = out_dir.parent
        if not parent.is_dir():
            raise OutputError(
                f"the folder above --out {str(out_dir)!r} does not exist; create it or choose "
                "another --out"
            )
        try:
            out_dir.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot create the output folder {str(out_dir)!r} ({exc})") from exc
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise OutputError(
            f"output folder {str(out_dir)!r} is not writable; choose another --out or fix its "
            "permissions"
        )
    probe = out_dir / f".rs2sam_write_test_{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(
            f"output folder {str(out_dir)!r} is not writable ({exc.strerror}); choose another "
            "--out or fix its permissions"
        ) from exc


def _check_options_cheap(o: BatchOptions) -> list[str]:
    queries = [q.strip() for q in o.queries if isinstance(q, str)]
    if not queries or any(not q for q in queries):
        raise InputError(
            "every --text must be a non-empty description, e.g. --text 'the buildings'"
        )
    if len(set(queries)) != len(queries):
        raise InputError("the same --text is given twice; give each query once")
    for q in queries:  # the pipeline's own checks of the shared options
        require_words(q)
        _check_options(
            q, o.threshold, o.min_area_m2, o.simplify, o.bands, o.gsd_m, o.tile_px,
            o.overlap_px, o.batch_size, "auto", False, 128,
        )  # fmt: skip
    if o.fmt not in FORMATS:
        raise InputError(f"--format {o.fmt!r} is unknown; use {' or '.join(FORMATS)}")
    if not isinstance(o.chunk_tiles, int) or o.chunk_tiles < 1:
        raise InputError(f"--chunk-tiles {o.chunk_tiles!r} must be an integer >= 1")
    if o.out_crs is not None:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(o.out_crs)
        except CRSError as exc:
            raise InputError(f"--crs {o.out_crs!r} is not a CRS; use e.g. EPSG:32633") from exc
    return queries


class _Job:
    """State of one run of :func:`run_batch`."""

    def __init__(self, o: BatchOptions, queries: list[str], out_dir: Path) -> None:
        self.o = o
        self.queries = queries
        self.out_dir = out_dir
        self.chunk_dir = out_dir / WORK_DIR / "chunks"
        self.summary = BatchSummary(engine=o.engine, workers=o.workers)

    def chunk_path(self, chunk_id: int) -> Path:
        return self.chunk_dir / f"{chunk_id:08d}.npz"


def _settings(o: BatchOptions, queries: list[str], paths: list[str]) -> dict[str, Any]:
    return {
        "inputs": paths,
        "queries": queries,
        "segmenter": o.segmenter.to_json(),
        "chunk_tiles": o.chunk_tiles,
        "threshold": o.threshold,
        "bands": list(o.bands) if o.bands else None,
        "gsd_m": o.gsd_m,
        "assume_crs": o.assume_crs,
        "tile_px": o.tile_px,
        "overlap_px": o.overlap_px,
        "batch_size": o.batch_size,
    }


def run_batch(o: BatchOptions) -> BatchSummary:
    """Run (or resume) a batch job; see the module docstring.

    Raises:
        InputError, OutputError, DependencyError: Job-level mistakes, before any work.
        WorkerInitError: The workers could not load the segmenter.
        BatchInterrupted: ``stop_after`` was reached (what is done is kept).
    """
    from .inputs import check_band_counts, read_headers, resolve_inputs

    t_start = time.perf_counter()
    queries = _check_options_cheap(o)
    out_dir = Path(o.out_dir).absolute()
    _check_out_dir(out_dir)
    paths = resolve_inputs(o.inputs)
    for path in [*output_paths(out_dir, queries, o.fmt).values(), out_dir / MANIFEST_NAME]:
        check_not_an_input(path, [*paths, *o.inputs])  # lists and rasters stay untouched
    headers = read_headers(paths, assume_crs=o.assume_crs)
    check_band_counts(headers, o.bands)
    config = EngineConfig(
        spec=o.segmenter,
        options=WorkerOptions(
            threshold=o.threshold,
            bands=tuple(o.bands) if o.bands else None,
            gsd_m=o.gsd_m,
            tile_px=o.tile_px,
            overlap_px=o.overlap_px,
            batch_size=o.batch_size,
            assume_crs=o.assume_crs,
        ),
        workers=o.workers,
        threads=o.threads,
        address=o.address,
        gpus_per_worker=o.gpus_per_worker,
    )
    engine = make_engine(o.engine, config)  # unknown engine / Ray missing: before any work
    manifest_path = out_dir / MANIFEST_NAME
    previous_outputs: list[str] = []
    if o.restart:
        if manifest_path.exists():  # the old job's outputs stay ours to replace
            old = Manifest(manifest_path)
            previous_outputs = list(old.get("outputs") or [])
            old.close()
        for path in (manifest_path, Path(f"{manifest_path}-wal"), Path(f"{manifest_path}-shm")):
            path.unlink(missing_ok=True)
        shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)
    job = _Job(o, queries, out_dir)
    manifest = Manifest(manifest_path)
    try:
        resumed = manifest.check_settings(_settings(o, queries, paths))
        outputs = output_paths(out_dir, queries, o.fmt)
        ours = set(manifest.get("outputs") or []) | set(previous_outputs)
        for path in outputs.values():
            if path.exists() and str(path) not in ours and not o.overwrite:
                raise OutputError(
                    f"output {str(path)!r} already exists and is not this job's; pass "
                    "--overwrite or choose another --out"
                )
        manifest.put("outputs", sorted(ours | {str(p) for p in outputs.values()}))
        if manifest.get("created_at") is None:
            manifest.put("created_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        manifest.add_rasters(paths)
        job.chunk_dir.mkdir(parents=True, exist_ok=True)
        try:
            info = engine.start()
            _check_segmenter(manifest, info, resumed)
            _plan(job, manifest, headers, info)
            _run_chunks(job, manifest, engine)
        finally:
            engine.close()
        _write_outputs(job, manifest, outputs)
        _finish_summary(job, manifest)
    finally:
        manifest.close()
    job.summary.seconds = time.perf_counter() - t_start
    return job.summary


def _check_segmenter(manifest: Manifest, info: dict[str, Any], resumed: bool) -> None:
    stored = manifest.get("segmenter_info")
    if stored is None:
        manifest.put("segmenter_info", info)
    elif stored != info:
        raise InputError(
            f"the workers loaded {info['name']} ({info['checkpoint_sha256'][:12] or 'no hash'}) "
            f"but this job was planned with {stored['name']} "
            f"({stored['checkpoint_sha256'][:12] or 'no hash'}); use the same model or --restart"
        )


def _plan(job: _Job, manifest: Manifest, headers: list[Any], info: dict[str, Any]) -> None:
    """Plan every raster not yet planned (new, or unreadable last time)."""
    import rasterio

    from ..geo.raster import GDAL_CACHE_MB, choose_bands, open_raster, raster_info, resolve_crs
    from .planner import plan_raster

    o = job.o
    tile_px = o.tile_px or int(info.get("image_size") or 1024)
    overlap_px = tile_px // 8 if o.overlap_px is None else o.overlap_px
    if overlap_px >= tile_px:
        raise InputError(f"--overlap-px {overlap_px} must be smaller than --tile-px {tile_px}")
    gsd = info.get("gsd_m") if o.gsd_m == "auto" else o.gsd_m
    by_path = {h.path: h for h in headers}
    for idx, path, planned, _, _ in manifest.rasters():
        if planned:
            continue
        header = by_path[path]
        if header.error is not None:
            manifest.set_raster_error(idx, header.error)
            continue
        try:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_raster(path) as ds:
                r_info = raster_info(ds, resolve_crs(ds, o.assume_crs))
                choose_bands(r_info, o.bands)
                windows = plan_raster(r_info, gsd, tile_px, overlap_px, o.chunk_tiles)
        except (Rs2SamError, OSError, ValueError) as exc:
            manifest.set_raster_error(idx, " ".join(str(exc).split()))
            continue
        manifest.add_plan(
            idx,
            r_info.crs_wkt,
            ((q, w.window, w.span) for q in range(len(job.queries)) for w in windows),
        )


def _run_chunks(job: _Job, manifest: Manifest, engine: Any) -> None:
    """Run every chunk that is not done (pending, failed last time, or whose file is gone)."""
    from tqdm import tqdm

    from .chunkfile import write_atomic

    rasters = {idx: path for idx, path, *_ in manifest.rasters()}
    rows = manifest.chunks()
    todo = [r for r in rows if r.status != "done" or not job.chunk_path(r.id).exists()]
    s = job.summary
    s.chunks = len(rows)
    s.skipped = len(rows) - len(todo)
    tasks = [
        ChunkTask(r.id, rasters[r.raster], job.queries[r.query], r.window, r.span) for r in todo
    ]
    model_s = 0.0
    bar = tqdm(
        total=len(rows),
        initial=s.skipped,
        unit="chunk",
        desc="batch",
        disable=(not job.o.progress) if job.o.progress is not None else None,
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()

    def on_outcome(outcome: ChunkOutcome) -> None:
        nonlocal model_s
        if outcome.ok and outcome.payload is not None:
            write_atomic(job.chunk_path(outcome.chunk_id), outcome.payload)
        manifest.mark(
            outcome.chunk_id,
            ok=outcome.ok,
            error=outcome.error,
            seconds=outcome.seconds,
            model_s=outcome.model_s,
            polygons=outcome.polygons,
        )
        model_s += outcome.model_s
        s.processed += 1
        bar.update(1)
        if not outcome.ok:
            s.failed += 1
            bar.set_postfix(failed=s.failed)
        if job.o.stop_after is not None and s.processed >= job.o.stop_after:
            raise BatchInterrupted(
                f"stopped after {s.processed} chunks (stop_after); re-run to resume"
            )

    try:
        if tasks:
            engine.run(tasks, on_outcome)
    except (BatchInterrupted, KeyboardInterrupt):
        s.interrupted = True
        raise
    finally:
        bar.close()
        s.run_seconds = time.perf_counter() - t0
        if s.processed and s.run_seconds > 0:
            s.chunks_per_s = s.processed / s.run_seconds
            s.chunks_per_s_per_worker = s.chunks_per_s / max(1, job.o.workers)
            s.model_share = model_s / (s.run_seconds * max(1, job.o.workers))


def _write_outputs(job: _Job, manifest: Manifest, outputs: dict[str, Path]) -> None:
    """Merge and write one layer per query from the stored chunk results."""
    import numpy as np

    from .. import __version__
    from ..geo.vectorize import geodesic_areas_m2
    from .chunkfile import read_chunk
    from .merge import merge_chunks
    from .output import make_writer, reproject

    o = job.o
    rasters = manifest.rasters()
    done = [r for r in manifest.chunks("done")]
    crs_list = [crs for _, _, planned, _, crs in rasters if planned and crs]
    if o.out_crs is not None:
        from pyproj import CRS

        out_wkt = CRS.from_user_input(o.out_crs).to_wkt()
    elif crs_list:
        out_wkt = crs_list[0]
    else:
        out_wkt = "EPSG:4326"
    created_at = manifest.get("created_at")
    warnings: set[str] = set()
    for q, query in enumerate(job.queries):
        writer = make_writer(
            o.fmt,
            outputs[query],
            out_wkt,
            {
                "prompt": query,
                "rasters": str(len(rasters)),
                "chunks": str(sum(1 for r in manifest.chunks() if r.query == q)),
                "job": str(job.out_dir),
                "backend_version": __version__,
            },
        )
        total = 0
        try:
            for idx, path, _, _, _ in rasters:
                rows = [r for r in done if r.raster == idx and r.query == q]
                if not rows:
                    continue
                data = [read_chunk(job.chunk_path(r.id)) for r in rows]
                meta = data[0].meta
                warnings.update(meta.get("warnings") or [])
                features = merge_chunks(data, meta["transform"], meta["crs_wkt"])
                geoms = [f.geometry for f in features]
                areas = [f.area_m2 for f in features]
                if o.simplify > 0 and geoms:
                    geoms = [g.simplify(o.simplify, preserve_topology=True) for g in geoms]
                    areas = geodesic_areas_m2(geoms, meta["crs_wkt"])
                keep = [
                    i for i, (g, a) in enumerate(zip(geoms, areas, strict=True))
                    if not g.is_empty and a >= o.min_area_m2
                ]  # fmt: skip
                t = meta["transform"]
                pixel = math.sqrt(abs(t[0] * t[4] - t[1] * t[3]))
                geoms = reproject([geoms[i] for i in keep], meta["crs_wkt"], out_wkt, 8 * pixel)
                n = len(keep)
                records = {
                    "prompt": [query] * n,
                    "prompt_used": [str(meta.get("prompt_used") or query)] * n,
                    "score": [features[i].score for i in keep],
                    "area_m2": [float(areas[i]) for i in keep],
                    "pixels": [features[i].pixels for i in keep],
                    "model": [meta["model"]] * n,
                    "checkpoint_sha256": [meta["checkpoint_sha256"]] * n,
                    "source": [meta["source"]] * n,
                    "gsd_m": [float(meta["gsd_m"])] * n,
                    "threshold": [float(meta["threshold"])] * n,
                    "created_at": [created_at] * n,
                    "source_raster": [path] * n,
                }
                writer.write(np.asarray(geoms, dtype=object), records)
                total += n
            job.summary.outputs[query] = str(writer.commit())
        except BaseException:
            writer.abort()
            raise
        job.summary.polygons[query] = total
    job.summary.warnings = sorted(warnings)


def _finish_summary(job: _Job, manifest: Manifest) -> None:
    rasters = {idx: (path, error) for idx, path, _, error, _ in manifest.rasters()}
    s = job.summary
    counts = manifest.counts()
    s.done = counts.get("done", 0)
    s.chunks = sum(counts.values())
    for path, error in rasters.values():
        if error is not None:
            s.failures.append({"raster": path, "chunk": None, "query": None, "error": error})
    for row in manifest.chunks("failed"):
        s.failures.append(
            {
                "raster": rasters[row.raster][0],
                "chunk": row.id,
                "query": job.queries[row.query],
                "window": list(row.window),
                "error": row.error,
            }
        )

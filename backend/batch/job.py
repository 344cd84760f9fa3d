"""A batch job from start to end: check, plan, run (resumably), merge, write, summarise.

The steps live in :mod:`.planning`, :mod:`.running` and :mod:`.finishing`; the options, summary
and per-run state in :mod:`.state`. This module puts them in order.

    check inputs/output ─ manifest (new or resumed) ─ start workers ─ plan new rasters
      └─ run pending/failed chunks: each outcome is stored (atomic file) and recorded
           └─ per query: per raster merge chunk borders → filter/simplify → output CRS → write

Everything before "start workers" is cheap and raises :class:`~backend.errors.Rs2SamError`
for job-level mistakes (CLI exit 2). Per-raster and per-chunk problems are recorded and listed
in the summary (exit 1). A job that is killed or interrupted keeps what is done: re-running the
same command skips it and produces the output an uninterrupted run would have.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

from ..errors import OutputError
from ..outputs import check_not_an_input
from .engines import EngineConfig, make_engine
from .finishing import finish_summary, write_outputs
from .manifest import MANIFEST_NAME, Manifest
from .planning import (
    check_options_cheap,
    check_out_dir,
    check_segmenter,
    job_settings,
    output_paths,
    plan_rasters,
)
from .running import run_chunks
from .state import WORK_DIR, BatchInterrupted, BatchOptions, BatchSummary, JobState
from .worker import WorkerOptions

__all__ = [
    "WORK_DIR",
    "BatchInterrupted",
    "BatchOptions",
    "BatchSummary",
    "output_paths",
    "run_batch",
]


def run_batch(o: BatchOptions) -> BatchSummary:
    """Run (or resume) a batch job; see the module docstring.

    Raises:
        InputError, OutputError, DependencyError: Job-level mistakes, before any work.
        WorkerInitError: The workers could not load the segmenter.
        BatchInterrupted: ``stop_after`` was reached (what is done is kept).
    """
    from .inputs import check_band_counts, read_headers, resolve_inputs

    t_start = time.perf_counter()
    queries = check_options_cheap(o)
    out_dir = Path(o.out_dir).absolute()
    check_out_dir(out_dir)
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
    job = JobState(o, queries, out_dir)
    manifest = Manifest(manifest_path)
    try:
        resumed = manifest.check_settings(job_settings(o, queries, paths))
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
            check_segmenter(manifest, info, resumed)
            plan_rasters(job, manifest, headers, info)
            run_chunks(job, manifest, engine)
        finally:
            engine.close()
        write_outputs(job, manifest, outputs)
        finish_summary(job, manifest)
    finally:
        manifest.close()
    job.summary.seconds = time.perf_counter() - t_start
    return job.summary

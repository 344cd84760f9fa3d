"""A batch job from start to end: check, plan, run (resumably), merge, write, summarise.

The steps live in :mod:`.planning`, :mod:`.running` and :mod:`.finishing`; the options, summary
and per-run state in :mod:`.state`. This module puts them in order.

    check every input and the output ─ create --out ─ lock it ─ manifest (new or resumed)
      └─ redo changed rasters ─ start workers ─ plan new rasters
           └─ run pending/failed/damaged chunks: each outcome is stored (atomic file), recorded
                └─ per query: per raster merge chunk borders → filter/simplify → CRS → write

Everything before "start workers" is cheap and raises :class:`~backend.errors.Rs2SamError`
for job-level mistakes (CLI exit 2); nothing is created before every input was checked, and a
new job that is refused after that leaves nothing behind (no folder, no manifest). One job at a
time per output folder (:mod:`.lock`). Per-raster and per-chunk problems are recorded and listed
in the summary (exit 1). A job that is killed or interrupted keeps what is done: re-running the
same command skips it and produces the output an uninterrupted run would have.
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..outputs import check_not_an_input
from .engines import EngineConfig, make_engine
from .finishing import finish_summary, write_outputs
from .lock import LOCK_NAME, FolderLock
from .manifest import MANIFEST_NAME, Manifest
from .planning import (
    check_options_cheap,
    check_out_dir,
    check_segmenter,
    job_settings,
    make_out_dir,
    output_paths,
    plan_rasters,
    refresh_identities,
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
        InputError, OutputError, DependencyError: Job-level mistakes, before any work (also:
            another job holds the output folder).
        WorkerInitError: The workers could not load the segmenter.
        BatchInterrupted: ``stop_after`` was reached (what is done is kept).
    """
    from .identity import raster_identity
    from .inputs import check_band_counts, read_headers, resolve_inputs

    t_start = time.perf_counter()
    queries = check_options_cheap(o)
    out_dir = Path(o.out_dir).absolute()
    check_out_dir(out_dir)
    paths = resolve_inputs(o.inputs)
    outputs = output_paths(out_dir, queries, o.fmt)
    for path in [*outputs.values(), out_dir / MANIFEST_NAME, out_dir / LOCK_NAME]:
        check_not_an_input(path, [*paths, *o.inputs])  # lists and rasters stay untouched
    headers = read_headers(paths, assume_crs=o.assume_crs)
    check_band_counts(headers, o.bands)
    identities = {h.path: raster_identity(h.path, h.files) for h in headers}
    engine = make_engine(o.engine, _engine_config(o))  # unknown engine / Ray missing
    created_dir = make_out_dir(out_dir)
    job = JobState(o, queries, out_dir)
    try:
        with FolderLock(out_dir):
            _run_locked(job, paths, headers, identities, outputs, engine)
    except BaseException:
        if created_dir and not any(out_dir.iterdir()):
            out_dir.rmdir()  # a refused new job leaves no folder behind
        raise
    job.summary.seconds = time.perf_counter() - t_start
    return job.summary


def _engine_config(o: BatchOptions) -> EngineConfig:
    return EngineConfig(
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


def _manifest_files(path: Path) -> list[Path]:
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def _old_outputs(manifest_path: Path) -> list[str]:
    """The outputs an existing manifest calls its own (none without a manifest)."""
    if not manifest_path.exists():
        return []
    old = Manifest(manifest_path)
    try:
        return list(old.get("outputs") or [])
    finally:
        old.close()


def _run_locked(
    job: JobState,
    paths: list[str],
    headers: list[Any],
    identities: dict[str, Any],
    outputs: dict[str, Path],
    engine: Any,
) -> None:
    """Everything that happens while the job holds its folder's lock."""
    o, out_dir = job.o, job.out_dir
    manifest_path = out_dir / MANIFEST_NAME
    ours = set(_old_outputs(manifest_path))  # a restarted job's outputs stay ours to replace
    for path in outputs.values():
        if path.exists() and str(path) not in ours and not o.overwrite:
            raise OutputError(
                f"output {str(path)!r} already exists and is not this job's; pass "
                "--overwrite or choose another --out"
            )
    if o.restart:
        for path in _manifest_files(manifest_path):
            path.unlink(missing_ok=True)
        shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)
    new_job = not manifest_path.exists()
    manifest = Manifest(manifest_path)
    try:
        resumed = manifest.check_settings(job_settings(o, job.queries, paths))
        manifest.put("outputs", sorted(ours | {str(p) for p in outputs.values()}))
        if manifest.get("created_at") is None:
            manifest.put("created_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        manifest.add_rasters(paths)
        job.chunk_dir.mkdir(parents=True, exist_ok=True)
        refresh_identities(job, manifest, identities)
        try:
            info = engine.start()
            check_segmenter(manifest, info, resumed)
            plan_rasters(job, manifest, headers, info)
            run_chunks(job, manifest, engine)
        finally:
            engine.close()
        write_outputs(job, manifest, outputs)
        finish_summary(job, manifest)
    except BaseException:
        forget = new_job and job.summary.processed == 0
        manifest.close()
        if forget:  # refused before any chunk ran: as if it never started
            for path in _manifest_files(manifest_path):
                path.unlink(missing_ok=True)
            shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)
        raise
    manifest.close()

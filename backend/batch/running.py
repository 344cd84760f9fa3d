"""Running a batch job's chunks: every outcome is stored (atomic file) and recorded."""

from __future__ import annotations

import logging
import time
from typing import Any

from .manifest import ChunkRow, Manifest
from .state import BatchInterrupted, JobState
from .worker import ChunkOutcome, ChunkTask

__all__ = ["run_chunks"]

logger = logging.getLogger(__name__)


def _stored_ok(job: JobState, row: ChunkRow, raster: str) -> bool:
    """Whether chunk ``row`` is done and its file whole and its own (else it is run again)."""
    from .chunkfile import ChunkFileError, check_chunk, chunk_identity

    path = job.chunk_path(row.id)
    if row.status != "done" or not path.exists():
        return False
    try:
        check_chunk(path, chunk_identity(row.id, raster, job.queries[row.query], row.window))
    except ChunkFileError as exc:
        job.damaged.append(f"{path.name}: {exc}")
        return False
    return True


def _report_damaged(job: JobState) -> None:
    if not job.damaged:
        return
    shown = "; ".join(job.damaged[:3]) + (f"; and {len(job.damaged) - 3} more" if
                                           len(job.damaged) > 3 else "")  # fmt: skip
    message = (
        f"{len(job.damaged)} stored chunk files were damaged or not this job's and are "
        f"computed again ({shown})"
    )
    logger.warning("%s", message)
    job.summary.warnings.append(message)


def run_chunks(job: JobState, manifest: Manifest, engine: Any) -> None:
    """Run every chunk that is not done (pending, failed last time, or whose file is gone)."""
    from tqdm import tqdm

    from .chunkfile import write_atomic

    rasters = {idx: path for idx, path, *_ in manifest.rasters()}
    rows = manifest.chunks()
    todo = [r for r in rows if not _stored_ok(job, r, rasters[r.raster])]
    _report_damaged(job)
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

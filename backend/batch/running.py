"""Running a batch job's chunks: every outcome is stored (atomic file) and recorded."""

from __future__ import annotations

import time
from typing import Any

from .manifest import Manifest
from .state import BatchInterrupted, JobState
from .worker import ChunkOutcome, ChunkTask

__all__ = ["run_chunks"]


def run_chunks(job: JobState, manifest: Manifest, engine: Any) -> None:
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

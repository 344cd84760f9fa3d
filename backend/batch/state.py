"""A batch job's options, summary and per-run state (shared by planning, running, finishing)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Cancelled
from ..pipeline.options import GsdOption
from .spec import SegmenterSpec

__all__ = ["WORK_DIR", "BatchInterrupted", "BatchOptions", "BatchSummary", "JobState"]

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


class JobState:
    """State of one run of :func:`run_batch`."""

    def __init__(self, o: BatchOptions, queries: list[str], out_dir: Path) -> None:
        self.o = o
        self.queries = queries
        self.out_dir = out_dir
        self.chunk_dir = out_dir / WORK_DIR / "chunks"
        self.summary = BatchSummary(engine=o.engine, workers=o.workers)
        self.damaged: list[str] = []  # "file: why" of stored chunk files that were redone

    def chunk_path(self, chunk_id: int) -> Path:
        """The result file of chunk ``chunk_id``."""
        return self.chunk_dir / f"{chunk_id:08d}.npz"

"""What every engine shares: its configuration, its interface and its errors.

The factory (:mod:`backend.batch.engines`) and each engine (the local ones there,
:mod:`backend.batch.ray_engine`) import these names from here, so an engine module never
imports the factory that looks it up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import Rs2SamError
from .spec import SegmenterSpec
from .worker import ChunkOutcome, ChunkTask, WorkerOptions

__all__ = ["Engine", "EngineConfig", "OnOutcome", "WorkerInitError"]

OnOutcome = Callable[[ChunkOutcome], None]


class WorkerInitError(Rs2SamError):
    """A worker could not build its segmenter (bad checkpoint, device, ...): the job stops."""


@dataclass(frozen=True)
class EngineConfig:
    """How many workers, where, and what each loads.

    Attributes:
        spec: The segmenter every worker builds.
        options: Pipeline options of every chunk.
        workers: Worker processes (local) or actors (Ray).
        threads: Chunk threads per worker (overlap reading/vectorising with the model).
        address: Ray cluster address (``auto``, ``ray://host:10001``); None = a local Ray.
        gpus_per_worker: GPUs each Ray actor reserves (0 = CPU).
    """

    spec: SegmenterSpec
    options: WorkerOptions
    workers: int = 1
    threads: int = 2
    address: str | None = None
    gpus_per_worker: float = 0.0


class Engine(Protocol):
    """Runs chunks on workers that each hold a loaded segmenter."""

    config: EngineConfig

    def start(self) -> dict[str, Any]:
        """Start the workers (load the segmenters); return one worker's segmenter info."""
        ...

    def run(self, tasks: Sequence[ChunkTask], on_outcome: OnOutcome) -> None:
        """Process ``tasks``; call ``on_outcome`` in the calling thread for each result."""
        ...

    def close(self) -> None:
        """Stop the workers (also after an interruption)."""
        ...

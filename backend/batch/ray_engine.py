"""The Ray engine: one actor per worker holds a loaded segmenter; the driver streams chunks.

Ray Core actors rather than a Ray Data pipeline: a chunk is a tiny descriptor whose result is
a small payload that the driver must store and record one by one (manifest, resume), and an
actor with ``max_concurrency=threads`` gives exactly the "one model, several chunk threads"
worker of the local engine. Ray adds what the local engine lacks: workers on other machines,
GPU placement (``num_gpus``), and actors restarted by Ray when a node or process dies
(``max_restarts``; the chunk is retried with ``max_task_retries``).

Works with ``ray.init()`` (a local cluster started here, stopped at :meth:`RayEngine.close`),
``--address auto`` (the cluster this machine belongs to) or ``ray://head:10001``; when Ray is
already initialised (a notebook, a test) that session is used and left running.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from ..errors import DependencyError
from .engine_api import EngineConfig, OnOutcome, WorkerInitError
from .worker import ChunkOutcome, ChunkTask, ChunkWorker

__all__ = ["RayEngine"]

try:
    import ray
except ImportError as exc:  # pragma: no cover - exercised by a test that hides ray
    raise DependencyError(
        "--engine ray needs Ray; install it with pip install '.[scale]' (or pip install "
        "'ray[data]'), or use --engine local"
    ) from exc


class _ChunkActor:
    """A Ray actor around :class:`ChunkWorker` (threaded: ``max_concurrency`` chunks at once)."""

    def __init__(self, config: EngineConfig) -> None:
        self.worker = ChunkWorker(config.spec, config.options)

    def info(self) -> dict[str, Any]:
        return self.worker.info()

    def process(self, task: ChunkTask) -> ChunkOutcome:
        return self.worker.process(task)


class RayEngine:
    """See the module docstring."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.actors: list[Any] = []
        self._owns_ray = False

    def start(self) -> dict[str, Any]:
        """Connect to / start Ray and create one actor per worker (segmenter loaded once each)."""
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if self.config.address:
                kwargs["address"] = self.config.address
            ray.init(**kwargs)
            self._owns_ray = True
        actor_class = ray.remote(_ChunkActor)
        options = {
            "num_cpus": 1,
            "num_gpus": self.config.gpus_per_worker,
            "max_concurrency": max(1, self.config.threads),
            "max_restarts": 2,
            "max_task_retries": 2,
        }
        self.actors = [
            actor_class.options(**options).remote(self.config) for _ in range(self.config.workers)
        ]
        try:
            infos = ray.get([actor.info.remote() for actor in self.actors])
        except ray.exceptions.RayError as exc:
            message = " ".join(str(getattr(exc, "cause", None) or exc).split())[:500]
            raise WorkerInitError(f"a Ray worker could not load the segmenter ({message})") from exc
        return infos[0]

    def run(self, tasks: Sequence[ChunkTask], on_outcome: OnOutcome) -> None:
        """Keep ``threads`` chunks in flight per actor; hand outcomes over as they finish."""
        pending = list(reversed(tasks))
        in_flight: dict[Any, tuple[Any, ChunkTask]] = {}
        per_actor = max(1, self.config.threads)

        def submit(actor: Any) -> None:
            task = pending.pop()
            in_flight[actor.process.remote(task)] = (actor, task)

        for actor in self.actors:
            for _ in range(per_actor):
                if pending:
                    submit(actor)
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            for ref in ready:
                actor, task = in_flight.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the actor died and retries ran out
                    outcome = ChunkOutcome(
                        task.chunk_id,
                        False,
                        error=f"Ray worker failed: {' '.join(str(exc).split())[:300]}",
                    )
                on_outcome(outcome)
                if pending:
                    submit(actor)

    def close(self) -> None:
        """Kill the actors; stop Ray if this engine started it."""
        for actor in self.actors:
            with contextlib.suppress(Exception):  # best effort: the actor may be gone already
                ray.kill(actor)
        self.actors = []
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False

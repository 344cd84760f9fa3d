"""Where chunks run: one factory (:func:`make_engine`), one interface (:class:`Engine`).

* ``local`` with 1 worker: this process, ``threads`` chunk threads sharing one segmenter.
* ``local`` with N workers: N spawned processes, each loading the segmenter once and running
  ``threads`` chunk threads.
* ``ray``: :mod:`backend.batch.ray_engine` (an actor per worker, on a local or remote cluster).

Every engine sends each :class:`~backend.batch.worker.ChunkOutcome` back to the driver through
``on_outcome`` as soon as it is ready (the driver stores it and updates the manifest), so a
killed job loses at most the chunks in flight.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import InputError, Rs2SamError
from .engine_api import Engine, EngineConfig, OnOutcome, WorkerInitError
from .worker import ChunkOutcome, ChunkTask, ChunkWorker

__all__ = ["ENGINES", "Engine", "EngineConfig", "OnOutcome", "WorkerInitError", "make_engine"]

def _thread_loop(worker: ChunkWorker, tasks: Any, out: Any, tag: Any = None) -> None:
    """A chunk thread: take tasks until a ``None``, put outcomes (optionally tagged)."""
    while True:
        task = tasks.get()
        if task is None:
            return
        if tag is not None:
            out.put(("start", tag, task.chunk_id))
        outcome = worker.process(task)
        out.put(outcome if tag is None else ("result", tag, outcome))


class LocalThreadsEngine:
    """One process: ``threads`` daemon threads share one :class:`ChunkWorker`."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.worker: ChunkWorker | None = None

    def start(self) -> dict[str, Any]:
        """Load the segmenter in this process."""
        try:
            self.worker = ChunkWorker(self.config.spec, self.config.options)
        except Rs2SamError:
            raise
        except Exception as exc:
            raise WorkerInitError(f"the segmenter could not be loaded ({exc})") from exc
        return self.worker.info()

    def run(self, tasks: Sequence[ChunkTask], on_outcome: OnOutcome) -> None:
        """Run the tasks on the threads; outcomes arrive here in completion order."""
        if self.worker is None:
            raise RuntimeError("LocalThreadsEngine.run() before start()")
        todo: queue.Queue[ChunkTask | None] = queue.Queue()
        done: queue.Queue[ChunkOutcome] = queue.Queue()
        for task in tasks:
            todo.put(task)
        n = max(1, min(self.config.threads, len(tasks)))
        for _ in range(n):
            todo.put(None)
        for _ in range(n):  # daemon: an interrupted job does not wait for chunks in flight
            threading.Thread(
                target=_thread_loop, args=(self.worker, todo, done), daemon=True
            ).start()
        for _ in range(len(tasks)):
            while True:
                try:
                    outcome = done.get(timeout=0.5)  # short waits keep Ctrl-C/SIGTERM responsive
                    break
                except queue.Empty:
                    continue
            on_outcome(outcome)

    def close(self) -> None:
        """Nothing to stop: the threads are daemons and end with their queue."""


def _process_main(config: EngineConfig, index: int, tasks: Any, out: Any) -> None:
    """Body of a local worker process: load once, then run chunk threads."""
    try:
        worker = ChunkWorker(config.spec, config.options)
    except Exception as exc:
        out.put(("init_error", index, " ".join(str(exc).split()) or type(exc).__name__))
        return
    out.put(("ready", index, worker.info()))
    threads = [
        threading.Thread(target=_thread_loop, args=(worker, tasks, out, index), daemon=True)
        for _ in range(max(1, config.threads))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class LocalProcessesEngine:
    """N spawned processes (``spawn``: no fork of GDAL/torch state), each with chunk threads."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.context = mp.get_context("spawn")
        self.tasks: Any = self.context.Queue()
        self.out: Any = self.context.Queue()
        self.processes: list[Any] = []

    def start(self) -> dict[str, Any]:
        """Start the processes and wait until each has loaded its segmenter."""
        for index in range(self.config.workers):
            process = self.context.Process(
                target=_process_main, args=(self.config, index, self.tasks, self.out), daemon=True
            )
            process.start()
            self.processes.append(process)
        info: dict[str, Any] = {}
        ready = 0
        while ready < len(self.processes):
            try:
                kind, index, value = self.out.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in self.processes if p.exitcode is not None]
                if dead:
                    raise WorkerInitError(
                        f"a worker process exited with code {dead[0].exitcode} while loading "
                        "the segmenter; run with --workers 1 to see why"
                    ) from None
                continue
            if kind == "init_error":
                raise WorkerInitError(f"the segmenter could not be loaded ({value})")
            info = value
            ready += 1
        return info

    def run(self, tasks: Sequence[ChunkTask], on_outcome: OnOutcome) -> None:
        """Queue all tasks; collect outcomes; a dead process fails the chunks it held."""
        for task in tasks:
            self.tasks.put(task)
        for _ in range(len(self.processes) * max(1, self.config.threads)):
            self.tasks.put(None)
        in_flight: dict[int, set[int]] = {i: set() for i in range(len(self.processes))}
        remaining = {t.chunk_id for t in tasks}
        while remaining:
            try:
                kind, index, value = self.out.get(timeout=0.5)
            except queue.Empty:
                alive = False
                for i, process in enumerate(self.processes):
                    if process.exitcode is None:
                        alive = True
                    elif in_flight[i]:
                        for chunk_id in sorted(in_flight.pop(i)):
                            remaining.discard(chunk_id)
                            on_outcome(
                                ChunkOutcome(
                                    chunk_id,
                                    False,
                                    error=f"worker process died (exit code {process.exitcode}) "
                                    "while processing this chunk",
                                )
                            )
                        in_flight[i] = set()
                if not alive:
                    return  # every worker is gone: the rest stays pending for the next run
                continue
            if kind == "start":
                in_flight[index].add(value)
            elif kind == "result":
                in_flight[index].discard(value.chunk_id)
                if value.chunk_id in remaining:
                    remaining.discard(value.chunk_id)
                    on_outcome(value)

    def close(self) -> None:
        """Terminate the processes that are still running."""
        for process in self.processes:
            if process.exitcode is None:
                process.terminate()
        for process in self.processes:
            process.join(timeout=5)
        self.tasks.cancel_join_thread()
        self.out.cancel_join_thread()


def _local(config: EngineConfig) -> Engine:
    return LocalThreadsEngine(config) if config.workers == 1 else LocalProcessesEngine(config)


def _ray(config: EngineConfig) -> Engine:
    from .ray_engine import RayEngine  # raises DependencyError when Ray is not installed

    return RayEngine(config)


ENGINES: dict[str, Callable[[EngineConfig], Engine]] = {"local": _local, "ray": _ray}
"""Engine name -> constructor."""


def make_engine(name: str, config: EngineConfig) -> Engine:
    """The engine called ``name`` (``local`` or ``ray``).

    Raises:
        InputError: Unknown name or bad worker counts.
        DependencyError: ``ray`` without Ray installed.
    """
    if name not in ENGINES:
        raise InputError(f"--engine {name!r} is unknown; use {' or '.join(ENGINES)}")
    if config.workers < 1:
        raise InputError(f"--workers {config.workers} must be >= 1")
    if config.threads < 1:
        raise InputError(f"threads per worker {config.threads} must be >= 1")
    if config.gpus_per_worker < 0:
        raise InputError(f"--gpus-per-worker {config.gpus_per_worker} must be >= 0")
    return ENGINES[name](config)

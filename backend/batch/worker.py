"""A chunk worker: holds one loaded segmenter and turns chunks into packed polygons.

The segmenter is wrapped so that model calls are serialised by a lock and timed: several
threads of one worker can then process different chunks at once, one in the model while the
others read tiles, blend and vectorise (GDAL, numpy and shapely release the GIL), which keeps
the model busy. Each chunk is the pipeline's own streaming run (``backend.pipeline.run._run``)
over the chunk's core window with the whole-raster tile grid (:mod:`backend.batch.planner`).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..pipeline.options import GsdOption
from .spec import SegmenterSpec, build_segmenter

__all__ = ["ChunkOutcome", "ChunkTask", "ChunkWorker", "WorkerOptions"]


@dataclass(frozen=True)
class WorkerOptions:
    """Pipeline options of every chunk (polygons are filtered and simplified after merging)."""

    threshold: float = 0.5
    bands: tuple[int, ...] | None = None
    gsd_m: GsdOption = "auto"
    tile_px: int | None = None
    overlap_px: int | None = None
    batch_size: int = 1
    assume_crs: str | None = None


@dataclass(frozen=True)
class ChunkTask:
    """What a worker needs to process one chunk."""

    chunk_id: int
    raster: str
    query: str
    window: tuple[int, int, int, int]
    span: tuple[tuple[int, int], tuple[int, int]] | None


@dataclass
class ChunkOutcome:
    """A chunk's result (``payload``: :func:`backend.batch.chunkfile.pack` bytes) or error."""

    chunk_id: int
    ok: bool
    payload: bytes | None = None
    error: str | None = None
    seconds: float = 0.0
    model_s: float = 0.0
    polygons: int = 0
    worker: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")


class _LockedSegmenter:
    """Serialises and times the model calls of a shared segmenter (per-thread model seconds)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._local = threading.local()
        for name in ("name", "checkpoint_sha256", "image_size", "gsd_m"):
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))
        if callable(getattr(inner, "unknown_words", None)):
            self.unknown_words = inner.unknown_words
        self.total_model_s = 0.0

    @property
    def model_s(self) -> float:
        """Seconds this thread spent in the model since :meth:`reset`."""
        return float(getattr(self._local, "seconds", 0.0))

    def reset(self) -> None:
        """Start this thread's model-time counter at 0."""
        self._local.seconds = 0.0

    def _timed(self, call: Any, *args: Any) -> Any:
        with self._lock:
            t0 = time.perf_counter()
            try:
                return call(*args)
            finally:
                dt = time.perf_counter() - t0
                self._local.seconds = self.model_s + dt
                self.total_model_s += dt

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        """``inner.predict`` under the lock."""
        return self._timed(self.inner.predict, image, text)

    def predict_batch(self, images: np.ndarray, text: str) -> np.ndarray:
        """``inner.predict_batch`` (or one by one) under the lock."""
        batch = getattr(self.inner, "predict_batch", None)
        if batch is None:
            return self._timed(
                lambda i, t: np.stack([self.inner.predict(x, t) for x in i]), images, text
            )
        return self._timed(batch, images, text)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


class ChunkWorker:
    """Loads the segmenter once; :meth:`process` is thread-safe.

    Args:
        spec: How to build the segmenter.
        options: Pipeline options of every chunk.
    """

    def __init__(self, spec: SegmenterSpec, options: WorkerOptions) -> None:
        self.options = options
        self.segmenter = _LockedSegmenter(build_segmenter(spec))

    def info(self) -> dict[str, Any]:
        """What the planner and the manifest need to know about the segmenter."""
        seg = self.segmenter
        return {
            "name": str(getattr(seg, "name", None) or "custom"),
            "checkpoint_sha256": str(getattr(seg, "checkpoint_sha256", None) or ""),
            "image_size": getattr(seg, "image_size", None),
            "gsd_m": getattr(seg, "gsd_m", None),
        }

    def process(self, task: ChunkTask) -> ChunkOutcome:
        """Segment one chunk; any error becomes a failed outcome (the job goes on)."""
        t0 = time.perf_counter()
        self.segmenter.reset()
        try:
            payload, n = self._segment(task)
        except Exception as exc:  # recorded per chunk; a corrupt file must not stop the job
            return ChunkOutcome(
                task.chunk_id,
                False,
                error=_one_line(exc),
                seconds=time.perf_counter() - t0,
                model_s=self.segmenter.model_s,
            )
        return ChunkOutcome(
            task.chunk_id,
            True,
            payload=payload,
            seconds=time.perf_counter() - t0,
            model_s=self.segmenter.model_s,
            polygons=n,
        )

    def _segment(self, task: ChunkTask) -> tuple[bytes, int]:
        import rasterio
        import shapely

        from ..geo.raster import GDAL_CACHE_MB, PixelWindow, open_raster
        from ..pipeline.options import _check_options
        from ..pipeline.run import _run
        from .chunkfile import chunk_identity, pack

        o = self.options
        options = _check_options(
            task.query, o.threshold, 0.0, 0.0, o.bands, o.gsd_m, o.tile_px, o.overlap_px,
            o.batch_size, "auto", False, 128,
        )  # fmt: skip
        window = PixelWindow(*task.window)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_raster(task.raster) as ds:
            result = _run(
                ds,
                options,
                self.segmenter,
                bbox=None,
                bbox_crs=None,
                out_path=None,
                assume_crs=o.assume_crs,
                progress=None,
                is_cancelled=None,
                source_name=None,
                window=window,
                work_span=task.span,
            )
            transform, width, height = ds.transform, ds.width, ds.height
        geoms = np.asarray(result.polygons, dtype=object)
        border = np.zeros(len(geoms), dtype=bool)
        px_geoms: list[Any] = []
        if len(geoms) and task.span is not None:
            inverse = ~transform
            m = np.array([[inverse.a, inverse.b], [inverse.d, inverse.e]])
            offset = np.array([inverse.c, inverse.f])
            # vertices are pixel corners (no simplification here): rounding recovers them exactly
            pixel = shapely.transform(geoms, lambda xy: np.rint(xy @ m.T + offset))
            minx, miny, maxx, maxy = shapely.bounds(pixel).T
            r0, c0, h, w = task.window
            border = (
                ((minx == c0) & (c0 > 0))
                | ((maxx == c0 + w) & (c0 + w < width))
                | ((miny == r0) & (r0 > 0))
                | ((maxy == r0 + h) & (r0 + h < height))
            )
            px_geoms = list(pixel[border])
        first = result.attributes[0] if result.attributes else {}
        meta = {
            "model": first.get("model", str(getattr(self.segmenter, "name", None) or "custom")),
            "checkpoint_sha256": first.get(
                "checkpoint_sha256", str(getattr(self.segmenter, "checkpoint_sha256", "") or "")
            ),
            "source": first.get("source", os.path.basename(task.raster)),
            "gsd_m": first.get(
                "gsd_m",
                result.gsd_m
                if result.gsd_m is not None
                else float(np.sqrt(result.native_gsd_m[0] * result.native_gsd_m[1])),
            ),
            "threshold": self.options.threshold,
            "prompt_used": str(getattr(result, "prompt_used", "") or task.query),
            "warnings": result.warnings,
            "n_tiles": result.n_tiles,
            "timings": result.timings,
            "transform": list(transform)[:6],
            "crs_wkt": result.crs,
            "chunk": chunk_identity(task.chunk_id, task.raster, task.query, task.window),
        }
        payload = pack(
            list(geoms),
            [a["score"] for a in result.attributes],
            [a["pixels"] for a in result.attributes],
            [a["area_m2"] for a in result.attributes],
            list(border),
            px_geoms,
            meta,
        )
        return payload, len(geoms)

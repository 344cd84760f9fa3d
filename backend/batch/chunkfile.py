"""One chunk's result: polygons and attributes packed into ``.npz`` bytes, stored atomically.

Workers pack (:func:`pack`) and send the bytes to the driver, which writes them under
``<out>/.rs2sam_batch/chunks/`` with :func:`write_atomic` before marking the chunk done in the
manifest. The format is plain numpy arrays (no pickle: loading never runs code):

* ``score``, ``pixels``, ``area_m2``: one value per polygon;
* ``border``: True for polygons touching an inner border of the chunk's core (they may
  continue in the neighbouring chunk);
* ``map_wkb`` / ``map_off``: polygons in the raster CRS, WKB concatenated, with offsets;
* ``px_wkb`` / ``px_off``: the border polygons in integer pixel coordinates (exact; merged
  across chunks in :mod:`backend.batch.merge`);
* ``meta``: JSON (model, weights hash, source, gsd_m, threshold, warnings, tiles, timings, and
  ``chunk``: which chunk of which job the file holds, :func:`chunk_identity`).

A stored file is proven whole and its chunk's (:func:`check_chunk`) before a resumed job trusts
it: a truncated, pickled, foreign or otherwise damaged file is computed again.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ChunkData", "ChunkFileError", "check_chunk", "chunk_identity", "pack", "read_chunk",
           "unpack", "write_atomic"]  # fmt: skip

_KEYS = {"score", "pixels", "area_m2", "border", "map_wkb", "map_off", "px_wkb", "px_off", "meta"}
_META_KEYS = {"model", "checkpoint_sha256", "source", "gsd_m", "threshold", "transform", "crs_wkt"}


class ChunkFileError(ValueError):
    """A stored chunk file is damaged or not this chunk's (the message says why, briefly)."""


def _concat(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs]) if blobs else []
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8) if blobs else np.zeros(0, np.uint8)
    return data, offsets


def _split(data: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    raw = data.tobytes()
    return [raw[a:b] for a, b in itertools.pairwise(offsets)]


@dataclass
class ChunkData:
    """The unpacked content of a chunk result (see the module docstring)."""

    score: np.ndarray
    pixels: np.ndarray
    area_m2: np.ndarray
    border: np.ndarray
    map_geoms: list[Any]
    px_geoms: list[Any]  # border polygons only, in the order of ``border.nonzero()``
    meta: dict[str, Any]


def pack(
    map_geoms: list[Any],
    scores: list[float],
    pixels: list[int],
    areas: list[float],
    border: list[bool],
    px_geoms: list[Any],
    meta: dict[str, Any],
) -> bytes:
    """Serialise a chunk's polygons (``px_geoms``: the border ones, in order) to ``.npz`` bytes."""
    import shapely

    map_data, map_off = _concat([shapely.to_wkb(g) for g in map_geoms])
    px_data, px_off = _concat([shapely.to_wkb(g) for g in px_geoms])
    buffer = io.BytesIO()
    np.savez(
        buffer,
        score=np.asarray(scores, dtype=np.float64),
        pixels=np.asarray(pixels, dtype=np.int64),
        area_m2=np.asarray(areas, dtype=np.float64),
        border=np.asarray(border, dtype=bool),
        map_wkb=map_data,
        map_off=map_off,
        px_wkb=px_data,
        px_off=px_off,
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
    )
    return buffer.getvalue()


def unpack(payload: bytes) -> ChunkData:
    """Inverse of :func:`pack`."""
    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
        return unpack_npz(z)


def unpack_npz(z: Any) -> ChunkData:
    """:func:`unpack` of an open ``np.load`` result."""
    import shapely

    return ChunkData(
        score=z["score"],
        pixels=z["pixels"],
        area_m2=z["area_m2"],
        border=z["border"],
        map_geoms=list(shapely.from_wkb(_split(z["map_wkb"], z["map_off"]))),
        px_geoms=list(shapely.from_wkb(_split(z["px_wkb"], z["px_off"]))),
        meta=json.loads(z["meta"].tobytes().decode()),
    )


def read_chunk(path: Path) -> ChunkData:
    """Load a stored chunk result."""
    return unpack(path.read_bytes())


def chunk_identity(chunk_id: int, raster: str, query: str, window: Any) -> dict[str, Any]:
    """What a chunk file's ``meta["chunk"]`` holds: which chunk of which job it is."""
    return {"id": chunk_id, "raster": raster, "query": query, "window": [int(v) for v in window]}


def _check_arrays(z: Any) -> None:
    keys = set(z.files)
    if keys != _KEYS:
        raise ChunkFileError(f"keys {sorted(keys)[:12]} are not a chunk file's")
    n = len(z["score"])
    for key in ("score", "pixels", "area_m2", "border", "map_wkb", "map_off", "px_off"):
        if z[key].ndim != 1:
            raise ChunkFileError(f"{key} has shape {z[key].shape}, not a vector")
    if any(len(z[k]) != n for k in ("pixels", "area_m2", "border")):
        raise ChunkFileError("per-polygon arrays of different lengths")
    if z["border"].dtype != bool or z["meta"].dtype != np.uint8:
        raise ChunkFileError("wrong array types")
    for data, off, count in (("map_wkb", "map_off", n), ("px_wkb", "px_off", None)):
        offsets = z[off]
        expected = int(z["border"].sum()) if count is None else count
        if (
            offsets.dtype != np.int64
            or len(offsets) != expected + 1
            or (len(offsets) and (offsets[0] != 0 or offsets[-1] != len(z[data])))
            or np.any(np.diff(offsets) < 0)
        ):
            raise ChunkFileError(f"{off} does not index {data}")


def check_chunk(path: Path, expected: dict[str, Any] | None = None) -> ChunkData:
    """Load a stored chunk result and prove it whole and this chunk's.

    Args:
        path: The chunk file.
        expected: Values its ``meta["chunk"]`` must hold (id, query, window, raster); None
            skips the check.

    Returns:
        The unpacked chunk.

    Raises:
        ChunkFileError: Unreadable, truncated, pickled, wrong keys / shapes / types, polygons
            that do not parse, or another chunk's (never runs code: pickles are refused).
    """
    import shapely

    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as z:
            _check_arrays(z)
            data = unpack_npz(z)
    except ChunkFileError:
        raise
    except Exception as exc:  # zipfile, numpy (pickled arrays), shapely, json, OSError
        name = type(exc).__name__
        raise ChunkFileError(f"unreadable ({name}: {' '.join(str(exc).split())[:80]})") from exc
    if not isinstance(data.meta, dict) or not _META_KEYS <= set(data.meta):
        raise ChunkFileError("its meta lacks the chunk fields")
    if any(g is None or not isinstance(g, shapely.Geometry) for g in data.map_geoms):
        raise ChunkFileError("a polygon does not parse")
    if expected is not None:
        stored = data.meta.get("chunk")
        if not isinstance(stored, dict) or any(stored.get(k) != v for k, v in expected.items()):
            raise ChunkFileError("it belongs to another chunk or job")
    return data


def write_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename (never partial)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()

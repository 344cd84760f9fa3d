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
* ``meta``: JSON (model, weights hash, source, gsd_m, threshold, warnings, tiles, timings).
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

__all__ = ["ChunkData", "pack", "read_chunk", "unpack", "write_atomic"]


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
    import shapely

    with np.load(io.BytesIO(payload), allow_pickle=False) as z:
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

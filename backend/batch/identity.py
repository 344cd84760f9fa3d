"""A raster file's content identity: size, modification time and a hash of a few blocks.

A resumed job compares the identity stored in its manifest with the file on disk, so a raster
replaced between runs (same path, other pixels) is detected and redone instead of mixing its
old finished chunks with the new ones. Hashing the header and a few blocks is cheap (at most
``5 x 64 KiB`` read per raster, whatever its size) and catches a replaced file even when its
size and time were kept (``cp --preserve``, ``rsync -t``); a change of a few pixels in the
middle of a huge file with its time restored would not be seen (documented in docs/batch.md).
The other files GDAL reads for a raster (a VRT mosaic's sources, sidecars) count by name,
size and time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

__all__ = ["BLOCK_BYTES", "describe_change", "raster_identity"]

BLOCK_BYTES = 64 * 1024
"""Bytes hashed at each sampled offset (start, 1/4, 1/2, 3/4, end)."""


def raster_identity(path: str, others: Sequence[str] = ()) -> dict[str, Any] | None:
    """Size, mtime (ns) and sha256 of sampled blocks of ``path``; None for GDAL paths.

    Args:
        path: A raster as given to GDAL (``/vsi...`` and ``driver:`` paths have no identity).
        others: The other files GDAL reads for it (a VRT mosaic's sources, sidecars): their
            names, sizes and times (not their content: a mosaic may have thousands) go into
            ``sources``.

    Returns:
        ``{"size": int, "mtime_ns": int, "sha256": str, "sources": str}`` or None when it is
        not a local file.
    """
    if not os.path.isfile(path):
        return None
    try:
        st = os.stat(path)
        digest = hashlib.sha256(str(st.st_size).encode())
        with open(path, "rb") as f:
            offsets = sorted({0, *(st.st_size * k // 4 for k in (1, 2, 3))})
            offsets.append(max(0, st.st_size - BLOCK_BYTES))
            for offset in offsets:
                f.seek(offset)
                digest.update(f.read(BLOCK_BYTES))
    except OSError:
        return None
    sources = hashlib.sha256()
    for other in sorted(others):
        try:
            o = os.stat(other)
            sources.update(f"{other}\0{o.st_size}\0{o.st_mtime_ns}\n".encode())
        except (OSError, ValueError):
            sources.update(f"{other}\0missing\n".encode())
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": digest.hexdigest(),
        "sources": sources.hexdigest(),
    }


def describe_change(old: dict[str, Any], new: dict[str, Any] | None) -> str | None:
    """What differs between two identities (``"size, content"``), or None when equal.

    A new modification time alone counts as a change (the unsampled middle may differ): the
    raster is redone, which costs time but never mixes two versions.
    """
    if new is None:
        return "it is no longer a readable local file"
    parts = [
        name
        for name, key in (
            ("size", "size"),
            ("time", "mtime_ns"),
            ("content", "sha256"),
            ("its source files", "sources"),
        )
        if key in old and old[key] != new.get(key)  # keys an older manifest lacks: not compared
    ]
    return ", ".join(parts) if parts else None

"""Streaming conversion: release tensors → one ``.safetensors`` checkpoint, one tensor at a time.

The importer never holds the model in memory: the output header (names, dtypes, shapes,
offsets) is known before any tensor is read, so it is written first with a placeholder for the
weights' SHA-256; then every tensor is read from its release file (plain reads at the offsets
of the safetensors header, not a memory map, so the pages read do not stay in the process),
converted, hashed and appended; finally the hash is written over the placeholder (same length),
the file is flushed to disk and renamed into place. The hash is the one
:func:`~backend.model.state_io.weights_sha256` gives for the loaded state dict, so the result
is indistinguishable from :func:`~backend.model.checkpoint.save_checkpoint`'s.

Peak memory is about two copies of the largest tensor (the read and its float16 copy), not the
model.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...errors import Cancelled, CheckpointError, OutputError
from ..stream_load import MAX_HEADER_BYTES, SAFETENSORS_DTYPES

__all__ = ["SafetensorsFile", "StreamEntry", "stream_safetensors"]

_DTYPES = SAFETENSORS_DTYPES
_NAMES = {v: k for k, v in _DTYPES.items()}
_MAX_HEADER = MAX_HEADER_BYTES
_SHA_PLACEHOLDER = "0" * 64


@dataclass(frozen=True)
class _Slot:
    dtype: torch.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


class SafetensorsFile:
    """Random access to the tensors of one ``.safetensors`` file with plain reads.

    Args:
        path: The file; its header is read and checked (offsets inside the file, sizes that
            match dtype × shape, known dtypes).

    Raises:
        CheckpointError: The header is unreadable or inconsistent.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            raw = f.read(8)
            n = struct.unpack("<Q", raw)[0] if len(raw) == 8 else -1
            if not 0 < n <= min(_MAX_HEADER, size - 8):
                raise self._bad("header length")
            try:
                header = json.loads(f.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
                raise self._bad("header JSON") from None
        if not isinstance(header, dict):
            raise self._bad("header")
        self._start = 8 + n
        self._slots: dict[str, _Slot] = {}
        for key, info in header.items():
            if key == "__metadata__":
                continue
            try:
                dtype = _DTYPES[info["dtype"]]
                shape = tuple(int(d) for d in info["shape"])
                begin, end = (int(o) for o in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise self._bad(f"entry {str(key)[:80]!r}") from None
            nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
            if min(shape, default=0) < 0 or not 0 <= begin <= end <= size - self._start:
                raise self._bad(f"offsets of {key!r}")
            if end - begin != nbytes:
                raise self._bad(f"size of {key!r} ({end - begin} bytes for {nbytes})")
            self._slots[key] = _Slot(dtype, shape, begin, end)

    def _bad(self, what: str) -> CheckpointError:
        return CheckpointError(
            f"{self.path} is corrupt or not a .safetensors file (bad {what}); download it again"
        )

    def keys(self) -> list[str]:
        """The tensor names, in header order."""
        return list(self._slots)

    def dtype(self, key: str) -> torch.dtype:
        """The stored dtype of ``key``."""
        return self._slots[key].dtype

    def read(self, key: str) -> torch.Tensor:
        """One tensor, read from disk into fresh memory."""
        slot = self._slots[key]
        buf = torch.empty(slot.end - slot.begin, dtype=torch.uint8)
        with open(self.path, "rb") as f:
            f.seek(self._start + slot.begin)
            got = f.readinto(memoryview(buf.numpy()))
        if got != slot.end - slot.begin:
            raise self._bad(f"data of {key!r} (file truncated)")
        if slot.dtype == torch.bool:
            return buf.view(torch.bool).reshape(slot.shape)
        return buf.view(slot.dtype).reshape(slot.shape)


@dataclass(frozen=True)
class StreamEntry:
    """One output tensor: its name, stored dtype and shape, and how to read it.

    Attributes:
        key: Name in the checkpoint.
        dtype: Dtype stored (the read tensor is converted to it).
        shape: Shape (checked against what ``read`` returns).
        read: Returns the tensor (any dtype); called once, when it is written.
        after: Called once the tensor is written (e.g. to release memory-mapped pages).
    """

    key: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    read: Callable[[], torch.Tensor]
    after: Callable[[], None] | None = None

    @property
    def nbytes(self) -> int:
        """Bytes it takes in the file."""
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()


def _header(entries: list[StreamEntry], metadata: dict[str, str]) -> bytes:
    body: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for e in entries:
        body[e.key] = {
            "dtype": _NAMES[e.dtype],
            "shape": list(e.shape),
            "data_offsets": [offset, offset + e.nbytes],
        }
        offset += e.nbytes
    raw = json.dumps(body, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data aligned to 8 bytes, as safetensors writes it
    return struct.pack("<Q", len(raw)) + raw


def output_bytes(entries: Iterable[StreamEntry], metadata: dict[str, str]) -> int:
    """Size of the file :func:`stream_safetensors` writes for these entries."""
    entries = sorted(entries, key=lambda e: e.key)
    return len(_header(entries, metadata)) + sum(e.nbytes for e in entries)


def stream_safetensors(
    out: str | os.PathLike[str],
    entries: Iterable[StreamEntry],
    metadata: dict[str, str],
    *,
    sha_field: str = "weights_sha256",
    progress: Callable[[int, int], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> str:
    """Write ``entries`` (sorted by name) as one ``.safetensors`` file, tensor by tensor.

    Args:
        out: The file; written to a temporary name in its folder and renamed at the end, so a
            failure or a cancel leaves nothing behind.
        entries: The tensors.
        metadata: Header metadata (string → string); ``metadata[sha_field]`` is set to the
            SHA-256 of the tensors (:func:`~backend.model.state_io.weights_sha256`).
        sha_field: Metadata key that receives the hash.
        progress: Called with ``(bytes written, bytes in all)`` after each tensor.
        is_cancelled: Polled before each tensor; True stops with :class:`Cancelled`.

    Returns:
        The SHA-256 of the tensors.

    Raises:
        CheckpointError: A tensor read has another shape than announced.
        OutputError: Not enough free space in the output folder, or the write failed.
        Cancelled: ``is_cancelled`` returned True.
    """
    target = Path(out)
    ordered = sorted(entries, key=lambda e: e.key)
    meta = {**metadata, sha_field: _SHA_PLACEHOLDER}
    header = _header(ordered, meta)
    total = len(header) + sum(e.nbytes for e in ordered)
    free = shutil.disk_usage(target.parent).free
    if free < total:
        raise OutputError(
            f"{target.parent} has {free / 1024**3:.2f} GiB free but the checkpoint needs "
            f"{total / 1024**3:.2f} GiB; free some space or choose another folder"
        )
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            done = len(header)
            for entry in ordered:
                if is_cancelled is not None and is_cancelled():
                    raise Cancelled(f"import cancelled; {target} was not written")
                tensor = entry.read()
                if tuple(tensor.shape) != entry.shape:
                    raise CheckpointError(
                        f"{entry.key}: read shape {list(tensor.shape)}, expected "
                        f"{list(entry.shape)}; the release file changed while it was read"
                    )
                tensor = tensor.to(entry.dtype).contiguous()
                data = tensor.reshape(-1).view(torch.uint8).numpy()
                digest.update(f"{entry.key}\0{tensor.dtype}\0{entry.shape}\0".encode())
                digest.update(data)
                f.write(data.data)
                done += entry.nbytes
                del tensor, data
                if entry.after is not None:
                    entry.after()
                if progress is not None:
                    progress(done, total)
            sha = digest.hexdigest()
            final = _header(ordered, {**metadata, sha_field: sha})
            if len(final) != len(header):  # pragma: no cover - the placeholder has the same length
                raise OutputError("internal error: the checkpoint header changed size")
            f.seek(0)
            f.write(final)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is data others may read
        os.replace(tmp, target)
    except OSError as err:
        raise OutputError(f"writing {target} failed ({err}); nothing was written") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return sha

"""Read a checkpoint's tensors straight into their final dtype, one tensor at a time.

:func:`read_state_streaming` reads each tensor of a ``.safetensors`` file with plain file reads
into a freshly allocated tensor of the model's dtype: a float16 file becomes float32 (or
bfloat16) through one bounded staging buffer (:data:`CHUNK_BYTES`), never a second full copy;
a file already in the model's dtype is read straight into the destination. The SHA-256 of the
stored bytes (:func:`~backend.model.state_io.weights_sha256`, same definition) is computed on
the way. Peak memory is the model's size plus one staging buffer, where reading the whole file
first and then casting (the earlier path) held two copies (7.6 GiB for ``official-large``).

Page cache is not process memory, so reads (not a memory map) keep the resident size at what
the model holds.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

import torch

from ..errors import CheckpointError
from .checkpoint_format import _ROWS, _SHAPE, _VALUES, CheckpointHeader

__all__ = ["CHUNK_BYTES", "MAX_HEADER_BYTES", "SAFETENSORS_DTYPES", "read_state_streaming"]

CHUNK_BYTES = 64 * 1024**2
"""Size of the staging buffer for a dtype conversion (bytes of the stored dtype)."""

SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
MAX_HEADER_BYTES = 100 * 1024**2
"""Largest safetensors JSON header accepted (bytes); a bigger one is a damaged or hostile file."""


_Entry = tuple[torch.dtype, tuple[int, ...], int]


def _index(file: Path, f: BinaryIO) -> tuple[dict[str, _Entry], int]:
    """``{key: (dtype, shape, absolute offset)}`` of a safetensors file, checked by its size."""
    size = file.stat().st_size
    n = int.from_bytes(f.read(8), "little")
    if not 0 < n <= min(MAX_HEADER_BYTES, size - 8):
        raise CheckpointError(f"{file} has a damaged header; re-export or re-download it")
    try:
        raw = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(f"{file} has a damaged header; re-export or re-download it") from None
    base = 8 + n
    index: dict[str, _Entry] = {}
    for key, entry in raw.items():
        if key == "__metadata__":
            continue
        try:
            dtype = SAFETENSORS_DTYPES[entry["dtype"]]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{file}: bad index entry for {key!r}; re-export it") from None
        nbytes = math.prod(shape) * dtype.itemsize
        if min(shape, default=0) < 0 or end - begin != nbytes or begin < 0 or base + end > size:
            raise CheckpointError(f"{file}: tensor {key!r} lies outside the file; re-export it")
        index[key] = (dtype, shape, base + begin)
    return index, base


def _read_into(f: BinaryIO, offset: int, out: torch.Tensor, file: Path) -> None:
    """Fill ``out`` (contiguous) with the bytes at ``offset``."""
    view = memoryview(out.reshape(-1).view(torch.uint8).numpy())
    f.seek(offset)
    done = 0
    while done < len(view):
        got = f.readinto(view[done:])
        if not got:
            raise CheckpointError(f"{file} ends early; re-export or re-download it")
        done += got


def _read_one(
    f: BinaryIO,
    entry: _Entry,
    target: torch.dtype,
    digest: hashlib._Hash | None,
    file: Path,
) -> torch.Tensor:
    """One tensor in ``target`` dtype, its stored bytes fed to ``digest``."""
    stored, shape, offset = entry
    if stored == target:
        out = torch.empty(shape, dtype=target)
        _read_into(f, offset, out, file)
        if digest is not None:
            digest.update(out.reshape(-1).view(torch.uint8).numpy().data)
        return out
    out = torch.empty(shape, dtype=target)
    flat = out.reshape(-1)
    step = max(1, CHUNK_BYTES // stored.itemsize)
    stage = torch.empty(min(step, flat.numel()), dtype=stored)
    for start in range(0, flat.numel(), step):
        part = stage[: min(step, flat.numel() - start)]
        _read_into(f, offset + start * stored.itemsize, part, file)
        if digest is not None:
            digest.update(part.view(torch.uint8).numpy().data)
        flat[start : start + part.numel()].copy_(part)
    return out


def _read_pruned(
    f: BinaryIO,
    index: Mapping[str, _Entry],
    key: str,
    file: Path,
) -> torch.Tensor:
    """A row-pruned tensor rebuilt densely (zero rows) in its stored dtype."""
    try:
        parts = [index[key + suffix] for suffix in (_ROWS, _VALUES, _SHAPE)]
    except KeyError:
        raise CheckpointError(
            f"{file}: row-pruned tensor {key!r} is incomplete; re-export it"
        ) from None
    rows, values, shape = (_read_one(f, e, e[0], None, file) for e in parts)
    if rows.ndim != 1 or len(rows) != len(values) or shape.numel() < 1:
        raise CheckpointError(f"{file}: row-pruned tensor {key!r} is incomplete; re-export it")
    dense = values.new_zeros((int(shape[0]), *values.shape[1:]))
    dense[rows.long()] = values
    return dense


def read_state_streaming(
    head: CheckpointHeader, targets: Mapping[str, torch.dtype], *, verify: bool = True
) -> tuple[dict[str, torch.Tensor], str]:
    """Read every tensor of a checkpoint into the dtype the model wants.

    Args:
        head: The file's checked header (:func:`~backend.model.checkpoint_format.read_header`).
        targets: ``{state key: dtype}`` (the model's ``state_dict`` dtypes); keys must match
            the file's (dense) keys.
        verify: Compare the SHA-256 of the stored bytes with the header's.

    Returns:
        ``(state, sha256)``: fresh, allocator-aligned tensors in the target dtypes.

    Raises:
        CheckpointError: A damaged or truncated file, or weights that do not match their hash.
    """
    file = head.path
    digest = hashlib.sha256() if verify or not head.weights_sha256 else None
    state: dict[str, torch.Tensor] = {}
    try:
        with open(file, "rb") as f:
            index, _ = _index(file, f)
            dense_keys = sorted(
                {k[: -len(_VALUES)] for k in index if k.endswith(_VALUES)}
                | {k for k in index if not k.endswith((_ROWS, _VALUES, _SHAPE))}
            )
            for key in dense_keys:
                if key not in targets:
                    raise CheckpointError(f"{file}: tensor {key!r} has no place in the model")
                if key in index:
                    entry = index[key]
                    if digest is not None:
                        digest.update(f"{key}\0{entry[0]}\0{entry[1]}\0".encode())
                    state[key] = _read_one(f, entry, targets[key], digest, file)
                    continue
                dense = _read_pruned(f, index, key, file)
                if digest is not None:
                    digest.update(f"{key}\0{dense.dtype}\0{tuple(dense.shape)}\0".encode())
                    digest.update(dense.reshape(-1).view(torch.uint8).numpy().data)
                state[key] = dense.to(targets[key])
    except OSError as err:
        raise CheckpointError(f"{file} could not be read ({err}); check the file") from None
    sha = digest.hexdigest() if digest is not None else head.weights_sha256
    if verify and head.weights_sha256 and sha != head.weights_sha256:
        raise CheckpointError(
            f"{file} is corrupt: its weights hash to {sha[:16]}… but the header says "
            f"{head.weights_sha256[:16]}…; re-export or re-download it"
        )
    return state, sha

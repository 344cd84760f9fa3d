"""State-dict helpers shared by checkpoints and weight init: reports, hashes, file sniffing."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError

__all__ = ["LoadReport", "load_state_dict_checked", "prune_rows", "weights_sha256"]


@dataclass
class LoadReport:
    """How a weight file matched a model.

    Attributes:
        source: The file (or a description of the state dict).
        loaded: Model keys that were filled from the file.
        missing: Model keys the file should have provided but did not.
        unexpected: File keys with no place in the model.
        mismatched: ``(key, shape in file, shape in model)`` for keys whose shapes differ.
        ignored: File keys deliberately skipped (modules RS2-SAM 2 does not use).
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or mis-shaped."""
        return not (self.missing or self.unexpected or self.mismatched)

    def format(self, limit: int = 10) -> str:
        """Readable multi-line summary, at most ``limit`` keys per list."""

        def block(title: str, items: list[str]) -> list[str]:
            if not items:
                return []
            lines = [f"  {title} ({len(items)}):"]
            lines += [f"    {item}" for item in items[:limit]]
            if len(items) > limit:
                lines.append(f"    ... and {len(items) - limit} more")
            return lines

        lines = [f"{self.source}: loaded {len(self.loaded)} tensors"]
        lines += block("missing from the file", self.missing)
        lines += block("unexpected in the file", self.unexpected)
        lines += block(
            "wrong shape (file vs model)",
            [f"{k}: {list(a)} vs {list(b)}" for k, a, b in self.mismatched],
        )
        if self.ignored:
            lines.append(f"  ignored (not used by RS2-SAM 2): {len(self.ignored)} tensors")
        return "\n".join(lines)


def weights_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def prune_rows(tensor: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``tensor`` with every row not in ``keep`` set to zero (what a row-pruned tensor loads as).

    Args:
        tensor: ``(N, ...)``.
        keep: 1-D int64 row indices.
    """
    out = torch.zeros_like(tensor)
    out[keep] = tensor[keep]
    return out


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with a little-endian u64 header size, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    size = int.from_bytes(head[:8], "little")
    return 0 < size <= path.stat().st_size - 8 and head[8:9] == b"{"


def _is_pickle(path: Path) -> bool:
    if _is_safetensors(path):
        return False
    with open(path, "rb") as f:
        head = f.read(4)
    # torch.save zip archives start with "PK\x03\x04"; raw pickles with PROTO (0x80) + version
    return head.startswith(b"PK\x03\x04") or (
        head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"
    )


def _compare(
    model_state: Mapping[str, torch.Tensor],
    file_state: Mapping[str, torch.Tensor],
    source: str,
) -> LoadReport:
    report = LoadReport(source)
    for key, tensor in file_state.items():
        if key not in model_state:
            report.unexpected.append(key)
        elif tuple(tensor.shape) != tuple(model_state[key].shape):
            report.mismatched.append((key, tuple(tensor.shape), tuple(model_state[key].shape)))
        else:
            report.loaded.append(key)
    report.missing = [k for k in model_state if k not in file_state]
    return report


def load_state_dict_checked(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str = "state dict",
    assign: bool = False,
) -> LoadReport:
    """Load a full state dict strictly, with a readable error instead of torch's.

    Args:
        model: The model.
        state: Tensors for every key of ``model.state_dict()``.
        source: Name used in messages (e.g. the file path).
        assign: Replace the parameters instead of copying into them (for meta-built models).

    Raises:
        CheckpointError: Listing missing, unexpected and mis-shaped keys.
    """
    model_state = model.state_dict()
    report = _compare(model_state, state, source)
    if not report.ok:
        raise CheckpointError(f"checkpoint does not fit the model:\n{report.format()}")
    # fresh, allocator-aligned copies: tensors read from a file can sit at any byte offset, and
    # CPU kernels may then sum in another order (1-ulp differences from the saved model)
    cast = {k: v.to(model_state[k].dtype, copy=True) for k, v in state.items()}
    model.load_state_dict(cast, strict=True, assign=assign)
    return report

"""Checkpoints: one self-describing ``.safetensors`` file; loading never executes code.

File layout (contract §5): the tensors are the model's ``state_dict``; the safetensors header
metadata (string → string) holds

* ``format`` = ``"rs2sam2"`` and ``format_version`` = ``"1"``,
* ``model_config``: JSON of :class:`~backend.model.configs.ModelConfig` (enough to rebuild
  the model with nothing else),
* ``metadata``: JSON object from the caller (training data, metrics, ...),
* ``weights_sha256``: :func:`weights_sha256` of the tensors, checked on load.

Initialisation helpers read official weights from local paths: :func:`load_sam2_weights` for
SAM 2 / 2.1 ``.pt`` files (tensors under ``"model"``, read with
``torch.load(weights_only=True)``) and :func:`load_open_clip_weights` for open_clip weight
files (``.safetensors`` / ``.bin`` / ``.pt``). Each returns a :class:`LoadReport` and raises
:class:`~backend.errors.CheckpointError` with a readable list of missing, unexpected and
mis-shaped keys when the file does not fit. The header reader (:func:`read_header`, no tensor
data read) lives in :mod:`backend.model.checkpoint_format` and is re-exported here.

Example:
    >>> sha = save_checkpoint(model, "runs/nano.safetensors", metadata={"data": "nwpu"})
    >>> ckpt = load_checkpoint("runs/nano.safetensors")
    >>> ckpt.model, ckpt.config.name, ckpt.weights_sha256 == sha
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .architectures import architecture_of
from .checkpoint_format import (
    _ROWS,
    _SHAPE,
    _VALUES,
    FORMAT,
    FORMAT_VERSION,
    CheckpointHeader,
    read_header,
)
from .configs import ModelConfig
from .init_weights import load_open_clip_weights, load_sam2_weights
from .state_io import (
    LoadReport,
    load_state_dict_checked,
    prune_rows,
    weights_sha256,
)
from .stream_load import read_state_streaming

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointHeader",
    "LoadReport",
    "load_checkpoint",
    "load_open_clip_weights",
    "load_sam2_weights",
    "load_state_dict_checked",
    "prune_rows",
    "read_checkpoint",
    "read_header",
    "save_checkpoint",
    "weights_sha256",
]


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model: The model with the checkpoint's weights, in eval mode.
        config: The stored architecture.
        metadata: The stored metadata (training data, metrics, ...).
        weights_sha256: SHA-256 of the weights (see :func:`weights_sha256`).
        path: The file.
    """

    model: nn.Module
    config: ModelConfig
    metadata: dict[str, Any]
    weights_sha256: str
    path: Path


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, Any] | None = None,
    keep_rows: Mapping[str, torch.Tensor] | None = None,
) -> str:
    """Write ``model`` (an ``RS2SAM2``) as one self-describing ``.safetensors`` file.

    The file is written to a temporary name in the same folder and renamed, so a failed save
    leaves no partial file.

    Args:
        model: The model; its ``config`` is stored with the weights.
        path: Output file (conventionally ``*.safetensors``); its folder must exist.
        metadata: JSON-serialisable facts about the weights (data, metrics, ...).
        keep_rows: Optional row pruning, ``{state key: 1-D int64 row indices}``: only these
            rows of the (2-D) tensor are stored (as ``key.__rows__`` + ``key.__values__``) and
            every other row loads as zeros. For huge, mostly unused tables such as a text
            tower's BPE token embedding (rows of tokens never seen in training). The SHA-256
            is that of the loaded (dense, zero-filled) weights.

    Returns:
        The weights' SHA-256 (also stored in the header).

    Raises:
        CheckpointError: If the model has no config, the metadata is not JSON-serialisable,
            or the folder is missing.
    """
    from safetensors.torch import save_file

    config = getattr(model, "config", None)
    if not callable(getattr(config, "to_dict", None)):
        raise CheckpointError(
            "save_checkpoint needs a model of a registered architecture (with a .config), "
            f"got {type(model).__name__}"
        )
    try:
        meta_json = json.dumps(dict(metadata or {}), sort_keys=True)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint metadata must be JSON-serialisable: {err}") from None
    out = Path(path)
    if not out.parent.is_dir():
        raise CheckpointError(f"folder {out.parent} does not exist; create it first")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    stored = dict(state)
    for key, rows in (keep_rows or {}).items():
        if key not in state or state[key].ndim < 1:
            raise CheckpointError(f"keep_rows names {key!r}, which is not a tensor of the model")
        rows = torch.as_tensor(rows, dtype=torch.int64).unique()
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= state[key].shape[0]):
            raise CheckpointError(f"keep_rows[{key!r}] has rows outside 0..{len(state[key]) - 1}")
        state[key] = prune_rows(state[key], rows)
        del stored[key]
        stored[key + _ROWS] = rows
        stored[key + _VALUES] = state[key][rows].contiguous()
        stored[key + _SHAPE] = torch.tensor(state[key].shape, dtype=torch.int64)
    sha = weights_sha256(state)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture_of(config).name,
        "model_config": json.dumps(config.to_dict(), sort_keys=True),
        "metadata": meta_json,
        "weights_sha256": sha,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        save_file(stored, tmp, metadata=header)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a checkpoint is data others may read
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    logger.info("saved %s (%s, %d tensors, sha256 %s)", out, config.name, len(state), sha[:12])
    return sha


def read_checkpoint(
    path: str | os.PathLike[str], *, verify: bool = True
) -> tuple[dict[str, torch.Tensor], Any, dict[str, Any], str]:
    """Read a checkpoint file without building a model.

    Args:
        path: A file written by :func:`save_checkpoint`.
        verify: Recompute the weights' SHA-256 and compare it with the header.

    Returns:
        ``(state_dict, config, metadata, weights_sha256)``.

    Raises:
        CheckpointError: If the file is missing, a pickle, corrupt, not ours, or its weights
            do not match their stored SHA-256.
    """
    head = read_header(path)
    return (*_read_tensors(head, verify=verify),)  # type: ignore[return-value]


def _read_tensors(
    head: CheckpointHeader, *, verify: bool
) -> tuple[dict[str, torch.Tensor], Any, dict[str, Any], str]:
    from safetensors import SafetensorError, safe_open

    file = head.path
    try:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            state = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{file} is corrupt or not a .safetensors file ({err}); re-export or re-download it"
        ) from None
    state = _densify(state, file)
    stored = head.weights_sha256
    sha = weights_sha256(state) if verify or not stored else stored
    if verify and stored and sha != stored:
        raise CheckpointError(
            f"{file} is corrupt: its weights hash to {sha[:16]}… but the header says "
            f"{stored[:16]}…; re-export or re-download it"
        )
    return state, head.config, head.metadata, sha


def _densify(state: dict[str, torch.Tensor], file: Path) -> dict[str, torch.Tensor]:
    """Rebuild row-pruned tensors (``key.__rows__`` + ``key.__values__``) as zero-filled ones."""
    for rows_key in [k for k in state if k.endswith(_ROWS)]:
        key = rows_key[: -len(_ROWS)]
        rows, values = state.pop(rows_key), state.pop(key + _VALUES, None)
        shape = state.pop(key + _SHAPE, None)
        if values is None or shape is None or rows.ndim != 1 or len(rows) != len(values):
            raise CheckpointError(f"{file}: row-pruned tensor {key!r} is incomplete; re-export it")
        dense = values.new_zeros((int(shape[0]), *values.shape[1:]))
        dense[rows.long()] = values
        state[key] = dense
    return state


def load_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", verify: bool = True
) -> Checkpoint:
    """Rebuild the model stored in a checkpoint file (no code is executed).

    The header is read and checked first (architecture from our registry, config within
    bounds); the model is then built on the meta device (no memory), the file's tensor index
    is compared with it and the memory the load needs is checked against what the device
    has, all before any tensor data is read or allocated. Each tensor is then read straight
    into the model's dtype and assigned (:mod:`backend.model.stream_load`): the peak is the
    model's size plus one 64 MiB staging buffer.

    Args:
        path: A file written by :func:`save_checkpoint`.
        device: Where to put the model.
        verify: Check the weights against their stored SHA-256.

    Returns:
        :class:`Checkpoint` with the model in eval mode and the config's freezing policy.

    Raises:
        CheckpointError: If the file is missing, unsafe, corrupt, or does not fit its config.
        ResourceError: If loading would need more memory than the device has available.
    """
    from ..resources import check_fits, load_bytes
    from .architectures import get_architecture

    head = read_header(path)
    file = head.path
    model = get_architecture(head.architecture).build(head.config, device="meta", seed=None)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    report = LoadReport(str(file))
    for key, shape in head.shapes.items():
        if key not in expected:
            report.unexpected.append(key)
        elif shape != expected[key]:
            report.mismatched.append((key, shape, expected[key]))
        else:
            report.loaded.append(key)
    report.missing = [k for k in expected if k not in head.shapes]
    if not report.ok:
        raise CheckpointError(f"checkpoint does not fit its own config:\n{report.format()}")
    check_fits(load_bytes(model), device, what=f"loading {file.name} ({head.config.name})")
    targets = {k: v.dtype for k, v in model.state_dict().items()}
    state, sha = read_state_streaming(head, targets, verify=verify)
    model.load_state_dict(state, strict=True, assign=True)  # the tensors become the model's
    del state
    config, metadata = head.config, head.metadata
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"{file}: tensors left uninitialised after loading: {left[:5]}")
    model.apply_freezing()
    model.to(device).eval()
    logger.info("loaded %s (%s, sha256 %s)", file, config.name, sha[:12])
    return Checkpoint(model, config, metadata, sha, file)

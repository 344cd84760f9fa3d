"""The checkpoint file format: constants and the header reader (no tensor data is read).

See :mod:`backend.model.checkpoint` for the layout of the header metadata.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError
from .state_io import _check_file, _is_pickle

__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointHeader", "read_header"]

FORMAT = "rs2sam2"
FORMAT_VERSION = "1"

_ROWS = ".__rows__"
_VALUES = ".__values__"
_SHAPE = ".__shape__"
_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


@dataclass
class CheckpointHeader:
    """What a checkpoint says about itself, read without loading any tensor.

    Attributes:
        path: The file.
        architecture: Registry name of the model family (``"rs2sam2"`` when absent).
        config: The parsed, validated config of that architecture.
        metadata: The stored metadata.
        weights_sha256: Hash stated in the header (``""`` when absent).
        shapes: Dense shape of every model tensor the file holds (row-pruned tensors at their
            loaded size).
        nbytes: Bytes of tensor data in the file.
    """

    path: Path
    architecture: str
    config: Any
    metadata: dict[str, Any]
    weights_sha256: str
    shapes: dict[str, tuple[int, ...]]
    nbytes: int


def read_header(path: str | os.PathLike[str]) -> CheckpointHeader:
    """Parse and validate a checkpoint's header and tensor index; no tensor data is read.

    Raises:
        CheckpointError: If the file is missing, a pickle, corrupt, not ours, names an unknown
            architecture, or its config is invalid or out of bounds.
    """
    from safetensors import SafetensorError, safe_open

    from .architectures import DEFAULT_ARCHITECTURE, get_architecture

    file = Path(path)
    _check_file(file)
    if _is_pickle(file):
        raise CheckpointError(
            f"{file} is a PyTorch pickle (.pt/.pth), not a .safetensors checkpoint; unpickling "
            "can execute code, so it is refused. Official SAM 2 weights can initialise a model "
            "with backend.model.checkpoint.load_sam2_weights (torch.load weights_only=True)"
        )
    try:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            shapes: dict[str, tuple[int, ...]] = {}
            nbytes = 0
            for key in f.keys():
                view = f.get_slice(key)
                shape = tuple(int(n) for n in view.get_shape())
                shapes[key] = shape
                nbytes += math.prod(shape) * _DTYPE_BYTES.get(view.get_dtype(), 8)
            pruned_rows = {
                k[: -len(_SHAPE)]: int(f.get_tensor(k)[0])
                for k in shapes
                if k.endswith(_SHAPE) and shapes[k] and 0 < shapes[k][0] <= 8
            }
    except (SafetensorError, OSError, ValueError, RuntimeError, IndexError) as err:
        raise CheckpointError(
            f"{file} is corrupt or not a .safetensors file ({err}); re-export or re-download it"
        ) from None
    if header.get("format") != FORMAT or "model_config" not in header:
        raise CheckpointError(
            f"{file} is a .safetensors file but not an RS2-SAM 2 checkpoint (no model_config in "
            "its header); official SAM 2 / open_clip weights initialise a model via "
            "load_sam2_weights / load_open_clip_weights"
        )
    if header.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise CheckpointError(
            f"{file} has checkpoint format version {header.get('format_version')[:20]!r}; this "
            f"backend reads version {FORMAT_VERSION}: update the plugin"
        )
    arch = get_architecture(header.get("architecture", DEFAULT_ARCHITECTURE))
    try:
        config = arch.config_from_dict(json.loads(header["model_config"]))
        metadata = json.loads(header.get("metadata", "{}"))
    except (json.JSONDecodeError, RecursionError, ConfigError) as err:
        raise CheckpointError(
            f"{file}: unreadable or invalid model_config/metadata in header: {err}"
        ) from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{file}: header metadata must be a JSON object")
    return CheckpointHeader(
        path=file,
        architecture=arch.name,
        config=config,
        metadata=metadata,
        weights_sha256=str(header.get("weights_sha256", "")),
        shapes=_dense_shapes(shapes, pruned_rows, file),
        nbytes=nbytes,
    )


def _dense_shapes(
    shapes: dict[str, tuple[int, ...]], pruned_rows: dict[str, int], file: Path
) -> dict[str, tuple[int, ...]]:
    """Index of the tensors as they load (row-pruned triples folded into one dense shape)."""
    dense: dict[str, tuple[int, ...]] = {}
    for key, shape in shapes.items():
        if key.endswith((_ROWS, _SHAPE)):
            continue
        if key.endswith(_VALUES):
            base = key[: -len(_VALUES)]
            if base not in pruned_rows:
                raise CheckpointError(
                    f"{file}: row-pruned tensor {base!r} is incomplete; re-export it"
                )
            dense[base] = (pruned_rows[base], *shape[1:])
        else:
            dense[key] = shape
    return dense

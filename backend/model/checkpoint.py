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
mis-shaped keys when the file does not fit.

Example:
    >>> sha = save_checkpoint(model, "runs/nano.safetensors", metadata={"data": "nwpu"})
    >>> ckpt = load_checkpoint("runs/nano.safetensors")
    >>> ckpt.model, ckpt.config.name, ckpt.weights_sha256 == sha
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from .configs import ModelConfig

logger = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "LoadReport",
    "load_checkpoint",
    "load_open_clip_weights",
    "load_sam2_weights",
    "load_state_dict_checked",
    "prune_rows",
    "read_checkpoint",
    "save_checkpoint",
    "weights_sha256",
]

FORMAT = "rs2sam2"
FORMAT_VERSION = "1"

_SAM_PREFIXES = ("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder.", "no_mem_embed")
# official SAM 2 modules for video / memory that RS2-SAM 2 does not build
_SAM_UNUSED_PREFIXES = (
    "memory_attention.",
    "memory_encoder.",
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
    "mask_downsample.",
    "no_obj_embed_spatial",
)
_ADAPTER_MARKERS = (".Space_Adapter.", ".MLP_Adapter.")
_CLIP_TEXT_KEYS = (
    "token_embedding.",
    "positional_embedding",
    "transformer.",
    "ln_final.",
    "text_projection",
)
_CLIP_UNUSED_KEYS = ("logit_scale", "logit_bias", "attn_mask")


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


def weights_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


_ROWS = ".__rows__"
_VALUES = ".__values__"


def prune_rows(tensor: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``tensor`` with every row not in ``keep`` set to zero (what a row-pruned tensor loads as).

    Args:
        tensor: ``(N, ...)``.
        keep: 1-D int64 row indices.
    """
    out = torch.zeros_like(tensor)
    out[keep] = tensor[keep]
    return out


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
    if not isinstance(config, ModelConfig):
        raise CheckpointError(
            f"save_checkpoint needs an RS2SAM2 model with a .config, got {type(model).__name__}"
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
        stored[key + ".__shape__"] = torch.tensor(state[key].shape, dtype=torch.int64)
    sha = weights_sha256(state)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
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


def read_checkpoint(
    path: str | os.PathLike[str], *, verify: bool = True
) -> tuple[dict[str, torch.Tensor], ModelConfig, dict[str, Any], str]:
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
    from safetensors import SafetensorError, safe_open

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
            state = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{file} is corrupt or not a .safetensors file ({err}); re-export or re-download it"
        ) from None
    if header.get("format") != FORMAT or "model_config" not in header:
        raise CheckpointError(
            f"{file} is a .safetensors file but not an RS2-SAM 2 checkpoint (no model_config in "
            "its header); official SAM 2 / open_clip weights initialise a model via "
            "load_sam2_weights / load_open_clip_weights"
        )
    try:
        config = ModelConfig.from_dict(json.loads(header["model_config"]))
        metadata = json.loads(header.get("metadata", "{}"))
    except (json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(
            f"{file}: unreadable model_config/metadata in header: {err}"
        ) from None
    state = _densify(state, file)
    stored = header.get("weights_sha256", "")
    sha = weights_sha256(state) if verify or not stored else stored
    if verify and stored and sha != stored:
        raise CheckpointError(
            f"{file} is corrupt: its weights hash to {sha[:16]}… but the header says "
            f"{stored[:16]}…; re-export or re-download it"
        )
    return state, config, metadata, sha


def _densify(state: dict[str, torch.Tensor], file: Path) -> dict[str, torch.Tensor]:
    """Rebuild row-pruned tensors (``key.__rows__`` + ``key.__values__``) as zero-filled ones."""
    for rows_key in [k for k in state if k.endswith(_ROWS)]:
        key = rows_key[: -len(_ROWS)]
        rows, values = state.pop(rows_key), state.pop(key + _VALUES, None)
        shape = state.pop(key + ".__shape__", None)
        if values is None or shape is None or rows.ndim != 1 or len(rows) != len(values):
            raise CheckpointError(f"{file}: row-pruned tensor {key!r} is incomplete; re-export it")
        dense = values.new_zeros((int(shape[0]), *values.shape[1:]))
        dense[rows.long()] = values
        state[key] = dense
    return state


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


def load_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", verify: bool = True
) -> Checkpoint:
    """Rebuild the model stored in a checkpoint file (no code is executed).

    Args:
        path: A file written by :func:`save_checkpoint`.
        device: Where to put the model.
        verify: Check the weights against their stored SHA-256.

    Returns:
        :class:`Checkpoint` with the model in eval mode and the config's freezing policy.

    Raises:
        CheckpointError: If the file is missing, unsafe, corrupt, or does not fit its config.
    """
    from .rs2sam import build_model

    file = Path(path)
    state, config, metadata, sha = read_checkpoint(file, verify=verify)
    model = build_model(config, device="meta", seed=None)  # no init cost; weights assigned below
    load_state_dict_checked(model, state, source=str(file), assign=True)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"{file}: tensors left uninitialised after loading: {left[:5]}")
    model.apply_freezing()
    model.to(device).eval()
    logger.info("loaded %s (%s, sha256 %s)", file, config.name, sha[:12])
    return Checkpoint(model, config, metadata, sha, file)


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` or safetensors, with CheckpointErrors."""
    _check_file(path)
    if not _is_pickle(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise CheckpointError(
                f"{path} is neither a torch file nor safetensors ({err})"
            ) from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} could not be read with torch.load(weights_only=True) ({type(err).__name__}: "
            f"{str(err)[:300]}); only plain tensor files are accepted, never arbitrary pickles"
        ) from None


def _as_state(obj: Any, path: Path, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    for key in keys:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path} does not hold a state dict of tensors (looked under {list(keys)})"
        )
    return {str(k).removeprefix("module.").removeprefix("_orig_mod."): v for k, v in obj.items()}


def _source_state(
    weights: str | os.PathLike[str] | Mapping[str, Any], keys: tuple[str, ...]
) -> tuple[dict[str, torch.Tensor], str]:
    if isinstance(weights, Mapping):
        return _as_state(weights, Path("<state dict>"), keys), "state dict"
    path = Path(weights)
    return _as_state(_torch_load(path), path, keys), str(path)


def load_sam2_weights(
    model: nn.Module,
    weights: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: bool = True,
) -> LoadReport:
    """Initialise the SAM 2 parts of ``model`` from an official SAM 2 / 2.1 checkpoint.

    Keys map one-to-one (``image_encoder.*``, ``sam_prompt_encoder.*``,
    ``sam_mask_decoder.*``, ``no_mem_embed``); the BHFM adapters stay fresh and the video /
    memory modules of the file are ignored. Works at any model image size (Hiera's position
    embeddings are interpolated at run time).

    Args:
        model: An ``RS2SAM2``.
        weights: Path to ``sam2*.pt`` (tensors under ``"model"``, read with
            ``torch.load(weights_only=True)``) or ``.safetensors``, or an already loaded dict.
        strict: Raise if a SAM 2 key is missing, mis-shaped or unexpected.

    Returns:
        The :class:`LoadReport`.

    Raises:
        CheckpointError: Unreadable or unsafe file, or (``strict``) a mismatch.
    """
    state, source = _source_state(weights, ("model",))
    model_state = {
        k: v
        for k, v in model.state_dict().items()
        if k.startswith(_SAM_PREFIXES) and not any(m in f".{k}" for m in _ADAPTER_MARKERS)
    }
    ignored = {k: v for k, v in state.items() if k.startswith(_SAM_UNUSED_PREFIXES)}
    wanted = {k: v for k, v in state.items() if k not in ignored}
    report = _compare(model_state, wanted, source)
    report.ignored = sorted(ignored)
    if strict and not report.ok:
        raise CheckpointError(f"SAM 2 weights do not fit {model.config.name}:\n{report.format()}")
    _copy_in(model, {k: wanted[k] for k in report.loaded})
    logger.info("SAM 2 init: %s", report.format())
    return report


def load_open_clip_weights(
    model: nn.Module,
    weights: str | os.PathLike[str] | Mapping[str, Any],
    *,
    strict: bool = True,
) -> LoadReport:
    """Initialise the union encoder's CLIP towers from an open_clip weight file.

    ``visual.*`` maps to ``union.visual.*`` and the text tower (``token_embedding``,
    ``positional_embedding``, ``transformer``, ``ln_final``, ``text_projection``, or
    ``text.*`` for custom-text models) to ``union.text.*``. The vision position embedding is
    resized to the model's CLIP grid (open_clip's bicubic ``resize_pos_embed``); a longer text
    position table is cut to the model's context length (exact for CLIP's causal text tower).

    Args:
        model: An ``RS2SAM2``.
        weights: Path to an open_clip ``.safetensors`` / ``.bin`` / ``.pt`` file (plain state
            dict or under ``"state_dict"``), or an already loaded dict.
        strict: Raise if a tower key is missing, mis-shaped or unexpected.

    Returns:
        The :class:`LoadReport`.

    Raises:
        CheckpointError: Unreadable or unsafe file, or (``strict``) a mismatch.
    """
    from open_clip.model import resize_pos_embed

    state, source = _source_state(weights, ("state_dict", "model"))
    mapped: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for key, value in state.items():
        if key.startswith("visual."):
            mapped["union." + key] = value
        elif key.startswith("text."):
            mapped["union." + key] = value
        elif key.startswith(_CLIP_TEXT_KEYS):
            mapped["union.text." + key] = value
        elif key.startswith(_CLIP_UNUSED_KEYS):
            ignored.append(key)
        else:
            mapped["union.unknown." + key] = value
    model_state = {
        k: v
        for k, v in model.state_dict().items()
        if k.startswith(("union.visual.", "union.text."))
    }
    for key in list(mapped):  # projections design B does not use
        if key in ("union.visual.proj", "union.text.text_projection") and key not in model_state:
            ignored.append(key.removeprefix("union."))
            del mapped[key]
    pos_key = "union.visual.positional_embedding"
    if pos_key in mapped and pos_key in model_state:
        tmp = {"visual.positional_embedding": mapped[pos_key]}
        resize_pos_embed(tmp, model.union)
        mapped[pos_key] = tmp["visual.positional_embedding"]
    text_pos = "union.text.positional_embedding"
    if text_pos in mapped and text_pos in model_state:
        n = model_state[text_pos].shape[0]
        if mapped[text_pos].shape[0] > n:
            mapped[text_pos] = mapped[text_pos][:n]
    report = _compare(model_state, mapped, source)
    report.unexpected = [k.removeprefix("union.unknown.") for k in report.unexpected]
    report.ignored = sorted(ignored)
    if strict and not report.ok:
        raise CheckpointError(
            f"open_clip weights do not fit {model.config.name} ({model.config.clip_model}):\n"
            f"{report.format()}"
        )
    _copy_in(model, {k: mapped[k] for k in report.loaded})
    logger.info("open_clip init: %s", report.format())
    return report


def _copy_in(model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    targets = dict(model.state_dict(keep_vars=True))
    with torch.no_grad():
        for key, value in tensors.items():
            targets[key].copy_(value.to(targets[key].dtype))

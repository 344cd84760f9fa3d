"""``import-official``: a published release folder → one self-describing checkpoint.

Steps (nothing is written until every check has passed; the file is written to a temporary
name and renamed):

1. open the folder (:func:`~.release.open_release`) and read every tensor's shape;
2. sort the keys with the key map (:mod:`.keymap`): mapped, ignored with a reason, unexpected;
3. derive the architecture from the shapes and ``config.json`` (:func:`derive_config`): BEiT-3
   layers, width, FFN, vocabulary, image and text-position sizes; Hiera widths and stages,
   which select the registered SAM 2 description (window sizes and global-attention blocks are
   not in the weights); adapter widths; prompt width;
4. build the model on the meta device and compare: missing, unexpected and mis-shaped keys are
   reported together and nothing is written;
5. check the memory and the disk, then stream: each tensor is read from its release file,
   converted (optionally to float16), hashed and appended to the output, one at a time
   (:mod:`.stream`), so the model is never in memory; the sentencepiece model is stored as the
   ``tokenizer_model`` buffer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError, InputError
from ...outputs import check_output_file
from ..configs import get_model_config as _get
from ..state_io import LoadReport
from .config import OfficialConfig
from .derive import derive_config
from .keymap import map_keys
from .release import TOKENIZER_FILE, Release, describe_bytes, open_release
from .stream import StreamEntry, stream_safetensors
from .tokenizer import PAD_ID, XLMRTokenizer

logger = logging.getLogger(__name__)

__all__ = ["ImportResult", "derive_config", "import_official"]

_SLACK_BYTES = 256 * 1024**2  # the meta model, tokeniser and interpreter around the tensors


@dataclass
class ImportResult:
    """What :func:`import_official` wrote.

    Attributes:
        out: The checkpoint.
        config: The derived architecture.
        weights_sha256: Hash of the stored weights (also in the header).
        mapped: Tensors mapped onto the model.
        ignored: ``{reason: count}`` of the release tensors read past on purpose.
        source_kind: ``"safetensors"`` or ``"bin"``.
        source_files: Weight file names.
        out_bytes: Size of the written file.
        dtype: ``"float32"`` or ``"float16"``.
    """

    out: Path
    config: OfficialConfig
    weights_sha256: str
    mapped: int
    ignored: dict[str, int] = field(default_factory=dict)
    source_kind: str = ""
    source_files: list[str] = field(default_factory=list)
    out_bytes: int = 0
    dtype: str = "float32"

    def summary(self) -> str:
        """One line for the CLI."""
        ignored = sum(self.ignored.values())
        reasons = "; ".join(f"{n} {why}" for why, n in self.ignored.items())
        return (
            f"imported {self.mapped} tensors from {', '.join(self.source_files)} as "
            f"{self.config.name} ({self.dtype}); {ignored} ignored ({reasons or 'none'}) -> "
            f"{self.out} ({describe_bytes(self.out_bytes)}, sha256 {self.weights_sha256[:12]})"
        )


def import_official(
    folder: str | Path,
    out: str | Path,
    *,
    fp16: bool = False,
    gsd_m: float | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> ImportResult:
    """Convert a published release folder into one ``.safetensors`` checkpoint.

    Args:
        folder: The release folder (``rrsisd/`` or ``refseg/`` of ``ReeF2025/RS2-SAM2``).
        out: The checkpoint to write; its folder must exist.
        fp16: Store float tensors as float16 (half the file; they load back as float32).
        gsd_m: Working resolution stored in the config (m/px); None keeps the default of
            ``official-large`` (0.5 m, see docs/model.md).
        overwrite: Replace an existing ``out``.
        progress: Called with ``(bytes written, bytes in all)`` while the file is written.
        is_cancelled: Polled between tensors; True stops with :class:`Cancelled` and leaves
            nothing behind.

    Returns:
        :class:`ImportResult`.

    Raises:
        CheckpointError: The folder is not a usable release (message lists every problem).
        OutputError: ``out`` is a file of the release folder, does not end in
            ``.safetensors``, exists (without ``overwrite``) or its folder is missing.
        ResourceError: Not enough memory for the conversion.
        Cancelled: ``is_cancelled`` returned True.
    """
    from ...resources import check_fits
    from ..architectures import architecture_of
    from ..checkpoint import FORMAT, FORMAT_VERSION
    from .model import build_official_model

    # never one of the release's own files (links, hard links, ..); .safetensors only
    target = check_output_file(
        out, inputs=[folder], suffixes=(".safetensors",), overwrite=overwrite
    )
    if gsd_m is not None and not gsd_m > 0:
        raise InputError(f"gsd {gsd_m!r} must be a positive number of metres per pixel")

    release = open_release(folder)
    tokenizer = XLMRTokenizer(release.tokenizer_model, max_tokens=8)
    _check_tokenizer_files(release)
    shapes = release.shapes()
    keys = map_keys(shapes)
    default_gsd = _get("official-large").gsd_m
    config = derive_config(
        release, shapes, gsd_m=default_gsd if gsd_m is None else gsd_m, tokenizer=tokenizer
    )
    model = build_official_model(
        config, device="meta", seed=None, tokenizer_model=release.tokenizer_model
    )
    report = _compare(model, shapes, keys, str(release.root))
    if not report.ok:
        raise CheckpointError(
            "the release does not fit the published RS2-SAM 2 layout; nothing was written:\n"
            + report.format()
        )
    dtype = torch.float16 if fp16 else torch.float32
    entries = _entries(model, release, shapes, keys.mapped, dtype)
    # streaming: the largest tensor as read, its converted copy and its bytes, plus slack
    largest = max(e.nbytes * (2 if fp16 else 1) for e in entries)
    check_fits(3 * largest + _SLACK_BYTES, "cpu", what=f"importing {release.root}")
    ignored = {why: len(k) for why, k in keys.ignored.items()}
    metadata = _metadata(release, config, keys.mapped, ignored, tokenizer, fp16)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture_of(config).name,
        "model_config": json.dumps(config.to_dict(), sort_keys=True),
        "metadata": json.dumps(metadata, sort_keys=True),
    }
    sha = stream_safetensors(target, entries, header, progress=progress, is_cancelled=is_cancelled)
    logger.info("imported %s -> %s", release.root, target)
    return ImportResult(
        out=target,
        config=config,
        weights_sha256=sha,
        mapped=len(keys.mapped),
        ignored=ignored,
        source_kind=release.kind,
        source_files=[f.name for f in release.files],
        out_bytes=target.stat().st_size,
        dtype=str(dtype).removeprefix("torch."),
    )


def _entries(
    model: torch.nn.Module,
    release: Release,
    shapes: Mapping[str, tuple[int, ...]],
    mapped: Mapping[str, str],
    dtype: torch.dtype,
) -> list[StreamEntry]:
    """One output tensor per mapped release tensor (floats at ``dtype``), plus the tokeniser."""
    source_dtypes = release.dtypes()
    entries = [
        StreamEntry(
            ours,
            dtype if source_dtypes[official].is_floating_point else source_dtypes[official],
            shapes[official],
            partial(release.read, official),
            partial(release.forget, official),
        )
        for official, ours in mapped.items()
    ]
    tok = model.tokenizer_model
    entries.append(StreamEntry("tokenizer_model", tok.dtype, tuple(tok.shape), lambda: tok))
    return entries


def _compare(
    model: torch.nn.Module, shapes: Mapping[str, tuple[int, ...]], keys: Any, source: str
) -> LoadReport:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "tokenizer_model"}
    report = LoadReport(source)
    report.unexpected = [*keys.unexpected, *[f"{k} (mapped twice)" for k in keys.collisions]]
    for official, ours in keys.mapped.items():
        if ours not in expected:
            report.unexpected.append(f"{official} (-> {ours})")
        elif shapes[official] != expected[ours]:
            report.mismatched.append((official, shapes[official], expected[ours]))
        else:
            report.loaded.append(ours)
    provided = set(keys.mapped.values())
    report.missing = [k for k in expected if k not in provided]
    report.ignored = [k for ks in keys.ignored.values() for k in ks]
    return report


def _check_tokenizer_files(release: Release) -> None:
    """Cross-check the Hugging Face tokeniser files that came with the release (if any)."""
    special = release.tokenizer_files.get("special_tokens_map.json")
    if isinstance(special, dict):
        for name, want in (("bos_token", "<s>"), ("eos_token", "</s>"), ("unk_token", "<unk>")):
            value = special.get(name)
            value = value.get("content") if isinstance(value, dict) else value
            if value is not None and value != want:
                raise CheckpointError(
                    f"{release.root}/special_tokens_map.json sets {name}={value!r}, not {want!r}: "
                    "not the XLM-R tokeniser of the published code"
                )


def _metadata(
    release: Release,
    config: OfficialConfig,
    mapped: Mapping[str, str],
    ignored: Mapping[str, int],
    tokenizer: XLMRTokenizer,
    fp16: bool,
) -> dict[str, Any]:
    wanted = (
        "model_type",
        "hidden_size",
        "out_dim",
        "mm_extractor_scale",
        "sam_scale",
        "pad_token_id",
        "bos_token_id",
        "eos_token_id",
        "torch_dtype",
        "transformers_version",
    )
    added = release.tokenizer_files.get("added_tokens.json")
    return {
        "source": {
            "release": "ReeF2025/RS2-SAM2 (EvfSamModel save_pretrained folder)",
            "folder": release.root.name,
            "format": release.kind,
            "weights": [f.name for f in release.files],
            "bytes": release.nbytes,
            "config_json": {k: release.config[k] for k in wanted if k in release.config},
        },
        "import": {
            "command": "python -m backend import-official",
            "mapped_tensors": len(mapped),
            "ignored_tensors": dict(ignored),
            "dtype": "float16" if fp16 else "float32",
        },
        "tokenizer": {
            "file": TOKENIZER_FILE,
            "pieces": tokenizer.pieces,
            "pad_id": PAD_ID,
            "seg_token": added.get("[SEG]") if isinstance(added, dict) else None,
        },
        "decision": "foreground iff sigmoid(logits) > 0.5, i.e. the published z > 0.5 "
        "(logits = 2z - 1)",
        "published_results": "RRSIS-D test oIoU 78.99 / mIoU 66.72, RefSegRS test oIoU 80.87 / "
        "mIoU 73.90 (the paper's numbers, not re-measured by this project)",
        "description": config.description,
    }

"""Initialise LGCE's Swin and text encoder from local pretrained files (as the paper does).

* ``swin``: an official Swin checkpoint (``swin_base_patch4_window12_384_22k.pth``, tensors
  under ``"model"``) or a timm one, ``.pth`` (read with ``torch.load(weights_only=True)``) or
  ``.safetensors``. timm's own converter maps the official layout (downsampling at the end of a
  stage) onto timm's and resizes relative-position tables to the config's window.
* ``bert``: a folder with BERT-base weights (``model.safetensors`` or ``pytorch_model.bin``,
  ``BertModel`` or ``BertForPreTraining`` keys) and its ``vocab.txt``; the vocabulary is copied
  into the model's ``vocab_table`` so trained checkpoints carry it. Position embeddings are cut
  to ``context_length`` rows; the pooler and pre-training heads are ignored.

No file is ever unpickled into code: ``torch.load(weights_only=True)`` or safetensors only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ...errors import CheckpointError, ConfigError
from ..init_weights import _as_state, _torch_load
from ..state_io import LoadReport, _compare
from .text import encode_vocab

logger = logging.getLogger(__name__)

__all__ = ["init_lgce_pretrained", "load_bert_weights", "load_swin_weights"]

_BERT_LAYER_MAP = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attn_out",
    "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "ff_in",
    "output.dense": "ff_out",
    "output.LayerNorm": "ff_norm",
}
_BERT_EMBED_MAP = {
    "embeddings.word_embeddings": "tok_embed",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.token_type_embeddings": "type_embed",
    "embeddings.LayerNorm": "embed_norm",
}
_BERT_IGNORED = ("pooler.", "cls.", "embeddings.position_ids")


def _copy_in(model: nn.Module, prefix: str, tensors: Mapping[str, torch.Tensor]) -> None:
    own = model.state_dict()
    with torch.no_grad():
        for key, value in tensors.items():
            own[prefix + key].copy_(value.to(own[prefix + key].dtype))


def _sub_state(model: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in model.state_dict().items() if k.startswith(prefix)}


def load_swin_weights(model: nn.Module, path: str | Path, *, strict: bool = True) -> LoadReport:
    """Initialise ``model.swin`` from a Swin checkpoint file.

    Args:
        model: An ``LGCE``.
        path: Official or timm Swin weights (``.pth`` / ``.safetensors``).
        strict: Raise if a Swin key is missing or mis-shaped (the classifier head and final norm
            of the file are always ignored: LGCE has neither).

    Raises:
        CheckpointError: Unreadable or unsafe file, or (``strict``) a mismatch.
    """
    from timm.models.swin_transformer import checkpoint_filter_fn

    file = Path(path)
    state = _as_state(_torch_load(file), file, ("model", "state_dict"))
    try:
        state = checkpoint_filter_fn(state, model.swin)
    except (KeyError, RuntimeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{file} is not a Swin checkpoint timm can convert ({err})") from None
    ignored = sorted(k for k in state if k.startswith(("head.", "norm.")))
    wanted = {k: v for k, v in state.items() if k not in ignored}
    own = _sub_state(model, "swin.")
    own = {k: v for k, v in own.items() if not k.endswith(("relative_position_index", "attn_mask"))}
    report = _compare(own, wanted, str(file))
    report.ignored = ignored
    if strict and not report.ok:
        raise CheckpointError(f"Swin weights do not fit {model.config.name}:\n{report.format()}")
    _copy_in(model, "swin.", {k: wanted[k] for k in report.loaded})
    logger.info("Swin init: %s", report.format())
    return report


def _bert_weights_file(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(
        f"{folder} has no model.safetensors or pytorch_model.bin; pass the folder of a "
        "BERT-base download (with vocab.txt)"
    )


def _bert_key(key: str) -> str | None:
    """Our name (under ``text.``) of a BERT key, or None when LGCE has no such tensor."""
    key = key.removeprefix("bert.")
    key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
    key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
    if key.startswith(_BERT_IGNORED):
        return None
    for src, dst in _BERT_EMBED_MAP.items():
        if key.startswith(src + "."):
            return dst + key[len(src) :]
    m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)", key)
    if m and m.group(2) in _BERT_LAYER_MAP:
        return f"layers.{m.group(1)}.{_BERT_LAYER_MAP[m.group(2)]}.{m.group(3)}"
    return key  # unknown: reported as unexpected


def load_bert_weights(model: nn.Module, folder: str | Path, *, strict: bool = True) -> LoadReport:
    """Initialise ``model.text`` (and its WordPiece vocabulary) from a BERT folder.

    Args:
        model: An ``LGCE`` whose config has ``tokenizer="wordpiece"``.
        folder: Holds ``vocab.txt`` and ``model.safetensors`` or ``pytorch_model.bin``.
        strict: Raise if a text-encoder key is missing or mis-shaped.

    Raises:
        ConfigError: The model does not use WordPiece (its token ids would not match BERT's).
        CheckpointError: Missing or unsafe files, or (``strict``) a mismatch.
    """
    cfg = model.config
    if cfg.tokenizer != "wordpiece":
        raise ConfigError(
            f"{cfg.name} tokenises with {cfg.tokenizer!r}; BERT weights need a "
            "config with tokenizer='wordpiece' (e.g. lgce-paper)"
        )
    root = Path(folder)
    vocab_file = root / "vocab.txt"
    if not vocab_file.is_file():
        raise CheckpointError(f"{root} has no vocab.txt; pass the folder of a BERT download")
    vocab = vocab_file.read_text(encoding="utf-8").splitlines()
    vocab = [v for v in vocab if v]
    try:
        table = encode_vocab(vocab, cfg.vocab_size, cfg.vocab_token_bytes)
    except Exception as err:
        raise CheckpointError(f"{vocab_file}: {err}") from None
    file = _bert_weights_file(root)
    raw = _as_state(_torch_load(file), file, ("state_dict", "model"))
    mapped: dict[str, torch.Tensor] = {}
    ignored = []
    for key, value in raw.items():
        ours = _bert_key(key)
        if ours is None:
            ignored.append(key)
            continue
        if ours == "pos_embed.weight":
            value = value[: cfg.context_length]
        mapped[ours] = value
    report = _compare(_sub_state(model, "text."), mapped, str(file))
    report.ignored = sorted(ignored)
    if strict and not report.ok:
        raise CheckpointError(f"BERT weights do not fit {cfg.name}:\n{report.format()}")
    _copy_in(model, "text.", {k: mapped[k] for k in report.loaded})
    with torch.no_grad():
        model.vocab_table.copy_(table)
    model.reset_tokenizer()
    logger.info("BERT init: %s (%d vocabulary entries)", report.format(), len(vocab))
    return report


def init_lgce_pretrained(model: nn.Module, sources: Mapping[str, str]) -> list[LoadReport]:
    """Architecture hook: ``{"swin": file, "bert": folder}`` (either may be absent).

    Raises:
        ConfigError: A kind other than ``swin`` / ``bert``.
        CheckpointError: Unreadable, unsafe or mismatching files.
    """
    unknown = sorted(set(sources) - {"swin", "bert"})
    if unknown:
        raise ConfigError(f"LGCE takes pretrained 'swin' and 'bert' files, got {unknown}")
    reports = []
    if sources.get("swin"):
        reports.append(load_swin_weights(model, sources["swin"]))
    if sources.get("bert"):
        reports.append(load_bert_weights(model, sources["bert"]))
    return reports

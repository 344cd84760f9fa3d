"""Test helpers: a sentencepiece model trained on the fly, and release folders written from a model.

A "release folder" is what ``ReeF2025/RS2-SAM2`` publishes (a Hugging Face ``save_pretrained``
folder of ``EvfSamModel``): ``config.json``, the weights under the published key names (our keys
mapped back with the key map, plus SAM 2 video-memory tensors and ``meo_linear``, which the
import must ignore), ``sentencepiece.bpe.model`` and the tokeniser JSON files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

SENTENCES = (
    "the white storage tank on the left",
    "a large ship in the harbor near the bridge",
    "the airplane parked next to the terminal building",
    "two tennis courts beside the green baseball field",
    "the vehicle on the road at the bottom of the image",
    "a chimney and a windmill north of the river",
    "the golf field surrounded by trees",
    "the ground track field in the center",
    "a dam across the lake at the top right",
    "the overpass above the expressway",
)


def train_spm(vocab_size: int = 100) -> bytes:
    """A unigram sentencepiece model of :data:`SENTENCES` (XLM-R style: nmt_nfkc, unk=0)."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES),
        model_writer=out,
        vocab_size=vocab_size,
        model_type="unigram",
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return out.getvalue()


def release_state(model) -> dict[str, torch.Tensor]:
    """The model's weights under the published names, plus tensors the import must ignore."""
    from backend.model.official.keymap import to_release_key

    state = {
        to_release_key(k): v.detach().clone()
        for k, v in model.state_dict().items()
        if k != "tokenizer_model"
    }
    gen = torch.Generator().manual_seed(1)
    state["visual_model.memory_attention.layers.0.linear1.weight"] = torch.randn(
        8, 4, generator=gen
    )
    state["visual_model.maskmem_tpos_enc"] = torch.randn(1, 1, 1, 4, generator=gen)
    state["visual_model.obj_ptr_proj.layers.0.weight"] = torch.randn(4, 4, generator=gen)
    d = model.config.beit3_width
    state["meo_linear.weight"] = torch.randn(model.prompt_dim, d, generator=gen)
    state["meo_linear.bias"] = torch.zeros(model.prompt_dim)
    return state


def write_release(
    model,
    folder: Path,
    spm_bytes: bytes,
    *,
    layout: str = "safetensors",
    state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a release folder for ``model``.

    Args:
        layout: ``"safetensors"`` (one ``model.safetensors``) or ``"bin-sharded"`` (two
            ``pytorch_model-0000N-of-00002.bin`` shards + ``pytorch_model.bin.index.json``).
        state: Weights to write instead of :func:`release_state` of the model.
    """
    folder.mkdir(parents=True, exist_ok=True)
    state = release_state(model) if state is None else state
    config = {
        "architectures": ["EvfSamModel"],
        "model_type": "evf",
        "hidden_size": model.config.beit3_width,
        "out_dim": model.prompt_dim,
        "mm_extractor_scale": "tiny",
        "sam_scale": "huge",
        "pad_token_id": 3,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "torch_dtype": "float32",
        "transformers_version": "4.31.0",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    if layout == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    elif layout == "bin-sharded":
        keys = sorted(state)
        half = len(keys) // 2
        weight_map = {}
        for i, part in enumerate((keys[:half], keys[half:]), start=1):
            name = f"pytorch_model-{i:05d}-of-00002.bin"
            torch.save({k: state[k] for k in part}, folder / name)
            weight_map.update(dict.fromkeys(part, name))
        index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
        (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    else:
        raise ValueError(layout)
    (folder / "sentencepiece.bpe.model").write_bytes(spm_bytes)
    special = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<unk>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "mask_token": "<mask>",
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512})
    )
    import sentencepiece as spm

    pieces = spm.SentencePieceProcessor(model_proto=spm_bytes).get_piece_size()
    (folder / "added_tokens.json").write_text(json.dumps({"[SEG]": pieces + 2}))
    return folder

"""Row-pruned checkpoint tensors (keep_rows): smaller files that load as zero-filled rows."""

from __future__ import annotations

import pytest
import torch

from backend.errors import CheckpointError
from backend.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from backend.model.rs2sam import build_model

KEY = "union.text.token_embedding.weight"


def test_pruned_token_embedding_round_trip(tmp_path):
    model = build_model("test-tiny")
    full = tmp_path / "full.safetensors"
    pruned = tmp_path / "pruned.safetensors"
    save_checkpoint(model, full)
    keep = torch.tensor([3, 1, 7, 7, 49406, 49407])
    sha = save_checkpoint(model, pruned, keep_rows={KEY: keep})
    assert pruned.stat().st_size < full.stat().st_size
    state, _cfg, _meta, got_sha = read_checkpoint(pruned)
    assert got_sha == sha and KEY in state and not any("__" in k for k in state)
    emb = model.state_dict()[KEY]
    rows = sorted(set(keep.tolist()))
    torch.testing.assert_close(state[KEY][rows], emb[rows], rtol=0, atol=0)
    others = torch.ones(len(emb), dtype=torch.bool)
    others[rows] = False
    assert torch.count_nonzero(state[KEY][others]) == 0
    loaded = load_checkpoint(pruned).model
    for name, tensor in model.state_dict().items():
        if name != KEY:
            torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)


def test_pruned_fp16_checkpoint_loads_as_float32(tmp_path):
    import copy

    path = tmp_path / "half.safetensors"
    save_checkpoint(
        copy.deepcopy(build_model("test-tiny")).half(), path, keep_rows={KEY: torch.arange(10)}
    )
    model = load_checkpoint(path).model
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_keep_rows_rejects_bad_keys_and_rows(tmp_path):
    model = build_model("test-tiny")
    with pytest.raises(CheckpointError, match="not a tensor"):
        save_checkpoint(model, tmp_path / "a.safetensors", keep_rows={"nope": torch.arange(2)})
    with pytest.raises(CheckpointError, match="outside"):
        save_checkpoint(model, tmp_path / "b.safetensors", keep_rows={KEY: torch.tensor([10**6])})


def test_unknown_words_are_the_words_with_pruned_token_rows(tmp_path):
    """A word whose BPE token rows were pruned (never trained) is reported; known words are not,
    and a full token table reports nothing (it cannot tell)."""
    from backend.model.segmenter import load_segmenter

    model = build_model("test-tiny")
    encode = model.tokenizer.encode
    known = {t for w in ("the", "buildings", "road", "left") for t in encode(w)}
    keep = torch.tensor(sorted(known | {49406, 49407}))
    path = tmp_path / "pruned.safetensors"
    save_checkpoint(model, path, keep_rows={KEY: keep})
    seg = load_segmenter(path, device="cpu")
    assert seg.unknown_words("the buildings on the left") == ["on"]
    assert seg.unknown_words("The LAKE, the road and the lake's shore") == [
        "lake",
        "and",
        "lake's",
        "shore",
    ]
    assert seg.unknown_words("the road") == []
    assert build_model("test-tiny").unknown_words("the lake") == []  # full table: unknown

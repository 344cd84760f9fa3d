"""LGCE as a second architecture: shapes, text and padding behaviour, checkpoints, init files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from backend.errors import CheckpointError, ConfigError, InputError
from backend.model.architectures import architecture_of, get_architecture
from backend.model.checkpoint import load_checkpoint, read_header, save_checkpoint
from backend.model.configs import get_model_config, list_models
from backend.model.lgce.config import LGCEConfig
from backend.model.lgce.model import LGCE, build_lgce
from backend.model.lgce.pretrained import init_lgce_pretrained, load_bert_weights
from backend.model.lgce.text import WordPieceTokenizer, decode_vocab, encode_vocab


def _open_gates(model: LGCE, seed: int = 0) -> LGCE:
    """Random, non-trivial weights in the decoder's last layer (as after some training)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.decoder.classifier.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return model


@pytest.fixture(scope="module")
def lgce_tiny() -> LGCE:
    return _open_gates(build_lgce("lgce-tiny"))


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (2, 80, 100, 3), dtype=np.uint8)


def test_configs_are_registered_with_their_architecture() -> None:
    for name in ("lgce-tiny", "lgce-nano", "lgce-paper"):
        assert name in list_models()
        cfg = get_model_config(name)
        assert isinstance(cfg, LGCEConfig) and architecture_of(cfg).name == "lgce"
    assert architecture_of(get_model_config("nano")).name == "rs2sam2"


def test_config_roundtrip_and_validation() -> None:
    cfg = get_model_config("lgce-nano")
    again = LGCEConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.depths == (2, 2, 4, 2)
    with pytest.raises(ConfigError, match="unknown fields"):
        LGCEConfig.from_dict({**cfg.to_dict(), "sam2_yaml": "x"})
    with pytest.raises(ConfigError, match="outside the supported range"):
        get_model_config("lgce-nano", embed_dim=100_000)
    with pytest.raises(ConfigError, match="4 entries"):
        get_model_config("lgce-nano", depths=(2, 2, 2))
    with pytest.raises(ConfigError, match="must divide"):
        get_model_config("lgce-nano", text_heads=5)
    with pytest.raises(ConfigError, match="depths"):
        LGCEConfig.from_dict({**cfg.to_dict(), "depths": [2, 2, "4", 2]})


def test_shapes_through_every_stage(lgce_tiny: LGCE, images: np.ndarray) -> None:
    m = lgce_tiny
    inputs = m.prepare_inputs(images, ["the red roofs", "a white ship in the harbour"])
    s = m.image_size
    assert inputs.images.shape == (2, 3, s, s)
    assert inputs.tokens.shape == inputs.text_pad.shape and inputs.tokens.shape[0] == 2
    with torch.no_grad():
        parts = m.encode(inputs)
    assert parts["words"].shape == (2, inputs.tokens.shape[1], m.config.text_width)
    for i, f in enumerate(parts["stages"]):
        side = s // (4 * 2**i)
        assert f.shape == (2, m.config.embed_dim * 2**i, side, side)
    assert parts["enhanced"].shape == parts["stages"][0].shape
    assert not torch.equal(parts["enhanced"], parts["stages"][0])  # the LGCE module acts
    assert parts["low_res"].shape == (2, 1, s // 4, s // 4)
    with torch.no_grad():
        out = m(inputs)
        big = m(inputs, output_size=(90, 70))
    assert out.logits.shape == (2, 1, s, s) and out.logits.dtype == torch.float32
    assert big.logits.shape == (2, 1, 90, 70)
    assert torch.isfinite(out.logits).all()


def test_text_changes_the_output(lgce_tiny: LGCE, images: np.ndarray) -> None:
    m = lgce_tiny
    with torch.no_grad():
        a = m(m.prepare_inputs(images[:1], ["the red roofs"])).logits
        b = m(m.prepare_inputs(images[:1], ["two tennis courts at the bottom"])).logits
    assert (a - b).abs().max() > 1e-4


def test_padding_does_not_change_the_output(lgce_tiny: LGCE, images: np.ndarray) -> None:
    m = lgce_tiny
    short = "the roofs"
    long = "the large grey storage tank at the top left of the harbour"
    with torch.no_grad():
        alone = m(m.prepare_inputs(images[:1], [short]))
        batch_inputs = m.prepare_inputs(np.concatenate([images[:1], images[1:]]), [short, long])
        batched = m(batch_inputs)
    assert batch_inputs.text_pad[0].any()  # the short caption really is padded
    torch.testing.assert_close(batched.logits[:1], alone.logits, atol=1e-5, rtol=1e-5)


def test_without_lgce_module_the_shallow_features_pass_through(images: np.ndarray) -> None:
    m = build_lgce(get_model_config("lgce-tiny", use_lgce=False))
    assert m.lgce is None
    with torch.no_grad():
        parts = m.encode(m.prepare_inputs(images[:1], ["the roofs"]))
    assert parts["enhanced"] is parts["stages"][0]


def test_bad_inputs_are_refused(lgce_tiny: LGCE, images: np.ndarray) -> None:
    with pytest.raises(InputError, match="empty"):
        lgce_tiny.prepare_inputs(images[:1], ["  "])
    with pytest.raises(InputError, match="one per image"):
        lgce_tiny.prepare_inputs(images, ["one caption"])


def test_param_groups_cover_every_trainable_parameter(lgce_tiny: LGCE) -> None:
    groups = lgce_tiny.named_param_groups()
    names = {n for g in groups.values() for n, _ in g}
    assert names == {n for n, p in lgce_tiny.named_parameters() if p.requires_grad}
    assert all(n.startswith(("swin.", "text.")) for n, _ in groups["base"])
    assert any(n.startswith("lgce.") for n, _ in groups["new"])
    assert lgce_tiny.loss_inputs(None) == {}  # type: ignore[arg-type]


def test_text_trainable_layers_freezes_embeddings_and_late_layers() -> None:
    m = build_lgce(get_model_config("lgce-tiny", text_layers=3, text_trainable_layers=1))
    assert not m.text.tok_embed.weight.requires_grad
    assert all(p.requires_grad for p in m.text.layers[0].parameters())
    assert not any(p.requires_grad for p in m.text.layers[1].parameters())


def test_meta_build_allocates_no_parameters() -> None:
    m = build_lgce("lgce-paper", device="meta")
    counts = m.parameter_counts()
    assert counts["swin"] > 80_000_000 and counts["text"] > 100_000_000
    assert all(p.is_meta for p in m.parameters())
    # non-persistent buffers (no checkpoint restores them) are real tensors
    assert not any(b.is_meta for b in m.buffers())
    meta, real = build_lgce("lgce-tiny", device="meta"), build_lgce("lgce-tiny")
    masks = [(n, b) for n, b in meta.named_buffers() if n.endswith("attn_mask")]
    assert masks and all(torch.equal(b, real.get_buffer(n)) for n, b in masks)


# ---------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def lgce_file(tmp_path_factory: pytest.TempPathFactory, lgce_tiny: LGCE) -> Path:
    path = tmp_path_factory.mktemp("lgce") / "lgce_tiny.safetensors"
    save_checkpoint(lgce_tiny, path, metadata={"data": "none"})
    return path


def test_save_load_gives_identical_predictions(lgce_tiny: LGCE, lgce_file: Path,
                                               images: np.ndarray) -> None:
    ck = load_checkpoint(lgce_file)
    assert isinstance(ck.model, LGCE) and ck.config == lgce_tiny.config
    for (name, a), (_, b) in zip(lgce_tiny.named_buffers(), ck.model.named_buffers(),
                                 strict=True):
        assert torch.equal(a, b), name  # shifted-window masks included
    texts = ["the red roofs", "a white ship"]
    with torch.no_grad():
        a = lgce_tiny(lgce_tiny.prepare_inputs(images, texts)).logits
        b = ck.model(ck.model.prepare_inputs(images, texts)).logits
    assert torch.equal(a, b)


def test_architecture_field_selects_the_model(lgce_file: Path, tmp_path: Path) -> None:
    head = read_header(lgce_file)
    assert head.architecture == "lgce" and isinstance(head.config, LGCEConfig)
    with safe_open(str(lgce_file), framework="pt") as f:
        header = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}
    assert header["architecture"] == "lgce"
    # the same LGCE config under another architecture's name: that architecture's config
    # class refuses it (never built as the wrong model)
    save_file(state, str(tmp_path / "as_rs2sam2.safetensors"),
              metadata={**header, "architecture": "rs2sam2"})
    with pytest.raises(CheckpointError, match="unknown fields"):
        load_checkpoint(tmp_path / "as_rs2sam2.safetensors")
    save_file(state, str(tmp_path / "unknown.safetensors"),
              metadata={**header, "architecture": "lavt"})
    with pytest.raises(CheckpointError, match="unknown model architecture 'lavt'.*lgce"):
        load_checkpoint(tmp_path / "unknown.safetensors")


def test_segmenter_works_with_lgce(lgce_file: Path, images: np.ndarray) -> None:
    from backend.model.segmenter import load_segmenter

    seg = load_segmenter(checkpoint=lgce_file, device="cpu")
    prob = seg.predict(images[0], "the red roofs")
    assert prob.shape == images[0].shape[:2] and prob.dtype == np.float32
    assert 0.0 <= float(prob.min()) <= float(prob.max()) <= 1.0
    assert seg.name == "lgce-tiny"
    random_seg = load_segmenter(config="lgce-tiny", device="cpu")
    assert random_seg.image_size == 64


def test_unknown_words_from_zeroed_token_rows(tmp_path: Path, lgce_tiny: LGCE) -> None:
    m = build_lgce("lgce-tiny")
    assert m.unknown_words("the red roofs") == []
    rows = torch.tensor(sorted({*m.tokenizer.ids("the"), *m.tokenizer.ids("roofs")}))
    path = tmp_path / "pruned.safetensors"
    save_checkpoint(m, path, keep_rows={"text.tok_embed.weight": rows})
    pruned = load_checkpoint(path).model
    assert pruned.unknown_words("the red roofs") == ["red"]


# ---------------------------------------------------------------- pretrained files


def _wordpiece_config() -> LGCEConfig:
    return get_model_config("lgce-tiny", tokenizer="wordpiece", vocab_size=40,
                            vocab_token_bytes=16, text_layers=2, text_trainable_layers=1)


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "red", "roof", "##s", "white", "ship",
         "a", ",", "cafe"]


def test_wordpiece_tokenizer() -> None:
    tok = WordPieceTokenizer(VOCAB, context_length=8)
    assert tok.ids("The roofs, a café") == [4, 6, 7, 11, 10, 12]
    assert tok.ids("boats") == [1]
    tokens, pad = tok(["the roofs", "a white ship , the red roofs"])
    assert tokens[0].tolist()[:5] == [2, 4, 6, 7, 3] and pad[0].tolist()[5:] == [True] * 3
    assert tokens.shape == (2, 8) and tokens[1, -1] == 3  # truncated, [SEP] kept
    assert decode_vocab(encode_vocab(VOCAB, 20, 8)) == VOCAB
    with pytest.raises(InputError, match="no \\[CLS\\]"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[SEP]"], 8)


def _fake_bert_folder(folder: Path, cfg: LGCEConfig, seed: int = 1) -> dict[str, torch.Tensor]:
    """A BERT-layout folder (HF key names, BertForPreTraining prefix) with random weights."""
    gen = torch.Generator().manual_seed(seed)
    d, layers = cfg.text_width, cfg.text_layers

    def t(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    state = {
        "bert.embeddings.word_embeddings.weight": t(cfg.vocab_size, d),
        "bert.embeddings.position_embeddings.weight": t(512, d),
        "bert.embeddings.token_type_embeddings.weight": t(2, d),
        "bert.embeddings.LayerNorm.gamma": t(d),
        "bert.embeddings.LayerNorm.beta": t(d),
        "bert.pooler.dense.weight": t(d, d),
        "cls.predictions.bias": t(cfg.vocab_size),
    }
    for i in range(layers):
        p = f"bert.encoder.layer.{i}."
        for name, shape in [("attention.self.query", (d, d)), ("attention.self.key", (d, d)),
                            ("attention.self.value", (d, d)), ("attention.output.dense", (d, d)),
                            ("intermediate.dense", (4 * d, d)), ("output.dense", (d, 4 * d))]:
            state[p + name + ".weight"] = t(*shape)
            state[p + name + ".bias"] = t(shape[0])
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[p + name + ".weight"] = t(d)
            state[p + name + ".bias"] = t(d)
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return state


def test_bert_folder_initialises_text_encoder_and_vocabulary(tmp_path: Path,
                                                             images: np.ndarray) -> None:
    cfg = _wordpiece_config()
    m = build_lgce(cfg)
    with pytest.raises(InputError, match="no WordPiece vocabulary"):
        m.prepare_inputs(images[:1], ["the roofs"])
    state = _fake_bert_folder(tmp_path / "bert", cfg)
    report = load_bert_weights(m, tmp_path / "bert")
    assert report.ok and "bert.pooler.dense.weight" in report.ignored
    assert torch.equal(m.text.layers[1].ff_out.weight,
                       state["bert.encoder.layer.1.output.dense.weight"])
    assert torch.equal(m.text.pos_embed.weight,
                       state["bert.embeddings.position_embeddings.weight"][: cfg.context_length])
    assert torch.equal(m.text.embed_norm.bias, state["bert.embeddings.LayerNorm.beta"])
    inputs = m.prepare_inputs(images[:1], ["the red roofs"])
    assert inputs.tokens[0].tolist() == [2, 4, 5, 6, 7, 3]
    assert m.unknown_words("the red boats") == ["boats"]
    # the vocabulary travels with the weights: a checkpoint tokenises without the folder
    path = tmp_path / "wp.safetensors"
    save_checkpoint(m, path)
    loaded = load_checkpoint(path).model
    assert torch.equal(loaded.prepare_inputs(images[:1], ["the red roofs"]).tokens,
                       inputs.tokens)


def test_bert_weights_need_a_wordpiece_config(tmp_path: Path) -> None:
    _fake_bert_folder(tmp_path / "bert", _wordpiece_config())
    with pytest.raises(ConfigError, match="wordpiece"):
        load_bert_weights(build_lgce("lgce-tiny"), tmp_path / "bert")
    with pytest.raises(CheckpointError, match="no vocab.txt"):
        load_bert_weights(build_lgce(_wordpiece_config()), tmp_path)


def test_swin_file_initialises_the_backbone(tmp_path: Path) -> None:
    donor = build_lgce("lgce-tiny", seed=7)
    state = {f"{k[len('swin.'):]}": v for k, v in donor.state_dict().items()
             if k.startswith("swin.") and not k.endswith(("relative_position_index",
                                                            "attn_mask"))}
    torch.save({"model": state}, tmp_path / "swin.pth")
    m = build_lgce("lgce-tiny", seed=0)
    reports = get_architecture("lgce").init_pretrained(m, {"swin": str(tmp_path / "swin.pth")})
    assert reports[0].ok
    for k, v in state.items():
        assert torch.equal(m.state_dict()["swin." + k], v), k
    with pytest.raises(ConfigError, match="'swin' and 'bert'"):
        init_lgce_pretrained(m, {"sam2": "x.pt"})


def test_swin_loader_refuses_pickled_code(tmp_path: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):  # pragma: no cover - must never run
            return (print, ("pwned",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(CheckpointError):
        init_lgce_pretrained(build_lgce("lgce-tiny"), {"swin": str(tmp_path / "evil.pth")})


def test_model_report_measures_lgce_configs() -> None:
    """tools/model_report.py is architecture-neutral: an LGCE config gets a row with its
    encoders, its parameter count and a forward time (no RS2-SAM 2-only fields needed)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    proc = subprocess.run(
        [sys.executable, str(root / "tools" / "model_report.py"), "--one", "lgce-tiny",
         "--threads", "1", "--runs", "1"],
        cwd=root, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    cfg = get_model_config("lgce-tiny")
    assert row["architecture"] == "lgce" and row["image_size"] == cfg.image_size
    assert row["encoders"].startswith(f"Swin C={cfg.embed_dim} ")
    assert row["total"] == build_lgce(cfg).parameter_counts()["total"]
    assert row["forward_s"] > 0 and "adapters" not in row

"""The published RS2-SAM 2 layout: import-official, parity with the published forward, key-map
errors, unsafe pickles, the tokeniser, and the release's parameter counts."""

from __future__ import annotations

import logging
import pickletools
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("torchscale")
pytest.importorskip("sentencepiece")

from official_reference import preprocess, reference_z, tokens  # noqa: E402
from official_release import release_state, train_spm, write_release  # noqa: E402

from backend.cli import main  # noqa: E402
from backend.errors import CheckpointError, OutputError, ResourceError  # noqa: E402
from backend.model.checkpoint import read_header  # noqa: E402
from backend.model.official.importer import import_official  # noqa: E402
from backend.model.official.keymap import IGNORED, KEY_MAP, map_keys, to_release_key  # noqa: E402
from backend.model.official.model import build_official_model  # noqa: E402
from backend.model.official.tokenizer import XLMRTokenizer  # noqa: E402
from backend.model.segmenter import Segmenter, load_segmenter  # noqa: E402

TEXTS = ["the white storage tank on the left", "a ship ☃ near the bridge"]


@pytest.fixture(scope="module")
def spm_bytes() -> bytes:
    return train_spm()


@pytest.fixture(scope="module")
def source(spm_bytes):
    """official-tiny (random init) carrying the on-the-fly sentencepiece model."""
    return build_official_model("official-tiny", tokenizer_model=spm_bytes, seed=3)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    img[20:60, 30:80] = (230, 230, 230)
    return img


@pytest.fixture(scope="module")
def releases(tmp_path_factory, source, spm_bytes):
    root = tmp_path_factory.mktemp("releases")
    return {
        layout: write_release(source, root / layout, spm_bytes, layout=layout)
        for layout in ("safetensors", "bin-sharded")
    }


@pytest.fixture(scope="module")
def imported(tmp_path_factory, releases):
    out = tmp_path_factory.mktemp("imported")
    return {
        layout: import_official(folder, out / f"{layout}.safetensors")
        for layout, folder in releases.items()
    }


def _reference(source, spm_bytes, image, text):
    c = source.config
    beit3 = {
        "img_size": c.beit3_image_size,
        "patch_size": c.beit3_patch_size,
        "vocab_size": c.vocab_size,
        "width": c.beit3_width,
        "heads": c.beit3_heads,
        "ffn": c.beit3_ffn,
        "layers": c.beit3_layers,
        "positions": c.text_positions,
    }
    return reference_z(
        release_state(source),
        spm_bytes,
        sam2_yaml=c.sam2_yaml,
        image_size=c.image_size,
        beit3=beit3,
        image=image,
        text=text,
    )


def _z(model, image, text):
    with torch.inference_mode():
        return (model(model.prepare_inputs(image[None], [text])).logits + 1) / 2


# ------------------------------------------------------------------ import and parity
@pytest.mark.parametrize("layout", ["safetensors", "bin-sharded"])
def test_imported_checkpoint_predicts_like_the_source(layout, imported, source, image):
    result = imported[layout]
    assert result.config.name == "official-tiny"  # sizes derived from the shapes
    seg = load_segmenter(result.out, device="cpu")
    ref = Segmenter(source)
    for text in TEXTS:
        a, b = ref.predict(image, text), seg.predict(image, text)
        assert a.shape == b.shape == image.shape[:2]
        assert np.abs(a - b).max() <= 1e-5
    logits_a = source(source.prepare_inputs(image[None], TEXTS[:1])).logits
    logits_b = seg.model(seg.model.prepare_inputs(image[None], TEXTS[:1])).logits
    assert torch.allclose(logits_a, logits_b, atol=1e-5, rtol=0)


def test_both_layouts_give_the_same_checkpoint(imported):
    shas = {r.weights_sha256 for r in imported.values()}
    assert len(shas) == 1


def test_checkpoint_is_self_describing(imported, spm_bytes):
    result = imported["safetensors"]
    head = read_header(result.out)
    assert head.architecture == "rs2sam2-official"
    assert head.config.name == "official-tiny"
    assert head.config.tokenizer_bytes == len(spm_bytes)
    assert head.metadata["import"]["ignored_tensors"] == {
        "SAM 2 video memory (unused for single images)": 3,
        "defined in the published model but never called by its forward": 2,
    }
    assert result.ignored == head.metadata["import"]["ignored_tensors"]
    seg = load_segmenter(result.out, device="cpu")
    stored = seg.model.tokenizer_model.numpy().tobytes()
    assert stored == spm_bytes  # the tokeniser travels inside the checkpoint


@pytest.mark.parametrize("text", TEXTS)
def test_forward_matches_the_published_reference(source, spm_bytes, image, text):
    z_ref = _reference(source, spm_bytes, image, text)
    z = _z(source, image, text)
    assert z.shape == z_ref.shape == (1, 1, 128, 128)
    assert (z - z_ref).abs().max().item() <= 1e-5
    assert z_ref.std().item() > 1e-3  # the comparison is not between constants


def test_reference_notices_a_changed_forward(source, spm_bytes, image):
    """The parity check can fail: a different text-update rate in the adapters shows."""
    z_ref = _reference(source, spm_bytes, image, TEXTS[0])
    blocks = source.adapted_blocks()
    try:
        for block in blocks:
            block.Space_Adapter.alpha = 0.3
        z = _z(source, image, TEXTS[0])
    finally:
        for block in blocks:
            block.Space_Adapter.alpha = 0.2
    assert (z - z_ref).abs().max().item() > 1e-4


def test_decision_is_the_published_one(source, image):
    """sigmoid(logits) > 0.5 exactly where the published z > 0.5 (logits = 2z - 1)."""
    with torch.inference_mode():
        out = source(source.prepare_inputs(image[None], TEXTS[:1]))
    z = (out.logits + 1) / 2
    assert torch.equal(torch.sigmoid(out.logits) > 0.5, z > 0.5)
    assert torch.allclose(
        torch.sigmoid(out.logits), torch.softmax(torch.cat([1 - z, z], 1), 1)[:, 1:]
    )


def test_preprocessing_matches_the_published_transforms(source, spm_bytes, image):
    inputs = source.prepare_inputs(image[None], TEXTS[:1])
    assert torch.allclose(inputs.sam_images, preprocess(image, 128), atol=1e-6, rtol=0)
    assert torch.allclose(inputs.clip_images, preprocess(image, 64), atol=1e-6, rtol=0)
    assert torch.equal(inputs.tokens, tokens(spm_bytes, TEXTS[0]))
    assert not inputs.text_pad.any()


def test_fp16_import_halves_the_file(tmp_path, releases, imported, image):
    result = import_official(releases["safetensors"], tmp_path / "half.safetensors", fp16=True)
    assert result.dtype == "float16"
    assert result.out_bytes < 0.6 * imported["safetensors"].out_bytes
    a = load_segmenter(result.out, device="cpu").predict(image, TEXTS[0])
    b = load_segmenter(imported["safetensors"].out, device="cpu").predict(image, TEXTS[0])
    assert np.abs(a - b).max() < 1e-2


def test_a_variant_release_imports_with_derived_sizes(tmp_path, spm_bytes, image):
    """Sizes come from the shapes: 3 BEiT-3 layers and a 96-px BEiT-3 input are read back."""
    from backend.model.configs import get_model_config

    cfg = get_model_config("official-tiny", beit3_layers=3, beit3_image_size=96, beit3_ffn=192)
    variant = build_official_model(cfg, tokenizer_model=spm_bytes, seed=5)
    folder = write_release(variant, tmp_path / "variant", spm_bytes)
    result = import_official(folder, tmp_path / "v.safetensors", gsd_m=0.3)
    c = result.config
    assert (c.name, c.beit3_layers, c.beit3_image_size, c.beit3_ffn, c.gsd_m) == (
        "official-custom",
        3,
        96,
        192,
        0.3,
    )
    seg = load_segmenter(result.out, device="cpu")
    assert (
        np.abs(seg.predict(image, TEXTS[0]) - Segmenter(variant).predict(image, TEXTS[0])).max()
        <= 1e-5
    )


# ------------------------------------------------------------------ key map
def test_key_map_accounts_for_every_release_key(source):
    state = release_state(source)
    keys = map_keys(state)
    assert not keys.unexpected and not keys.collisions
    assert len(keys.mapped) + sum(len(v) for v in keys.ignored.values()) == len(state)
    ours = {k for k in source.state_dict() if k != "tokenizer_model"}
    assert set(keys.mapped.values()) == ours
    assert all(to_release_key(v) == k for k, v in keys.mapped.items())
    assert keys.mapped[
        "visual_model.sam_mask_decoder.vlfusion_module.multihead_attn.in_proj_weight"
    ] == ("text_fusion.attn.in_proj_weight")
    assert keys.mapped["text_hidden_fcs.0.2.weight"] == "sparse_proj.2.weight"
    assert {p for p, _ in IGNORED} >= {"meo_linear.", "visual_model.memory_attention."}
    assert len(KEY_MAP) == 12


def _nothing_written(folder: Path, out: Path) -> None:
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*"))  # no temporary file left either


def test_renamed_key_is_reported_and_nothing_written(tmp_path, source, spm_bytes):
    state = release_state(source)
    state["mask_linearX.weight"] = state.pop("mask_linear.weight")
    folder = write_release(source, tmp_path / "rel", spm_bytes, state=state)
    out = tmp_path / "out.safetensors"
    with pytest.raises(CheckpointError) as err:
        import_official(folder, out)
    message = str(err.value)
    assert "nothing was written" in message
    assert "unexpected in the file (1):\n    mask_linearX.weight" in message
    assert "missing from the file (1):\n    mpg.mask_linear.weight" in message
    _nothing_written(folder, out)


def test_wrong_shape_is_reported_and_nothing_written(tmp_path, source, spm_bytes):
    state = release_state(source)
    state["text_feat_linear.weight"] = torch.zeros(32, 60)
    folder = write_release(source, tmp_path / "rel", spm_bytes, state=state)
    out = tmp_path / "out.safetensors"
    with pytest.raises(
        CheckpointError,
        match=r"wrong shape.*\n    text_feat_linear.weight: \[32, 60\] vs \[32, 64\]",
    ):
        import_official(folder, out)
    _nothing_written(folder, out)


def test_missing_shard_is_reported_and_nothing_written(tmp_path, source, spm_bytes):
    folder = write_release(source, tmp_path / "rel", spm_bytes, layout="bin-sharded")
    (folder / "pytorch_model-00002-of-00002.bin").unlink()
    out = tmp_path / "out.safetensors"
    with pytest.raises(
        CheckpointError, match=r"shard pytorch_model-00002-of-00002.bin .* is missing"
    ):
        import_official(folder, out)
    _nothing_written(folder, out)


def test_shard_name_outside_the_folder_is_refused(tmp_path, source, spm_bytes):
    folder = write_release(source, tmp_path / "rel", spm_bytes, layout="bin-sharded")
    index = folder / "pytorch_model.bin.index.json"
    index.write_text(index.read_text().replace("pytorch_model-00002", "../pytorch_model-00002"))
    with pytest.raises(CheckpointError, match="not a plain file name"):
        import_official(folder, tmp_path / "out.safetensors")


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_bin_whose_pickle_runs_code_is_refused(tmp_path, source, spm_bytes):
    folder = write_release(source, tmp_path / "rel", spm_bytes, layout="bin-sharded")
    marker = tmp_path / "marker.txt"
    shard = folder / "pytorch_model-00001-of-00002.bin"
    state = torch.load(shard, weights_only=True)
    state["mask_linear.weight"] = _Exploit(marker)
    torch.save(state, shard)  # the payload rides in a normal-looking zip checkpoint
    out = tmp_path / "out.safetensors"
    with pytest.raises(CheckpointError, match="refused: its pickle asks to run code"):
        import_official(folder, out)
    assert not marker.exists()
    _nothing_written(folder, out)
    # the payload is live: the shard's pickle really calls a function (read, never executed)
    with zipfile.ZipFile(shard) as zf:
        data = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    ops = [op.name for op, _, _ in pickletools.genops(data)]
    assert "STACK_GLOBAL" in ops or "GLOBAL" in ops  # a callable is imported ...
    assert b"write_text" in data and "REDUCE" in ops  # ... and called: Path.write_text(marker)
    assert not marker.exists()


def test_existing_output_is_not_overwritten(tmp_path, releases):
    out = tmp_path / "x.safetensors"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        import_official(releases["safetensors"], out)
    assert out.read_bytes() == b"keep me"


def test_memory_check_fails_early(tmp_path, releases, monkeypatch):
    monkeypatch.setenv("RS2SAM_MEMORY_LIMIT_GB", "0.001")
    out = tmp_path / "out.safetensors"
    with pytest.raises(ResourceError, match="GiB"):
        import_official(releases["safetensors"], out)
    assert not out.exists()


def test_too_little_memory_fails_early_with_a_clear_message(imported, monkeypatch):
    monkeypatch.setenv("RS2SAM_MEMORY_LIMIT_GB", "1")
    with pytest.raises(ResourceError, match=r"building official-large needs about 4\.\d GiB"):
        load_segmenter(config="official-large", device="cpu")
    monkeypatch.setenv("RS2SAM_MEMORY_LIMIT_GB", "0.001")
    with pytest.raises(ResourceError, match="safetensors"):
        load_segmenter(imported["safetensors"].out, device="cpu")


def test_not_a_release(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(CheckpointError, match="not an RS2-SAM 2"):
        import_official(tmp_path, tmp_path / "o.safetensors")


# ------------------------------------------------------------------ CLI
def test_cli_import_official(tmp_path, releases, capsys):
    out = tmp_path / "cli.safetensors"
    assert main(["import-official", str(releases["safetensors"]), "--out", str(out)]) == 0
    assert "imported" in capsys.readouterr().out and out.is_file()
    assert main(["import-official", str(releases["safetensors"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "already exists" in err and "\n" not in err
    nope, out = str(tmp_path / "nope"), str(tmp_path / "n.safetensors")
    assert main(["import-official", nope, "--out", out]) == 2
    assert "is not a folder" in capsys.readouterr().err


# ------------------------------------------------------------------ tokeniser
def test_tokenizer_ids_are_sentencepiece_ids_with_the_published_specials(spm_bytes):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    tok = XLMRTokenizer(spm_bytes, max_tokens=64)
    text = "the airplane next to the ☃ terminal"
    expected = [0, *[i + 1 if i else 3 for i in sp.encode(text)], 2]
    assert tok.encode(text) == expected
    assert 3 in expected  # the snowman is <unk>
    assert tok.unknown_words(text) == ["☃"]
    ids, pad = tok(["a ship", text])
    assert ids.shape == (2, len(expected))
    assert ids[0, -1] == 3 and bool(pad[0, -1])  # right-padded with <unk> (= pad)
    assert torch.equal(pad, ids == 3)
    assert (tok.mask_id, tok.seg_id) == (sp.get_piece_size() + 1, sp.get_piece_size() + 2)


def test_long_text_is_truncated_with_a_warning(spm_bytes, caplog):
    tok = XLMRTokenizer(spm_bytes, max_tokens=8)
    with caplog.at_level(logging.WARNING):
        ids = tok.encode("the white storage tank on the left of the large ship in the harbor")
    assert len(ids) == 8 and ids[0] == 0 and ids[-1] == 2
    assert "truncated" in caplog.text


def test_model_truncates_to_its_text_positions(source):
    ids, _ = source.tokenize([" ".join(["the ship"] * 40)])
    assert ids.shape[1] == source.config.text_positions - 2


# ------------------------------------------------------------------ the release's size
def test_official_large_parameter_counts():
    """Published layout at full size, on the meta device: BEiT-3-L (torchscale), Hiera-L,
    the adapters. model_spec §8 quotes 746 M for BEiT-3-L: that is the BEiT-3 README's count of
    the pretraining checkpoint; the module tree the published code builds has 672.70 M."""
    model = build_official_model("official-large", device="meta")
    counts = model.parameter_counts()
    assert counts["union"] == 672_702_464
    assert 30.2e6 < counts["adapters"] < 30.4e6
    assert 216e6 < counts["sam2"] < 218e6  # + 7.5 M of video memory, ignored = 224.4 M
    assert 6e6 < counts["heads"] < 8e6
    assert (
        counts["total"] == counts["union"] + counts["sam2"] + counts["adapters"] + counts["heads"]
    )

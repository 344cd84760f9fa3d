"""The architecture of a published release, derived from its tensor shapes and ``config.json``.

BEiT-3 layers, width, FFN, vocabulary, image and text-position sizes; Hiera widths and stages,
which select the registered SAM 2 description (window sizes and global-attention blocks are not
in the weights); adapter widths; prompt width. Used by :mod:`.importer`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import fields, replace

from ...errors import CheckpointError
from ..configs import SAM2_ARCHS, list_models
from ..configs import get_model_config as _get
from .config import OfficialConfig
from .release import Release
from .tokenizer import XLMRTokenizer

__all__ = ["BEIT", "NECK", "TRUNK", "derive_config"]

BEIT = "mm_extractor.beit3."
TRUNK = "visual_model.image_encoder.trunk."
NECK = "visual_model.image_encoder.neck."
BEIT3_HEAD_WIDTH = 64  # every published BEiT-3 (base 768/12, large 1024/16) has 64-wide heads
SAM2_PREFERENCE = ("sam2:configs/sam2/sam2_hiera_l.yaml",)  # the paper's SAM 2.0 first
_SCALES = {"base": (12, 768), "large": (24, 1024)}
_NAME_FIELDS = ("name", "description", "tokenizer_bytes", "gsd_m")


def _need(shapes: Mapping[str, tuple[int, ...]], key: str) -> tuple[int, ...]:
    if key not in shapes:
        raise CheckpointError(
            f"the release has no tensor {key!r}; it is not an RS2-SAM 2 release in the published "
            "layout (or the download is incomplete)"
        )
    return shapes[key]


def _indices(shapes: Mapping[str, tuple[int, ...]], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = sorted({int(m.group(1)) for k in shapes if (m := pattern.match(k))})
    if not found or found != list(range(len(found))):
        raise CheckpointError(
            f"the release's {prefix}N tensors are not numbered 0..N-1 (found {found[:8]}); the "
            "folder is damaged"
        )
    return found


def _sam2_match(shapes: Mapping[str, tuple[int, ...]]) -> tuple[str, int]:
    """The registered SAM 2 description whose Hiera/FPN sizes the weights have; its image size."""
    from ..sam2_build import sam2_description

    embed = _need(shapes, TRUNK + "patch_embed.proj.weight")[0]
    blocks = _indices(shapes, TRUNK + "blocks.")
    changes = [b for b in blocks if TRUNK + f"blocks.{b}.proj.weight" in shapes]
    edges = [0, *changes, len(blocks)]
    stages = [b - a for a, b in itertools.pairwise(edges)]
    bkg = list(_need(shapes, TRUNK + "pos_embed")[2:])
    window = _need(shapes, TRUNK + "pos_embed_window")[2]
    d_model = _need(shapes, NECK + "convs.0.conv.weight")[0]
    found = {"embed_dim": embed, "stages": stages, "bkg": bkg, "window": window, "d": d_model}
    order = [*SAM2_PREFERENCE, *[k for k in SAM2_ARCHS if k not in SAM2_PREFERENCE]]
    for key in order:
        node = sam2_description(key)
        trunk = node.get("image_encoder", {}).get("trunk", {})
        neck = node.get("image_encoder", {}).get("neck", {})
        have = {
            "embed_dim": trunk.get("embed_dim"),
            "stages": list(trunk.get("stages", [])),
            "bkg": list(trunk.get("window_pos_embed_bkg_spatial_size", [])),
            "window": (trunk.get("window_spec") or [None])[0],
            "d": neck.get("d_model"),
        }
        if have == found:
            return key, int(node.get("image_size", 1024))
    raise CheckpointError(
        f"the release's SAM 2 image encoder (Hiera width {embed}, stages {stages}, position "
        f"grid {bkg}, window {window}, FPN width {d_model}) matches no SAM 2 description this "
        f"backend knows ({', '.join(order)}); window sizes are not in the weights, so it cannot "
        "be built"
    )


def derive_config(
    release: Release,
    shapes: Mapping[str, tuple[int, ...]],
    *,
    gsd_m: float | None,
    tokenizer: XLMRTokenizer,
) -> OfficialConfig:
    """The architecture of a release, from its tensor shapes and ``config.json``.

    Raises:
        CheckpointError: A size is missing or contradicts ``config.json`` or the tokeniser.
    """
    vocab, width = _need(shapes, BEIT + "text_embed.weight")
    layers = len(_indices(shapes, BEIT + "encoder.layers."))
    ffn = _need(shapes, BEIT + "encoder.layers.0.ffn.A.fc1.weight")[0]
    patch = _need(shapes, BEIT + "vision_embed.proj.weight")[-1]
    grid2 = _need(shapes, BEIT + "encoder.embed_positions.A.weight")[0] - 3  # cls + fairseq 2
    grid = int(round(grid2**0.5))
    if grid < 1 or grid * grid != grid2:
        raise CheckpointError(
            f"BEiT-3's vision position table has {grid2 + 3} rows: not a square grid"
        )
    text_positions = _need(shapes, BEIT + "encoder.embed_positions.B.weight")[0]
    heads = max(1, width // BEIT3_HEAD_WIDTH)

    cfg = release.config
    problems = []
    if cfg.get("hidden_size", width) != width:
        problems.append(f"hidden_size {cfg.get('hidden_size')} but BEiT-3 width {width}")
    scale = cfg.get("mm_extractor_scale")
    if scale in _SCALES and _SCALES[scale] != (layers, width):
        problems.append(
            f"mm_extractor_scale {scale!r} (= {_SCALES[scale][0]} layers × "
            f"{_SCALES[scale][1]}) but the weights have {layers} layers × {width}"
        )
    prompt = _need(shapes, "text_hidden_fcs.0.2.weight")[0]
    if cfg.get("out_dim", prompt) != prompt:
        problems.append(f"out_dim {cfg.get('out_dim')} but the prompt projection gives {prompt}")
    if tokenizer.table_rows > vocab:
        problems.append(
            f"the tokeniser needs {tokenizer.table_rows} text-embedding rows but BEiT-3 has {vocab}"
        )
    if problems:
        raise CheckpointError(
            f"{release.root}: config.json, tokeniser and weights disagree: " + "; ".join(problems)
        )

    sam2_yaml, image_size = _sam2_match(shapes)
    for b in _indices(shapes, TRUNK + "blocks."):
        dim = _need(shapes, TRUNK + f"blocks.{b}.norm2.weight")[0]
        hidden = _need(shapes, TRUNK + f"blocks.{b}.MLP_Adapter.D_fc1.weight")[0]
        if hidden != int(dim * 0.25):
            raise CheckpointError(
                f"Hiera block {b}: adapter width {hidden}, but the published adapters are "
                f"int(width/4) = {int(dim * 0.25)} wide"
            )

    derived = OfficialConfig(
        name="official-custom",
        sam2_yaml=sam2_yaml,
        image_size=image_size,
        beit3_image_size=grid * patch,
        beit3_patch_size=patch,
        beit3_layers=layers,
        beit3_width=width,
        beit3_heads=heads,
        beit3_ffn=ffn,
        vocab_size=vocab,
        text_positions=text_positions,
        tokenizer_bytes=len(release.tokenizer_model),
        gsd_m=gsd_m,
        description="Published RS2-SAM 2 weights (imported), sizes derived from the release",
    )
    return replace(derived, name=_registered_name(derived), description=_description(derived))


def _registered_name(config: OfficialConfig) -> str:
    """The registry name whose sizes ``config`` has (``official-large`` for the release)."""
    mine = {f.name: getattr(config, f.name) for f in fields(config) if f.name not in _NAME_FIELDS}
    for name in list_models():
        other = _get(name)
        if isinstance(other, OfficialConfig) and mine == {
            f.name: getattr(other, f.name) for f in fields(other) if f.name not in _NAME_FIELDS
        }:
            return name
    return "official-custom"


def _description(config: OfficialConfig) -> str:
    return (
        f"Published RS2-SAM 2 weights: BEiT-3 {config.beit3_layers}×{config.beit3_width} "
        f"@{config.beit3_image_size} + SAM 2 ({config.sam2_yaml.rsplit('/', 1)[-1]}) "
        f"@{config.image_size}"
    )

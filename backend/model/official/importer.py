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
5. check the memory, read the tensors (optionally as float16) and save with the sentencepiece
   model as the ``tokenizer_model`` buffer.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError, InputError, OutputError
from ..configs import SAM2_ARCHS, list_models
from ..configs import get_model_config as _get
from ..state_io import LoadReport
from .config import OfficialConfig
from .keymap import map_keys
from .release import TOKENIZER_FILE, Release, describe_bytes, open_release
from .tokenizer import PAD_ID, XLMRTokenizer

logger = logging.getLogger(__name__)

__all__ = ["ImportResult", "derive_config", "import_official"]

BEIT = "mm_extractor.beit3."
TRUNK = "visual_model.image_encoder.trunk."
NECK = "visual_model.image_encoder.neck."
BEIT3_HEAD_WIDTH = 64  # every published BEiT-3 (base 768/12, large 1024/16) has 64-wide heads
SAM2_PREFERENCE = ("sam2:configs/sam2/sam2_hiera_l.yaml",)  # the paper's SAM 2.0 first
_SCALES = {"base": (12, 768), "large": (24, 1024)}
_NAME_FIELDS = ("name", "description", "tokenizer_bytes", "gsd_m")


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


def import_official(
    folder: str | Path,
    out: str | Path,
    *,
    fp16: bool = False,
    gsd_m: float | None = None,
    overwrite: bool = False,
) -> ImportResult:
    """Convert a published release folder into one ``.safetensors`` checkpoint.

    Args:
        folder: The release folder (``rrsisd/`` or ``refseg/`` of ``ReeF2025/RS2-SAM2``).
        out: The checkpoint to write; its folder must exist.
        fp16: Store float tensors as float16 (half the file; they load back as float32).
        gsd_m: Working resolution stored in the config (m/px); None keeps the default of
            ``official-large`` (0.5 m, see docs/model.md).
        overwrite: Replace an existing ``out``.

    Returns:
        :class:`ImportResult`.

    Raises:
        CheckpointError: The folder is not a usable release (message lists every problem).
        OutputError: ``out`` exists (without ``overwrite``) or its folder is missing.
        ResourceError: Not enough memory for the conversion.
    """
    from ...resources import check_fits, load_bytes
    from ..checkpoint import save_checkpoint
    from .model import build_official_model

    target = Path(out).expanduser()
    if target.is_dir():
        raise OutputError(f"--out {target} is a folder; give a file name like rs2sam2.safetensors")
    if target.exists() and not overwrite:
        raise OutputError(f"{target} already exists; choose another name or pass --overwrite")
    if not target.parent.is_dir():
        raise OutputError(f"folder {target.parent} does not exist; create it first")
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
    # the tensors as stored plus the serialised file: about twice the output size
    check_fits(load_bytes(model) // (2 if fp16 else 1), "cpu", what=f"importing {release.root}")

    state: dict[str, torch.Tensor] = {"tokenizer_model": model.tokenizer_model}
    for key, tensor in release.tensors(list(keys.mapped)):
        state[keys.mapped[key]] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    model.load_state_dict(state, strict=True, assign=True)
    del state
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"tensors left unfilled after reading the release: {left[:5]}")
    ignored = {why: len(k) for why, k in keys.ignored.items()}
    metadata = _metadata(release, config, keys.mapped, ignored, tokenizer, fp16)
    sha = save_checkpoint(model, target, metadata=metadata)
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

"""A checkpoint is untrusted input: loading one never imports, calls or unpickles what it names.

Every malicious file here tries to create a marker file; each test asserts the clear error and
that the marker does not exist. Size bombs must be refused before anything is built or read.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from backend.errors import CheckpointError, ConfigError, ResourceError
from backend.model import architectures, checkpoint
from backend.model.checkpoint import load_checkpoint, read_header, save_checkpoint
from backend.model.configs import SAM2_ARCHS, get_model_config
from backend.model.init_weights import load_open_clip_weights, load_sam2_weights
from backend.model.rs2sam import build_model
from backend.model.sam2_build import _build_sam2, build_from_node, load_sam2_yaml
from backend.model.segmenter import DEFAULT_WEIGHTS, load_segmenter


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(build_model("test-tiny"), path, metadata={"data": "none"})
    return path


def _rewrite(src: Path, dst: Path, **header_changes: Any) -> Path:
    """Copy ``src`` with header keys replaced; ``model_config`` may be a dict of field changes."""
    with safe_open(str(src), framework="pt") as f:
        header = dict(f.metadata())
        state = {k: f.get_tensor(k) for k in f.keys()}
    for key, value in header_changes.items():
        if key == "model_config" and isinstance(value, dict):
            config = json.loads(header["model_config"])
            config.update(value)
            header[key] = json.dumps(config)
        elif value is None:
            header.pop(key, None)
        else:
            header[key] = value
    save_file(state, str(dst), metadata=header)
    return dst


def _evil_yaml(folder: Path, marker: Path) -> Path:
    path = folder / "evil.yaml"
    path.write_text(
        "model:\n" "  _target_: os.system\n" f"  _args_: ['touch {marker}']\n" "  image_size: 128\n"
    )
    return path


class _Bomb:
    """Unpickling this object runs ``touch marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "a checkpoint executed code"


@pytest.mark.parametrize(
    "sam2_yaml",
    ["ABSOLUTE", "../../../../../../EVIL", "sam2:../../EVIL", "backend/../EVIL", "nano.yaml/.."],
)
def test_sam2_yaml_path_in_header_is_refused(
    tiny_file: Path, tmp_path: Path, marker: Path, sam2_yaml: str
) -> None:
    evil = _evil_yaml(tmp_path, marker)
    value = str(evil) if sam2_yaml == "ABSOLUTE" else sam2_yaml.replace("EVIL", str(evil)[1:])
    bad = _rewrite(tiny_file, tmp_path / "bad.safetensors", model_config={"sam2_yaml": value})
    with pytest.raises(CheckpointError, match="unknown SAM 2 architecture"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError):
        load_segmenter(bad, device="cpu")


@pytest.mark.parametrize(
    "clip_model", ["hf-hub:evil/model", "local-dir:/tmp/evil", "../evil", "a/b", ""]
)
def test_clip_model_reference_in_header_is_refused(
    tiny_file: Path, tmp_path: Path, clip_model: str
) -> None:
    bad = _rewrite(tiny_file, tmp_path / "bad.safetensors", model_config={"clip_model": clip_model})
    with pytest.raises(CheckpointError, match="clip_model"):
        load_checkpoint(bad)


def test_hugging_face_text_tower_is_refused() -> None:
    from backend.model.union import build_clip

    config = get_model_config("test-tiny", clip_model="ViT-B-16-SigLIP")
    with pytest.raises(ConfigError, match="Hugging Face"):
        build_clip(config)


@pytest.mark.parametrize("arch", ["os:system", "backend.model.rs2sam:build_model", "", "LGCE"])
def test_architecture_names_only_select_from_the_registry(
    tiny_file: Path, tmp_path: Path, arch: str
) -> None:
    bad = _rewrite(tiny_file, tmp_path / "bad.safetensors", architecture=arch)
    with pytest.raises(CheckpointError, match="unknown model architecture"):
        load_checkpoint(bad)


def test_a_pickle_named_safetensors_is_never_unpickled(tmp_path: Path, marker: Path) -> None:
    for name, write in [
        ("raw.safetensors", lambda p: p.write_bytes(pickle.dumps(_Bomb(marker), protocol=4))),
        ("zip.safetensors", lambda p: torch.save({"x": _Bomb(marker)}, p)),
        ("zip.pt", lambda p: torch.save({"model": _Bomb(marker)}, p)),
    ]:
        path = tmp_path / name
        write(path)
        with pytest.raises(CheckpointError, match="pickle"):
            load_checkpoint(path)
        with pytest.raises(CheckpointError):
            load_segmenter(path, device="cpu")


def test_initialisation_files_are_read_weights_only(tmp_path: Path, marker: Path) -> None:
    model = build_model("test-tiny")
    evil = tmp_path / "sam2_hiera_evil.pt"
    torch.save({"model": {"no_mem_embed": _Bomb(marker)}}, evil)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_sam2_weights(model, evil)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_open_clip_weights(model, evil)
    legacy = tmp_path / "legacy_pickle.bin"
    legacy.write_bytes(pickle.dumps({"state_dict": _Bomb(marker)}, protocol=2))
    with pytest.raises(CheckpointError):
        load_open_clip_weights(model, legacy)


def test_a_zip_with_a_code_pickle_inside_is_refused(tmp_path: Path, marker: Path) -> None:
    path = tmp_path / "crafted.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Bomb(marker), protocol=2))
        zf.writestr("archive/version", "3\n")
    with pytest.raises(CheckpointError):
        load_sam2_weights(build_model("test-tiny"), path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", 10**6),
        ("image_size", 2**40),
        ("clip_image_size", 10**5),
        ("context_length", 10**8),
        ("fusion_dim", 10**9),
        ("joint_layers", 10**6),
        ("early_fusion_blocks", 10**6),
        ("mpg_heads", 10**4),
        ("adapter_ratio", 1e6),
        ("gsd_m", 1e12),
    ],
)
def test_size_bombs_are_refused_before_anything_is_built(
    tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, value: Any
) -> None:
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was built for an out-of-bounds config")

    monkeypatch.setattr(architectures.Architecture, "build", never)
    bad = _rewrite(tiny_file, tmp_path / "bomb.safetensors", model_config={field: value})
    with pytest.raises(CheckpointError, match=f"{field}=.*outside the supported range"):
        load_checkpoint(bad)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_size", "128"),
        ("image_size", True),
        ("image_size", 128.5),
        ("gsd_m", float("nan")),
        ("freeze_trunk", "yes"),
        ("name", 7),
        ("sam2_yaml", ["nano.yaml"]),
    ],
)
def test_wrongly_typed_config_values_are_refused(
    tiny_file: Path, tmp_path: Path, field: str, value: Any
) -> None:
    bad = _rewrite(tiny_file, tmp_path / "typed.safetensors", model_config={field: value})
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)


def test_memory_is_checked_before_tensors_are_read(
    tiny_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tensor data was read before the memory check")

    monkeypatch.setenv("RS2SAM_MEMORY_LIMIT_GB", "0.0001")
    monkeypatch.setattr(checkpoint, "_read_tensors", never)
    with pytest.raises(ResourceError, match=r"needs about .* GiB .* only .* GiB is available"):
        load_checkpoint(tiny_file)


def test_a_header_that_does_not_fit_its_tensors_fails_before_reading_them(
    tiny_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("tensor data was read for a mismatched header")

    bad = _rewrite(tiny_file, tmp_path / "mismatch.safetensors", model_config={"fusion_dim": 64})
    monkeypatch.setattr(checkpoint, "_read_tensors", never)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_checkpoint(bad)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"format_version": "99"}, "format version"),
        ({"model_config": "[" * 100_000 + "]" * 100_000}, "model_config"),
        ({"model_config": "{not json"}, "model_config"),
        ({"metadata": "[1, 2]"}, "JSON object"),
        ({"model_config": {"evil": "x"}}, "unknown fields"),
        ({"format": "pickle"}, "not an RS2-SAM 2 checkpoint"),
    ],
)
def test_bad_headers_give_one_clear_error(
    tiny_file: Path, tmp_path: Path, header: dict[str, Any], message: str
) -> None:
    bad = _rewrite(tiny_file, tmp_path / "header.safetensors", **header)
    with pytest.raises(CheckpointError, match=message):
        read_header(bad)


def test_description_builder_only_constructs_allowed_sam2_classes(marker: Path) -> None:
    for node in [
        {"_target_": "os.system", "command": f"touch {marker}"},
        {"_target_": "sam2.modeling.sam2_base.SAM2Base", "image_encoder": {"_target_": "eval"}},
        {"_target_": "builtins.exec", "source": f"open('{marker}', 'w')"},
    ]:
        with pytest.raises(ConfigError, match="not an allowed SAM 2 class"):
            build_from_node(node)
    with pytest.raises(ConfigError, match="reserved key"):
        build_from_node({"_target_": "sam2.modeling.backbones.hieradet.Hiera", "_args_": [1]})


@pytest.mark.parametrize("name", ["test-tiny", "nano"])
def test_safe_builder_matches_hydra_bit_for_bit(name: str) -> None:
    from hydra.utils import instantiate  # test only: hydra on our own bundled description
    from omegaconf import OmegaConf

    config = get_model_config(name)
    torch.manual_seed(0)
    ours = _build_sam2(config).state_dict()
    torch.manual_seed(0)
    theirs = instantiate(OmegaConf.create(load_sam2_yaml(config)), _recursive_=True).state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("arch", sorted(k for k in SAM2_ARCHS if k.startswith("sam2:")))
def test_every_registered_sam2_architecture_builds(arch: str) -> None:
    from backend.model.rs2sam import _params_on_meta

    config = get_model_config("test-tiny", sam2_yaml=arch, image_size=256)
    with _params_on_meta():
        sam = _build_sam2(config)
    assert sam.image_size == 256 and sam.use_high_res_features_in_sam


def test_shipped_weights_without_architecture_key_still_load() -> None:
    head = read_header(DEFAULT_WEIGHTS)
    assert head.architecture == "rs2sam2" and head.config.name == "nano"
    assert head.nbytes > 1_000_000 and "no_mem_embed" in head.shapes

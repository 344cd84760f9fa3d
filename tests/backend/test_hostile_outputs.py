"""Hostile suite, second round (issue 25): no writing command may replace one of its inputs.

Every writing command (``segment``, ``batch``, ``import-official``, ``training export`` /
``pack`` / ``build-refer``) is called with ``--out`` equal to each of its inputs, reached
directly, through a link, a hard link and ``..``. Each case asserts exit 2, one line on stderr
naming the value and the fix, no traceback, and that nothing was created or changed (every
file is hashed before and after).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from batch_data import write_raster

from backend.cli import main as backend_main
from backend.errors import OutputError
from backend.outputs import (
    check_not_an_input,
    check_output_file,
    check_output_folder,
    check_suffix,
)
from training.cli import main as training_main


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file (and link) below ``folder``: size and sha256 (a link: its target)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = (0, os.readlink(path))
        elif path.is_file():
            found[key] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            found[key] = (-1, "dir")
    return found


def refused(
    capsys: pytest.CaptureFixture[str],
    folder: Path,
    run: Callable[[list[str]], int],
    args: list[str],
    *needles: str,
) -> str:
    """Run a CLI; assert exit 2, one 'error:' line holding ``needles``, nothing changed."""
    before = snapshot(folder)
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err + out
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert snapshot(folder) == before, "files were created or changed"
    return lines[0]


@pytest.fixture
def release(tmp_path: Path) -> Path:
    """A folder shaped like a published release (the refusal comes before any reading)."""
    rel = tmp_path / "rel"
    rel.mkdir()
    (rel / "model.safetensors").write_bytes(b"the published weights" * 100)
    (rel / "config.json").write_text('{"model_type": "evf"}')
    (rel / "tokenizer.model").write_bytes(b"spm" * 10)
    return rel


# ------------------------------------------------------------------ the rule itself
def test_rule_refuses_paths_links_hard_links_dotdot_and_folder_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    source = data / "in.tif"
    source.write_bytes(b"x")
    (tmp_path / "link.tif").symlink_to(source)
    os.link(source, tmp_path / "hard.tif")
    (data / "sub").mkdir()
    (data / "sub" / "deep.bin").write_bytes(b"y")
    os.link(data / "sub" / "deep.bin", tmp_path / "hard_deep.bin")
    cases = {
        source: "the input",
        tmp_path / "link.tif": "the input",
        tmp_path / "hard.tif": "same file by another name",
        data / "sub" / ".." / "in.tif": "the input",
        tmp_path / "hard_deep.bin": "of the input folder",
    }
    for out, words in cases.items():
        inputs = [data] if out.name == "hard_deep.bin" else [source]
        with pytest.raises(OutputError, match=words) as info:
            check_not_an_input(out, inputs, option="--out")
        assert "destroy the input" in str(info.value) and str(out) in str(info.value)
    with pytest.raises(OutputError, match="a file of the input folder"):
        check_not_an_input(data / "sub" / "deep.bin", [data])
    check_not_an_input(data / "new.safetensors", [data])  # a new file beside the inputs is fine
    check_not_an_input(tmp_path / "other.tif", [source, "", "/vsimem/x.tif"])


def test_folder_outputs_may_not_hold_or_be_an_input(tmp_path: Path) -> None:
    data = tmp_path / "set"
    (data / "images").mkdir(parents=True)
    for out in (data, tmp_path, data / "images"):
        with pytest.raises(OutputError, match="destroy the input"):
            check_output_folder(out, inputs=[data], overwrite=True)
    assert check_output_folder(tmp_path / "packed", inputs=[data]) == tmp_path / "packed"
    assert check_output_folder(data / "new", inputs=[data]) == data / "new"


def test_suffix_and_existing_files(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"'.*x\.json' must end in \.safetensors"):
        check_suffix(tmp_path / "x.json", (".safetensors",))
    check_suffix(tmp_path / "X.SafeTensors", (".safetensors",))
    (tmp_path / "old.safetensors").write_bytes(b"keep")
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        check_output_file(tmp_path / "old.safetensors", suffixes=(".safetensors",))
    with pytest.raises(OutputError, match="does not exist"):
        check_output_file(tmp_path / "no" / "x.safetensors", suffixes=(".safetensors",))


# ------------------------------------------------------------------ import-official
@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer.model"])
def test_import_official_never_writes_over_a_release_file(
    capsys: pytest.CaptureFixture[str], release: Path, name: str
) -> None:
    outside = release.parent / f"hard_{name}"
    os.link(release / name, outside)
    (release.parent / f"link_{name}").symlink_to(release / name)
    for out in (
        release / name,
        release.parent / f"link_{name}",
        release / ".." / "rel" / name,
        outside,
    ):
        args = ["import-official", release, "--out", out, "--overwrite"]
        refused(capsys, release.parent, backend_main, args, "destroy the input", str(out))


def test_import_official_output_must_be_safetensors(
    capsys: pytest.CaptureFixture[str], release: Path
) -> None:
    out = release.parent / "weights.json"
    args = ["import-official", release, "--out", out, "--overwrite"]
    refused(capsys, release.parent, backend_main, args, "must end in .safetensors", str(out))


# ------------------------------------------------------------------ segment
def test_segment_output_is_never_the_raster_or_the_aoi(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raster = tmp_path / "r.tif"
    write_raster(raster, 0)
    aoi = tmp_path / "aoi.gpkg"
    aoi.write_bytes(b"an AOI layer")
    (tmp_path / "ln.gpkg").symlink_to(aoi)
    base = ["segment", raster, "--text", "red", "--standin", "red", "--overwrite", "--quiet"]
    refused(capsys, tmp_path, backend_main, [*base, "--out", raster], "r.tif")  # extension
    for out in (aoi, tmp_path / "ln.gpkg"):
        args = [*base, "--aoi", aoi, "--out", out]
        refused(capsys, tmp_path, backend_main, args, "destroy the input", str(aoi))
    ck = tmp_path / "model.safetensors"
    ck.write_bytes(b"weights")
    args = ["segment", raster, "--text", "red", "--checkpoint", ck, "--out", ck, "--overwrite"]
    refused(capsys, tmp_path, backend_main, args, "destroy the input", str(ck))


# ------------------------------------------------------------------ batch
def test_batch_never_writes_over_its_rasters_or_lists(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raster = tmp_path / "jobs" / "red.tif"
    raster.parent.mkdir()
    write_raster(raster, 0)
    gpkg = tmp_path / "jobs" / "red.gpkg"  # a GeoPackage raster named like the query's layer
    import rasterio

    with rasterio.open(raster) as src, rasterio.open(gpkg, "w", driver="GPKG", **{
        k: src.profile[k] for k in ("width", "height", "count", "dtype", "crs", "transform")
    }) as dst:  # fmt: skip
        dst.write(src.read())
    listing = tmp_path / "list.txt"
    listing.write_text(f"{raster}\n")
    base = ["batch", "--text", "red", "--standin", "red", "--quiet", "--overwrite"]
    refused(capsys, tmp_path, backend_main, [*base, gpkg, "--out", gpkg.parent], "red.gpkg",
            "destroy the input")  # fmt: skip
    refused(capsys, tmp_path, backend_main, [*base, listing, "--out", listing], "is a file")
    refused(capsys, tmp_path, backend_main, [*base, raster, "--out", raster], "is a file")


# ------------------------------------------------------------------ training
def test_training_export_never_writes_over_its_checkpoint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ck = tmp_path / "last.pt"
    ck.write_bytes(b"a training checkpoint")
    (tmp_path / "link.safetensors").symlink_to(ck)
    for out in (ck, tmp_path / "link.safetensors"):
        args = ["export", "--checkpoint", ck, "--out", out, "--overwrite"]
        refused(capsys, tmp_path, training_main, args, "destroy the input")
    args = ["export", "--checkpoint", ck, "--out", tmp_path / "x.pt"]
    refused(capsys, tmp_path, training_main, args, "must end in .safetensors")


@pytest.mark.parametrize("command", ["pack", "build-refer"])
def test_training_folder_writers_never_replace_their_source(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    root = tmp_path / "data" / "set"
    (root / "images").mkdir(parents=True)
    (root / "output_phrase_train.txt").write_text("a line\n")
    (root / "images" / "0.png").write_bytes(b"png")
    extra = ["--source", "nwpu"] if command == "build-refer" else []
    for out in (root, root.parent, root / "images", root / "x" / ".." / "images"):
        args = [command, "--root", root, "--out", out, "--overwrite", *extra]
        refused(capsys, tmp_path, training_main, args, "destroy the input")


def test_training_run_folder_is_never_a_data_set(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "output_phrase_train.txt").write_text("a line\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"model: test-tiny\ndata:\n  sets:\n    - format: refsegrs\n"
                      f"      root: {root}\nthreads: 1\nout_dir: {tmp_path / 'run'}\n")  # fmt: skip
    for out in (root, root / "images"):
        args = ["train", "--config", config, f"out_dir={out}", "progress=false"]
        refused(capsys, tmp_path, training_main, args, "out_dir", "destroy the input")

"""Packed shards (training.data.packed): the same samples as the folder layout, up to the
documented resize and lossy image coding."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.errors import InputError, OutputError
from training.cli import main
from training.config import load_train_config
from training.data.datasets import EvalSet, Source, TrainSet, open_dataset
from training.data.packed import PackedDataset, pack_refsegrs, shrink_pair
from training.data.refsegrs import RefSegRSDataset
from training.data.transforms import resize_pair

MAX_SIDE, EVAL = 40, 32


def _smooth_image(seed: int, h: int, w: int) -> np.ndarray:
    """Smooth gradients and blocks (lossy codecs keep them close; noise they would not)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 200 + 20, yy / h * 180 + 30, (xx + yy) / (h + w) * 150 + 60], -1)
    for _ in range(3):
        y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
        img[y : y + 12, x : x + 12] = rng.integers(0, 255, 3)
    return img.astype(np.uint8)


def _write_set(root: Path) -> None:
    """A RefSegRS-layout set like the builder's: hard-linked images, several lines per id."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    layout = {  # split -> [(id, image key, text, type)]
        "train": [("1", "a", "the planes", "class"), ("1", "a", "all planes", "class"),
                  ("2", "a", "the plane on the left", "position"),
                  ("3", "b", "the only ship", "unique"), ("4", "b", "the tiny dot", "class")],
        "val": [("5", "c", "the bridge", "unique"), ("6", "c", "the second tank", "ordinal")],
    }
    sizes = {"a": (64, 48), "b": (50, 70), "c": (60, 60)}
    for split, rows in layout.items():
        for sid, key, _, _ in rows:
            dst = root / "images" / f"{sid}.tif"
            if dst.exists():
                continue
            src = root / "images" / f"src_{key}.tif"
            h, w = sizes[key]
            if not src.exists():
                Image.fromarray(_smooth_image(ord(key), h, w)).save(src, compression="tiff_deflate")
            os.link(src, dst)
            mask = np.zeros((h, w), np.uint8)
            if sid == "4":
                mask[34, 36] = 255  # one pixel: nearest resizing to 40 px would drop it
            else:
                k = int(sid)
                mask[3 * k : 3 * k + 15, 2 * k : 2 * k + 20] = 255
            Image.fromarray(mask).save(root / "masks" / f"{sid}.tif")
        (root / f"output_phrase_{split}.txt").write_text(
            "".join(f"{sid} {text}\n" for sid, _, text, _ in rows))
        (root / f"refer_{split}.jsonl").write_text("".join(
            json.dumps({"id": int(sid), "text": text, "type": etype, "target_class": key}) + "\n"
            for sid, key, text, etype in rows))
    (root / "build_info.json").write_text('{"seed": 0}')


@pytest.fixture
def packed(tmp_path: Path) -> tuple[Path, Path, dict]:
    src, out = tmp_path / "set", tmp_path / "packed" / "set"
    _write_set(src)
    info = pack_refsegrs(src, out, train_max_side=MAX_SIDE, eval_size=EVAL, quality=90)
    return src, out, info


def test_round_trip_gives_the_same_samples(packed):
    src, out, info = packed
    for split in ("train", "val"):
        folder, shards = RefSegRSDataset(src, split), PackedDataset(out, split)
        assert len(shards) == len(folder)
        for k in range(len(folder)):
            a, b = folder[k], shards[k]
            assert (b.text, b.sample_id, b.expr_type, b.meta) == (a.text, a.sample_id,
                                                                  a.expr_type, a.meta)
            if split == "train":
                image, mask, _ = shrink_pair(a.image, a.mask, MAX_SIDE)
                assert max(b.mask.shape) == MAX_SIDE  # every source image is larger
            else:
                image, mask = resize_pair(a.image, a.mask, EVAL)
            np.testing.assert_array_equal(b.mask, mask)
            assert b.image.shape == image.shape and b.image.dtype == np.uint8
            err = np.abs(b.image.astype(int) - image.astype(int))
            assert err.mean() < 6 and np.percentile(err, 99) < 48, (split, k, err.mean())
    # images shared by several ids are stored once per split; one mask per id
    assert info["splits"]["train"]["images"] == 2 and info["splits"]["train"]["masks"] == 4
    assert info["splits"]["val"]["images"] == 1 and info["splits"]["val"]["masks"] == 2
    assert info["splits"]["train"]["masks_rescued_by_box_filter"] == 1
    assert json.loads((out / "pack_info.json").read_text())["build_info"] == {"seed": 0}


def test_single_pixel_target_survives_the_shrink():
    mask = np.zeros((50, 70), bool)
    mask[34, 36] = True
    image = np.zeros((50, 70, 3), np.uint8)
    _, plain, _ = shrink_pair(image, np.zeros_like(mask), MAX_SIDE)
    assert not plain.any()
    _, kept, rescued = shrink_pair(image, mask, MAX_SIDE)
    assert rescued and 1 <= kept.sum() <= 4
    ys, xs = np.nonzero(kept)
    assert abs(ys.mean() - 34 * 40 / 70) < 1.5 and abs(xs.mean() - 36 * 40 / 70) < 1.5


def test_eval_view_ground_truth_equals_the_folder_layout(packed):
    src, out, _ = packed
    a = EvalSet(Source("f", open_dataset("refsegrs", src, "val")), EVAL)
    b = EvalSet(Source("p", open_dataset("packed", out, "val")), EVAL)
    for k in range(len(a)):
        np.testing.assert_array_equal(a[k]["mask"], b[k]["mask"])
        assert a[k]["text"] == b[k]["text"] and a[k]["type"] == b[k]["type"]


def test_training_mix_and_config_accept_packed_sets(packed):
    _, out, _ = packed
    cfg = load_train_config(None, [f"data.sets=[{{format: packed, root: {out}}}]",
                                   "model=test-tiny", "augment.hflip=1.0"])
    assert cfg.data.sets[0].tag == "set"
    ts = TrainSet([Source("set", open_dataset("packed", out, "train"))], 24, cfg.augment, 0)
    item = ts[2]
    assert item["image"].shape == (24, 24, 3) and item["text"] == "the plane on the right"


def test_errors(packed, tmp_path, capsys):
    src, out, _ = packed
    with pytest.raises(OutputError, match="exists"):
        pack_refsegrs(src, out)
    with pytest.raises(InputError, match="not a packed set"):
        PackedDataset(src, "train")
    with pytest.raises(InputError, match="does not exist"):
        PackedDataset(tmp_path / "nope", "train")
    assert main(["eval", "--checkpoint", str(out / "pack_info.json"), "--dataset", "packed",
                 "--root", str(out), "--split", "val", "--mode", "native"]) == 2
    assert "network size only" in capsys.readouterr().err

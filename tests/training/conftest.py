"""Tiny on-disk fixtures in the published data-set layouts (model_spec.md §6), written in-test."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)


def write_refsegrs(root: Path, size: int = 64, seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """RefSegRS layout: images/<id>.tif, masks/<id>.tif (0/255), output_phrase_<split>.txt."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    lines = {
        "train": [("17", "road along the building"), ("18", "vehicle on the road"),
                  ("17", "the road")],
        "val": [("21", "low vegetation"), ("22", "building")],
        "test": [("30", "tree"), ("31", "car in the middle")],
    }
    for split, rows in lines.items():
        for sid, _ in rows:
            if (root / "images" / f"{sid}.tif").exists():
                continue
            Image.fromarray(_image(rng, size, size)).save(root / "images" / f"{sid}.tif")
            mask = np.zeros((size, size), np.uint8)
            k = int(sid) % 7
            mask[k : k + 20, 5 : 30 + k] = 255
            mask[40, 40] = 40  # below the > 50 threshold: background
            Image.fromarray(mask).save(root / "masks" / f"{sid}.tif")
        # the RS2 loader keeps the trailing newline; some files end without one
        text = "".join(f"{sid} {expr}\n" for sid, expr in rows)
        (root / f"output_phrase_{split}.txt").write_text(text)
    return lines


def write_rrsisd(root: Path, size: int = 48) -> list[dict]:
    """RRSIS-D layout: rrsisd/refs(unc).p, rrsisd/instances.json (RLE list), JPEGImages/%05d.jpg."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(1)
    (root / "rrsisd").mkdir(parents=True)
    img_dir = root / "images" / "rrsisd" / "JPEGImages"
    img_dir.mkdir(parents=True)
    (root / "images" / "rrsisd" / "ann_split").mkdir()
    refs, images, anns = [], [], []
    splits = {1: "train", 2: "train", 3: "val", 4: "test", 5: "testA"}
    for i, split in splits.items():
        fname = f"{i:05d}.jpg"
        Image.fromarray(_image(rng, size, size)).save(img_dir / fname, quality=95)
        m = np.zeros((size, size), np.uint8)
        m[i : i + 10, 2 * i : 2 * i + 12] = 1
        rles = [mask_utils.encode(np.asfortranarray(m))]
        if i == 2:  # two overlapping instances: the overlap (sum 2) is NOT foreground
            m2 = np.zeros_like(m)
            m2[i + 5 : i + 15, 2 * i : 2 * i + 12] = 1
            rles.append(mask_utils.encode(np.asfortranarray(m2)))
        for r in rles:
            r["counts"] = r["counts"].decode()
        images.append({"id": i, "file_name": fname, "height": size, "width": size})
        anns.append({"id": i, "image_id": i, "categories_id": i % 3, "bbox": [0, 0, 5, 5],
                     "area": 1.0, "segmentation": rles})
        sent = f"the vehicle number {i}"
        refs.append({"ref_id": i, "ann_id": i, "image_id": i, "category_id": i % 3,
                     "split": split, "file_name": fname, "sent_ids": [i],
                     "sentences": [{"raw": sent, "sent": sent, "tokens": sent.split(),
                                    "sent_id": i}]})
    cats = [{"id": 0, "name": "vehicle"}, {"id": 1, "name": "ship"}, {"id": 2, "name": "bridge"}]
    (root / "rrsisd" / "instances.json").write_text(
        json.dumps({"images": images, "categories": cats, "annotations": anns})
    )
    with open(root / "rrsisd" / "refs(unc).p", "wb") as fh:
        pickle.dump(refs, fh, protocol=2)
    return refs


@pytest.fixture()
def refsegrs_root(tmp_path: Path) -> Path:
    root = tmp_path / "RefSegRS"
    write_refsegrs(root)
    return root


@pytest.fixture()
def rrsisd_root(tmp_path: Path) -> Path:
    root = tmp_path / "RRSIS-D"
    write_rrsisd(root)
    return root


def _square(x: float, y: float, r: float) -> list[float]:
    return [x - r, y - r, x + r, y - r, x + r, y + r, x - r, y + r]


# (file, split, [(category_id, x, y, half-size)]) on 200 x 160 images
NWPU_FIXTURE = [
    ("001.jpg", "train", [(2, 20, 40, 8), (2, 90, 100, 10), (2, 170, 60, 6), (9, 100, 20, 12),
                          (10, 30, 140, 4), (10, 180, 140, 4)]),
    ("002.jpg", "train", [(3, 40, 40, 20), (3, 150, 110, 8), (5, 150, 30, 15)]),
    ("003.jpg", "val", [(1, 50, 80, 15), (1, 150, 80, 10)]),
    ("004.jpg", "val", [(8, 100, 80, 30), (10, 20, 20, 5), (10, 180, 150, 5), (10, 100, 150, 5)]),
]


def write_nwpu(root: Path) -> Path:
    """NWPU VHR-10 layout: images/NNN.jpg + annotations/instances_{train,val}2017.json."""
    rng = np.random.default_rng(3)
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    cats = [{"id": i, "name": n} for i, n in enumerate(
        ["airplane", "ship", "storage_tank", "baseball_diamond", "tennis_court",
         "basketball_court", "ground_track_field", "harbor", "bridge", "vehicle"], 1)]
    coco = {s: {"images": [], "annotations": [], "categories": cats} for s in ("train", "val")}
    ann_id = 1
    for img_id, (fname, split, objs) in enumerate(NWPU_FIXTURE, 1):
        img = rng.integers(0, 255, size=(160, 200, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "images" / fname, quality=90)
        coco[split]["images"].append({"id": img_id, "file_name": fname, "width": 200,
                                      "height": 160})
        for cat, x, y, r in objs:
            coco[split]["annotations"].append({
                "id": ann_id, "image_id": img_id, "category_id": cat, "iscrowd": 0,
                "segmentation": [_square(x, y, r)], "area": 4.0 * r * r,
                "bbox": [x - r, y - r, 2 * r, 2 * r]})
            ann_id += 1
    for split in ("train", "val"):
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(coco[split]))
    return root


DUBAI_COLOURS = {"building": (60, 16, 152), "land": (132, 41, 246), "road": (110, 193, 228),
                 "vegetation": (254, 221, 58), "water": (226, 169, 41)}


def write_dubai(root: Path) -> Path:
    """Dubai layout: tile_N/images/image_part_001.jpg + colour masks/*.png (tile 2: mode P)."""
    rng = np.random.default_rng(4)
    for tile in range(1, 9):
        (root / f"tile_{tile}" / "images").mkdir(parents=True)
        (root / f"tile_{tile}" / "masks").mkdir()
        h, w = 80, 96
        mask = np.zeros((h, w, 3), np.uint8)
        mask[:] = DUBAI_COLOURS["land"]
        mask[:, 44:52] = DUBAI_COLOURS["road"]
        mask[5 + tile : 20 + tile, 5:20] = DUBAI_COLOURS["building"]
        mask[50:70, 8:18] = DUBAI_COLOURS["building"]
        mask[10:30, 60 : 62 + 3 * tile] = DUBAI_COLOURS["water"]
        mask[55:75, 70:90] = DUBAI_COLOURS["vegetation"]
        mask[0:3, 0:3] = (0, 0, 0)  # black = unlabeled
        mask[77:80, 93:96] = (155, 155, 155)
        img = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / f"tile_{tile}" / "images" / "image_part_001.jpg")
        pil = Image.fromarray(mask)
        if tile == 2:  # a palette PNG with the exact colours, as some real masks are
            colours, index = np.unique(mask.reshape(-1, 3), axis=0, return_inverse=True)
            pil = Image.fromarray(index.reshape(h, w).astype(np.uint8), mode="P")
            pil.putpalette(colours.astype(np.uint8).ravel().tolist())
        pil.save(root / f"tile_{tile}" / "masks" / "image_part_001.png")
    return root


@pytest.fixture()
def nwpu_root(tmp_path: Path) -> Path:
    return write_nwpu(tmp_path / "nwpu_vhr10")


@pytest.fixture()
def dubai_root(tmp_path: Path) -> Path:
    return write_dubai(tmp_path / "dubai")


REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "training" / "configs" / "smoke.yaml"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 2-epoch smoke training run (test-tiny, synthetic data), shared by several tests."""
    from training.cli import main

    out = tmp_path_factory.mktemp("smoke") / "run"
    assert main(["train", "--config", str(SMOKE), f"out_dir={out}", "progress=false"]) == 0
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))

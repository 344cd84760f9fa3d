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

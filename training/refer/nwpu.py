"""NWPU VHR-10 (COCO polygons) -> scenes and candidate queries.

Images are downscaled so that the longest side is at most ``max_side`` px (aspect kept); the
polygons are scaled the same way and rasterised with ``rasterio.features.rasterize`` (pixel
centres). Splits are the upstream ``instances_train2017.json`` / ``instances_val2017.json``.

Images about ``369``-``453`` are Vaihingen tiles rendered in false colour (the data set's README
and our own look at them); the grammar uses no colour words at all, and the sidecar marks those
images with ``"false_colour": true``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from backend.errors import InputError
from training.refer.grammar import NWPU_VOCAB, Query
from training.refer.scene import Instance, Scene

logger = logging.getLogger(__name__)

SPLIT_FILES = {"train": "instances_train2017.json", "val": "instances_val2017.json"}
FALSE_COLOUR_RANGE = range(369, 454)  # file numbers of the Vaihingen false-colour tiles
CLASS_KEYS = {1: "airplane", 2: "ship", 3: "storage_tank", 4: "baseball_diamond",
              5: "tennis_court", 6: "basketball_court", 7: "ground_track_field", 8: "harbor",
              9: "bridge", 10: "vehicle"}


@dataclass(frozen=True)
class NwpuImage:
    """One image entry of an upstream split file, with its annotations."""

    image_id: int
    file_name: str
    width: int
    height: int
    annotations: tuple[dict[str, Any], ...]


def read_split(root: Path, split: str) -> list[NwpuImage]:
    """Read an upstream COCO split file.

    Args:
        root: The ``nwpu_vhr10`` folder (``images/``, ``annotations/``).
        split: ``"train"`` or ``"val"``.

    Returns:
        Images sorted by file name.

    Raises:
        InputError: Missing folder or file.
    """
    path = root / "annotations" / SPLIT_FILES[split]
    if not path.is_file():
        raise InputError(
            f"NWPU annotations {str(path)!r} not found; --root must be the nwpu_vhr10 folder "
            "holding images/ and annotations/instances_{train,val}2017.json"
        )
    coco = json.loads(path.read_text(encoding="utf-8"))
    anns: dict[int, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        anns.setdefault(ann["image_id"], []).append(ann)
    images = [
        NwpuImage(img["id"], img["file_name"], img["width"], img["height"],
                  tuple(sorted(anns.get(img["id"], []), key=lambda a: a["id"])))
        for img in coco["images"]
    ]
    return sorted(images, key=lambda i: i.file_name)


def working_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Downscaled (w, h) with the longest side <= ``max_side`` (never upscaled)."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _polygon(ann: dict[str, Any], sx: float, sy: float) -> Any:
    from shapely.geometry import MultiPolygon, Polygon
    from shapely.validation import make_valid

    parts = []
    for coords in ann["segmentation"]:
        if len(coords) < 6:
            continue
        pts = [(coords[i] * sx, coords[i + 1] * sy) for i in range(0, len(coords) - 1, 2)]
        geom = make_valid(Polygon(pts))
        polys = [geom] if geom.geom_type == "Polygon" else [
            g for g in getattr(geom, "geoms", []) if g.geom_type == "Polygon"]
        parts.extend(p for p in polys if not p.is_empty)
    return MultiPolygon(parts) if len(parts) > 1 else (parts[0] if parts else None)


def load_scene(root: Path, img: NwpuImage, max_side: int) -> tuple[np.ndarray, Scene]:
    """Read, downscale and rasterise one image.

    Args:
        root: The ``nwpu_vhr10`` folder.
        img: The split entry.
        max_side: Longest side of the working image in px.

    Returns:
        ``(image (h, w, 3) uint8, scene)``.
    """
    from rasterio.features import rasterize

    path = root / "images" / img.file_name
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = working_size(im.width, im.height, max_side)
        if (w, h) != im.size:
            im = im.resize((w, h), Image.Resampling.LANCZOS)
        image = np.asarray(im, dtype=np.uint8).copy()
    sx, sy = w / img.width, h / img.height
    instances = []
    for ann in img.annotations:
        geom = _polygon(ann, sx, sy)
        if geom is None:
            logger.debug("%s: annotation %s has no usable polygon", img.file_name, ann["id"])
            continue
        mask = rasterize([(geom, 1)], out_shape=(h, w), fill=0, dtype="uint8").astype(bool)
        instances.append(Instance.from_mask(ann["id"], CLASS_KEYS[ann["category_id"]], mask, geom))
    number = int(Path(img.file_name).stem) if Path(img.file_name).stem.isdigit() else -1
    meta = {"source_image": img.file_name, "source_size": [img.width, img.height],
            "scale": round(sx, 6), "crop": None, "false_colour": number in FALSE_COLOUR_RANGE}
    return image, Scene(w, h, instances, meta)


def candidate_queries(scene: Scene) -> Iterator[Query]:
    """Every query worth trying on an NWPU scene, in a fixed order."""
    counts = {c: len(scene.of_class(c)) for c in scene.classes()}
    unique = [c for c, n in counts.items() if n == 1]
    for cls, n in counts.items():
        if cls not in NWPU_VOCAB:
            continue
        if n == 1:
            yield Query("class", cls, "sg")
            continue
        yield Query("class", cls, "pl")
        for side in ("left", "right", "top", "bottom"):
            yield Query("extreme", cls, "sg", side)
        for corner in ("upper_left", "upper_right", "lower_left", "lower_right", "center"):
            yield Query("corner", cls, "sg", corner)
            yield Query("corner", cls, "pl", corner)
        if n >= 3:
            for side in ("left", "right", "top", "bottom"):
                for k in range(2, min(n, 5) + 1):
                    yield Query("ordinal", cls, "sg", side, k)
        yield Query("size", cls, "sg", "largest")
        yield Query("size", cls, "sg", "smallest")
        for anchor in unique:
            yield Query("nearest", cls, "sg", anchor=anchor)
            yield Query("farthest", cls, "sg", anchor=anchor)
            for rel in ("left_of", "right_of", "above", "below"):
                yield Query("direction", cls, "sg", rel, anchor=anchor)
                yield Query("direction", cls, "pl", rel, anchor=anchor)

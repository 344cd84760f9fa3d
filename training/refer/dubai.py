"""Dubai aerial land-cover masks (colour-coded PNGs) -> crops, component scenes, candidate queries.

Mask colours are the real RGB values in the PNGs (the data set's README; ``classes.json`` lists the
annotation tool's display colours instead). Unlabeled grey and pure black are ignored (neither
any class nor a target). Palette PNGs are read with ``.convert("RGB")``.

Each image part is cut into ``crop_px`` crops at native resolution with a stride (overlapping in
train, non-overlapping in val by default). A class's connected regions (8-connected, found with
``rasterio.features.shapes`` and burned back with ``rasterize``) are the scene's instances;
regions smaller than ``minor_frac`` of the crop are "minor" specks. Tiles 7 and 8 are val only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from backend.errors import InputError
from training.refer.grammar import DUBAI_VOCAB, Query
from training.refer.scene import Instance, Scene

logger = logging.getLogger(__name__)

CLASS_COLOURS: dict[str, tuple[int, int, int]] = {
    "building": (60, 16, 152),
    "land": (132, 41, 246),
    "road": (110, 193, 228),
    "vegetation": (254, 221, 58),
    "water": (226, 169, 41),
}
IGNORED_COLOURS = {"unlabeled": (155, 155, 155), "black": (0, 0, 0)}
CLASS_ORDER = ("building", "land", "road", "vegetation", "water")
VAL_TILES = (7, 8)
TRAIN_TILES = (1, 2, 3, 4, 5, 6)
MASS_CLASSES = ("land", "road", "vegetation", "water")
REGIONS = ("left", "right", "top", "bottom", "upper_left", "upper_right", "lower_left",
           "lower_right")


@dataclass(frozen=True)
class DubaiPart:
    """One image/mask pair of a tile."""

    tile: int
    image_path: Path
    mask_path: Path

    @property
    def name(self) -> str:
        """``tile_N/image_part_00K``."""
        return f"tile_{self.tile}/{self.image_path.stem}"


def list_parts(root: Path, tiles: tuple[int, ...]) -> list[DubaiPart]:
    """Image/mask pairs of the given tiles, sorted.

    Raises:
        InputError: The root does not look like the Dubai data set.
    """
    if not (root / "tile_1").is_dir():
        raise InputError(
            f"{str(root)!r} is not the Dubai data set folder (expected tile_1 ... tile_8 with "
            "images/ and masks/)"
        )
    parts = []
    for tile in tiles:
        for img in sorted((root / f"tile_{tile}" / "images").glob("*.jpg")):
            mask = root / f"tile_{tile}" / "masks" / f"{img.stem}.png"
            if not mask.is_file():
                raise InputError(f"mask {str(mask)!r} for {str(img)!r} is missing")
            parts.append(DubaiPart(tile, img, mask))
    return parts


def class_map(mask_rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 colour mask -> ``(H, W)`` int8 index into CLASS_ORDER, -1 = ignored."""
    out = np.full(mask_rgb.shape[:2], -1, np.int8)
    for k, name in enumerate(CLASS_ORDER):
        out[np.all(mask_rgb == np.array(CLASS_COLOURS[name], np.uint8), axis=-1)] = k
    return out


def crop_origins(size: int, crop: int, stride: int) -> list[int]:
    """Start offsets covering ``[0, size)`` with ``crop``-long windows (last one flush)."""
    if size <= crop:
        return [0]
    starts = list(range(0, size - crop + 1, stride))
    if starts[-1] != size - crop:
        starts.append(size - crop)
    return starts


def components(cmap: np.ndarray, minor_frac: float) -> list[Instance]:
    """Connected regions of every class as instances (ids ``class_index * 100000 + n``)."""
    from rasterio.features import rasterize, shapes
    from shapely.geometry import shape

    h, w = cmap.shape
    minor_px = minor_frac * h * w
    out: list[Instance] = []
    for k, name in enumerate(CLASS_ORDER):
        binary = (cmap == k).astype(np.uint8)
        if not binary.any():
            continue
        geoms = [shape(g) for g, v in shapes(binary, mask=binary.astype(bool), connectivity=8)
                 if v == 1]
        labels = rasterize(((g, i + 1) for i, g in enumerate(geoms)), out_shape=(h, w), fill=0,
                           dtype="int32")
        for i, geom in enumerate(geoms):
            mask = labels == i + 1
            if not mask.any():
                continue
            area = int(mask.sum())
            out.append(Instance.from_mask(k * 100000 + i + 1, name, mask, geom,
                                          minor=area < minor_px))
    return out


def iter_crops(
    part: DubaiPart, crop_px: int, stride_px: int, min_labelled: float, minor_frac: float
) -> Iterator[tuple[np.ndarray, Scene]]:
    """Yield ``(image crop (h, w, 3) uint8, scene)`` for one image part."""
    with Image.open(part.image_path) as im:
        image = np.asarray(im.convert("RGB"), dtype=np.uint8)
    with Image.open(part.mask_path) as im:
        mask_rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    if image.shape[:2] != mask_rgb.shape[:2]:
        raise InputError(f"{part.name}: image {image.shape[:2]} and mask {mask_rgb.shape[:2]} "
                         "differ in size")
    cmap_full = class_map(mask_rgb)
    h, w = cmap_full.shape
    for y in crop_origins(h, crop_px, stride_px):
        for x in crop_origins(w, crop_px, stride_px):
            cmap = cmap_full[y : y + crop_px, x : x + crop_px]
            if (cmap >= 0).mean() < min_labelled:
                continue
            ch, cw = cmap.shape
            meta = {"source_image": f"{part.name}.jpg", "source_size": [w, h], "scale": 1.0,
                    "crop": [x, y, x + cw, y + ch], "false_colour": False, "tile": part.tile}
            yield (np.ascontiguousarray(image[y : y + ch, x : x + cw]),
                   Scene(cw, ch, components(cmap, minor_frac), meta))


def candidate_queries(scene: Scene, min_class_frac: float = 0.01) -> Iterator[Query]:
    """Queries worth trying on a Dubai crop, in a fixed order."""
    total = scene.width * scene.height
    for cls in CLASS_ORDER:
        insts = scene.of_class(cls)
        if sum(i.area_px for i in insts) < min_class_frac * total:
            continue
        n_major = len(scene.of_class(cls, include_minor=False))
        if n_major == 0:
            continue
        if cls in MASS_CLASSES:
            yield Query("class", cls, "mass")
            for region in REGIONS:
                yield Query("region", cls, "mass", region)
        else:
            yield Query("class", cls, "sg" if n_major == 1 else "pl")
            for region in REGIONS:
                yield Query("region", cls, "sg", region)
                yield Query("region", cls, "pl", region)
        if n_major >= 2 and DUBAI_VOCAB[cls]["sg"]:
            yield Query("size", cls, "sg", "largest")

"""RefSegRS layout reader (model_spec.md §6.1); every set this project generates uses it too.

Layout under ``root``::

    images/<id>.tif                  RGB 8-bit TIFF
    masks/<id>.tif                   8-bit TIFF, 0 background / 255 foreground (fg = value > 50)
    output_phrase_<split>.txt        one sample per line: "<id> <expression>"
    refer_<split>.jsonl              optional sidecar (our builder): one JSON object per line of the
                                     phrase file, same order, with "id", "type", "source_image", ...
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from backend.errors import InputError
from training.data.sample import Sample

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MASK_THRESHOLD = 50  # RS2-SAM 2 reads the mask with cv2 and uses > 50 as foreground
_LINE = re.compile(r"(\d+)\s+(.*)")


@dataclass(frozen=True)
class Record:
    """What a data set knows about one sample without decoding any image."""

    sample_id: str
    text: str
    expr_type: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def normalise_text(text: str) -> str:
    """Strip and collapse whitespace (the RS2 loader keeps a trailing newline; we don't)."""
    return " ".join(text.split())


def read_rgb(path: Path) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (PIL ``.convert("RGB")``, like the loaders)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def read_mask_tif(path: Path, threshold: int = MASK_THRESHOLD) -> np.ndarray:
    """Read a 0/255 mask as ``(H, W)`` bool (``value > threshold``); RGB masks use channel 0."""
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr > threshold


class RefSegRSDataset:
    """RefSegRS-layout referring data set.

    Args:
        root: Folder holding ``images/``, ``masks/`` and ``output_phrase_<split>.txt``.
        split: ``"train"``, ``"val"`` or ``"test"``.

    Raises:
        InputError: The root, the phrase file or the split name is wrong.
    """

    name = "refsegrs"

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise InputError(f"unknown RefSegRS split {split!r}; use one of {', '.join(SPLITS)}")
        self.split = split
        phrase_file = self.root / f"output_phrase_{split}.txt"
        if not self.root.is_dir():
            raise InputError(
                f"data root {str(self.root)!r} does not exist; pass the folder that holds "
                "images/, masks/ and output_phrase_*.txt (e.g. build one with "
                "`python -m training build-refer`)"
            )
        if not phrase_file.is_file():
            raise InputError(
                f"{str(phrase_file)!r} not found: {str(self.root)!r} is not a RefSegRS-layout "
                f"folder with a {split!r} split"
            )
        self.records = self._read_records(phrase_file)
        logger.info("RefSegRS %s/%s: %d samples", self.root, split, len(self.records))

    def _read_records(self, phrase_file: Path) -> list[Record]:
        lines = [ln for ln in phrase_file.read_text(encoding="utf-8").splitlines() if ln.strip()]
        sidecar = self._read_sidecar(len(lines))
        records = []
        for lineno, line in enumerate(lines):
            match = _LINE.match(line.strip())
            if match is None:
                raise InputError(
                    f"{phrase_file}:{lineno + 1}: expected '<id> <expression>', got {line!r}"
                )
            sample_id, text = match.group(1), normalise_text(match.group(2))
            meta: dict[str, Any] = {}
            expr_type = None
            if sidecar is not None:
                meta = dict(sidecar[lineno])
                if str(meta.get("id")) != sample_id:
                    raise InputError(
                        f"refer_{self.split}.jsonl line {lineno + 1} has id {meta.get('id')!r} "
                        f"but the phrase file has {sample_id!r}; rebuild the set"
                    )
                expr_type = meta.get("type")
            records.append(Record(sample_id, text, expr_type, meta))
        return records

    def _read_sidecar(self, n_lines: int) -> list[dict[str, Any]] | None:
        path = self.root / f"refer_{self.split}.jsonl"
        if not path.is_file():
            return None
        rows = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln]
        if len(rows) != n_lines:
            logger.warning("%s has %d rows for %d phrases; ignoring it", path, len(rows), n_lines)
            return None
        return rows

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        rec = self.records[index]
        image = read_rgb(self.root / "images" / f"{rec.sample_id}.tif")
        mask = read_mask_tif(self.root / "masks" / f"{rec.sample_id}.tif")
        if mask.shape != image.shape[:2]:
            raise InputError(
                f"sample {rec.sample_id}: mask {mask.shape} and image {image.shape[:2]} differ "
                "in size"
            )
        return Sample(image, mask, rec.text, rec.sample_id, rec.expr_type, dict(rec.meta))

"""RRSIS-D reader in its published REFER layout (model_spec.md §6.2).

Layout under ``root``::

    rrsisd/refs(unc).p                    pickle: list of ref dicts
    rrsisd/instances.json                 COCO-style; ``segmentation`` = [compressed RLE]
    images/rrsisd/JPEGImages/NNNNN.jpg

The pickle is trusted only as a data format: :func:`load_refs` unpickles with a restricted
``Unpickler`` that resolves no class outside a short list of builtins, so a crafted file cannot run
code. Labels follow the reference loader: decode the RLE list, sum over instances, and keep the
pixels whose sum is exactly 1.
"""

from __future__ import annotations

import io
import json
import logging
import pickle  # nosec B403 - only through _BuiltinsOnlyUnpickler below
from pathlib import Path
from typing import Any

import numpy as np

from backend.errors import InputError
from training.data.refsegrs import Record, normalise_text, read_rgb
from training.data.sample import Sample

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
_SAFE_BUILTINS = frozenset(
    {"dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int", "float",
     "bool", "complex", "NoneType"}
)


class _BuiltinsOnlyUnpickler(pickle.Unpickler):  # nosec B301 - find_class is restricted
    """Unpickler that refuses every global except plain builtin container/scalar types."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return super().find_class("builtins", name)
        raise pickle.UnpicklingError(
            f"refs pickle references {module}.{name}; only plain lists/dicts/strings/numbers are "
            "allowed in an RRSIS-D refs file"
        )


def load_refs(path: str | Path) -> list[dict[str, Any]]:
    """Load a REFER ``refs(<splitBy>).p`` file safely.

    Args:
        path: The pickle file.

    Returns:
        The list of ref dicts.

    Raises:
        InputError: The file is missing, not a pickle of plain data, or not a list of dicts.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"RRSIS-D refs file {str(path)!r} not found")
    data = path.read_bytes()
    try:
        refs = _BuiltinsOnlyUnpickler(io.BytesIO(data), encoding="utf-8").load()
    except (pickle.UnpicklingError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {str(path)!r} as an RRSIS-D refs pickle: {exc}") from exc
    if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
        raise InputError(f"{str(path)!r} must hold a list of ref dicts, got {type(refs).__name__}")
    return refs


def split_matches(ref_split: str, split: str) -> bool:
    """REFER's rule: ``"test"`` matches any split name containing "test"; others match exactly."""
    if split == "test":
        return "test" in ref_split
    return ref_split == split


def decode_label(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode an RRSIS-D ``segmentation`` into the reference loader's label.

    Args:
        segmentation: A list of COCO RLE dicts (``counts`` as str or bytes), one RLE dict, or
            COCO polygons (list of coordinate lists).
        height: Image height in px.
        width: Image width in px.

    Returns:
        ``(H, W)`` bool: True where the decoded instance masks sum to exactly 1.
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, dict):
        segmentation = [segmentation]
    if segmentation and isinstance(segmentation[0], list):  # polygons
        rles = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rles = []
        for rle in segmentation:
            counts = rle["counts"]
            if isinstance(counts, list):  # uncompressed RLE
                rles.extend(mask_utils.frPyObjects([rle], height, width))
            else:
                rles.append({"size": list(rle["size"]),
                             "counts": counts.encode() if isinstance(counts, str) else counts})
    decoded = mask_utils.decode(rles)  # (H, W, N) uint8
    if decoded.ndim == 2:
        decoded = decoded[..., None]
    return decoded.sum(axis=2) == 1


class RRSISDDataset:
    """RRSIS-D (REFER layout): one sample per (ref, sentence).

    Args:
        root: The ``RRSIS-D`` folder (holding ``rrsisd/`` and ``images/``).
        split: ``"train"``, ``"val"`` or ``"test"`` (REFER semantics, see :func:`split_matches`).
        split_by: The refs file variant, ``refs(<split_by>).p``; RS2-SAM 2 uses ``"unc"``.

    Raises:
        InputError: Missing files or an unknown split.
    """

    name = "rrsisd"

    def __init__(self, root: str | Path, split: str, split_by: str = "unc") -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise InputError(f"unknown RRSIS-D split {split!r}; use one of {', '.join(SPLITS)}")
        if not self.root.is_dir():
            raise InputError(
                f"data root {str(self.root)!r} does not exist; pass the RRSIS-D folder that holds "
                "rrsisd/refs(unc).p, rrsisd/instances.json and images/rrsisd/JPEGImages/"
            )
        self.split = split
        refs = load_refs(self.root / "rrsisd" / f"refs({split_by}).p")
        inst_path = self.root / "rrsisd" / "instances.json"
        if not inst_path.is_file():
            raise InputError(f"RRSIS-D annotations {str(inst_path)!r} not found")
        instances = json.loads(inst_path.read_text(encoding="utf-8"))
        self.images = {img["id"]: img for img in instances.get("images", [])}
        self.anns = {ann["id"]: ann for ann in instances.get("annotations", [])}
        self.categories = {c["id"]: c["name"] for c in instances.get("categories", [])}
        self.image_dir = self.root / "images" / "rrsisd" / "JPEGImages"
        self.records: list[Record] = []
        for ref in refs:
            if not split_matches(str(ref.get("split", "")), split):
                continue
            for sent in ref.get("sentences", []):
                text = normalise_text(str(sent.get("sent") or sent.get("raw") or ""))
                meta = {
                    "ref_id": ref.get("ref_id"),
                    "ann_id": ref.get("ann_id"),
                    "image_id": ref.get("image_id"),
                    "file_name": ref.get("file_name"),
                    "category": self.categories.get(ref.get("category_id")),
                    "sent_id": sent.get("sent_id"),
                }
                self.records.append(Record(str(sent.get("sent_id", ref.get("ref_id"))), text,
                                           None, meta))
        logger.info("RRSIS-D %s/%s: %d samples", self.root, split, len(self.records))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:
        rec = self.records[index]
        ann = self.anns.get(rec.meta["ann_id"])
        if ann is None:
            raise InputError(f"ref {rec.meta['ref_id']}: annotation {rec.meta['ann_id']} missing")
        img_info = self.images.get(rec.meta["image_id"], {})
        file_name = img_info.get("file_name") or rec.meta["file_name"]
        image = read_rgb(self.image_dir / file_name)
        height, width = image.shape[:2]
        mask = decode_label(ann["segmentation"], height, width)
        return Sample(image, mask, rec.text, rec.sample_id, None, dict(rec.meta))

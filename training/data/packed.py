"""Packed shards of a RefSegRS-layout set: small enough to travel to a lent GPU machine.

``make data`` writes ``data_gen/packed/<set>/`` next to each generated set
(``python -m training pack --root data_gen/nwpu --out data_gen/packed/nwpu``). Per split:

    <split>.bin        the encoded images (WebP) and masks (1-bit PNG), concatenated
    <split>.json.gz    {"format", "version", "split", "resize", "images": [[offset, length]],
                        "masks": [[offset, length]], "records": [{"id", "text", "type", "meta",
                        "image", "mask"}]}  (image / mask: indices into the two lists)
    pack_info.json     sizes, counts, options and the source folder's build_info.json

Documented resize (the only difference to the folder layout, besides lossy image coding):

* ``train``: images with the longest side above ``train_max_side`` (default 384 px, 1.5x the
  `nano` input, so scale-crops keep detail) are shrunk with PIL bilinear (antialiased), aspect
  kept; masks with PIL nearest at pixel centres. A target that nearest-resizing would empty is
  kept by box-filtering instead (any covered output pixel is foreground); ``pack_info.json``
  counts them.
* ``val`` / ``test``: image and mask are stored exactly as the evaluation view uses them,
  ``training.data.transforms.resize_pair`` to ``eval_size`` x ``eval_size`` (256: the network
  input), so paper-mode metrics see the same ground truth as with the folder layout. There is
  no native-resolution mask: ``--mode native`` is refused on a packed set.

Images that several lines share (hard links in the folder layout) are stored once per split.
The reader maps ``<split>.bin`` read-only (``np.memmap``), so DataLoader workers share it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from backend.errors import InputError
from backend.outputs import check_output_folder
from training.data.refsegrs import SPLITS, Record, RefSegRSDataset
from training.data.sample import Sample
from training.data.transforms import resize_pair

logger = logging.getLogger(__name__)

FORMAT = "rs2sam-packed-refer"
VERSION = 1


def _decode_image(blob: bytes) -> np.ndarray:
    """WebP/PNG/JPEG bytes -> ``(H, W, 3)`` uint8 RGB (PIL; OpenCV if PIL lacks the codec)."""
    try:
        with Image.open(io.BytesIO(blob)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError) as err:  # a Pillow built without WebP
        try:
            import cv2  # type: ignore[import-not-found]
        except ImportError:
            raise InputError(f"cannot decode a packed image ({err}); install Pillow with WebP "
                             "support") from None
        arr = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        if arr is None:
            raise InputError(f"cannot decode a packed image: {err}") from None
        return np.ascontiguousarray(arr[..., ::-1])


def _decode_mask(blob: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("L")) > 127


class PackedDataset:
    """One split of a packed set; yields the same :class:`Sample` s as the folder layout.

    Args:
        root: A folder written by :func:`pack_refsegrs`.
        split: ``"train"``, ``"val"`` or ``"test"``.

    Raises:
        InputError: Missing folder / split or a file of another format.
    """

    name = "packed"

    def __init__(self, root: str | Path, split: str) -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        index_path = self.root / f"{split}.json.gz"
        if not self.root.is_dir():
            raise InputError(f"packed data root {str(self.root)!r} does not exist; write it with "
                             "`python -m training pack --root data_gen/SET --out DIR`")
        if not index_path.is_file():
            raise InputError(f"{str(index_path)!r} not found: {str(self.root)!r} is not a packed "
                             f"set with a {split!r} split")
        with gzip.open(index_path, "rt", encoding="utf-8") as fh:
            index = json.load(fh)
        if index.get("format") != FORMAT or index.get("version") != VERSION:
            raise InputError(f"{index_path} is not a {FORMAT} v{VERSION} index; re-pack the set")
        self.split = split
        self.resize = index["resize"]
        self.paper_only = split != "train"  # eval splits hold masks at the network size only
        self._images = index["images"]
        self._masks = index["masks"]
        self._image_of = [r["image"] for r in index["records"]]
        self._mask_of = [r["mask"] for r in index["records"]]
        self.records = [Record(str(r["id"]), r["text"], r["type"], dict(r["meta"]))
                        for r in index["records"]]
        self._blob = np.memmap(self.root / f"{split}.bin", dtype=np.uint8, mode="r")
        logger.info("packed %s/%s: %d samples, %d images", self.root, split, len(self.records),
                    len(self._images))

    def __len__(self) -> int:
        return len(self.records)

    def _bytes(self, span: list[int]) -> bytes:
        off, n = span
        return self._blob[off : off + n].tobytes()

    def __getitem__(self, index: int) -> Sample:
        rec = self.records[index]
        image = _decode_image(self._bytes(self._images[self._image_of[index]]))
        mask = _decode_mask(self._bytes(self._masks[self._mask_of[index]]))
        if mask.shape != image.shape[:2]:
            raise InputError(f"packed sample {rec.sample_id}: mask {mask.shape} and image "
                             f"{image.shape[:2]} differ in size; re-pack the set")
        return Sample(image, mask, rec.text, rec.sample_id, rec.expr_type, dict(rec.meta))


# ------------------------------------------------------------------------------------ writer
def shrink_pair(image: np.ndarray, mask: np.ndarray, max_side: int) -> tuple[np.ndarray,
                                                                             np.ndarray, bool]:
    """The training-split resize (module docstring): longest side <= ``max_side``, aspect kept.

    Returns:
        ``(image, mask, rescued)``; ``rescued`` is True when nearest resizing would have emptied
        a non-empty mask and the box-filtered mask was used instead.
    """
    h, w = mask.shape
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image, mask, False
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    m8 = Image.fromarray(mask.astype(np.uint8) * 255)
    out = np.asarray(m8.resize(size, Image.Resampling.NEAREST)) > 127
    if mask.any() and not out.any():
        return img, np.asarray(m8.resize(size, Image.Resampling.BOX)) > 0, True
    return img, out, False


def _encode_image(image: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "WEBP", quality=quality, method=4)
    return buf.getvalue()


def _encode_mask(mask: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(mask.astype(bool)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def pack_refsegrs(root: str | Path, out: str | Path, *, train_max_side: int = 384,
                  eval_size: int = 256, quality: int = 80, eval_quality: int = 95,
                  overwrite: bool = False) -> dict[str, Any]:
    """Pack every split of a RefSegRS-layout folder (module docstring).

    Args:
        root: The folder (``images/``, ``masks/``, ``output_phrase_<split>.txt``, sidecars).
        out: Output folder; written to a temporary sibling and renamed when complete.
        train_max_side: Longest image side kept in the train split (px).
        eval_size: Side of the stored val / test images and masks (the network input).
        quality: WebP quality of the train images (augmented anyway).
        eval_quality: WebP quality of the val / test images (q80 cost 1.4 points of NWPU
            class-level mIoU on the shipped weights, q95 much less: see training/README.md).
        overwrite: Replace an existing ``out``.

    Returns:
        The ``pack_info.json`` content.

    Raises:
        OutputError: ``out`` exists and ``overwrite`` is False, or ``out`` is, holds or
            is an existing folder inside ``root`` (backend.outputs).
        InputError: ``root`` is not a RefSegRS-layout folder.
    """
    from PIL import features

    root = Path(root)
    out = check_output_folder(out, inputs=[root], overwrite=overwrite)  # never inside the set
    if not features.check("webp"):
        raise InputError("this Pillow has no WebP support; install a Pillow wheel from PyPI")
    splits = [s for s in SPLITS if (root / f"output_phrase_{s}.txt").is_file()]
    if not splits:
        raise InputError(f"{str(root)!r} holds no output_phrase_<split>.txt: not a RefSegRS "
                         "folder")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    info: dict[str, Any] = {"format": FORMAT, "version": VERSION, "source": str(root),
                            "options": {"train_max_side": train_max_side,
                                        "eval_size": eval_size, "webp_quality": quality,
                                        "eval_webp_quality": eval_quality},
                            "splits": {}}
    try:
        for split in splits:
            info["splits"][split] = _pack_split(RefSegRSDataset(root, split), tmp, split,
                                                train_max_side, eval_size,
                                                quality if split == "train" else eval_quality)
        build_info = root / "build_info.json"
        if build_info.is_file():
            info["build_info"] = json.loads(build_info.read_text())
        info["bytes"] = sum(f.stat().st_size for f in tmp.iterdir())
        (tmp / "pack_info.json").write_text(json.dumps(info, indent=1, sort_keys=True))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def _pack_split(ds: RefSegRSDataset, out: Path, split: str, max_side: int, eval_size: int,
                quality: int) -> dict[str, Any]:
    images: list[list[int]] = []
    masks: list[list[int]] = []
    by_file: dict[str, int] = {}  # sha1 of the source image file -> stored image index
    by_id: dict[str, tuple[int, int]] = {}  # sample id -> (image, mask); one id = one target
    records: list[dict[str, Any]] = []
    rescued = 0
    with open(out / f"{split}.bin", "wb") as blob:

        def put(data: bytes, table: list[list[int]]) -> int:
            table.append([blob.tell(), len(data)])
            blob.write(data)
            return len(table) - 1

        for k, rec in enumerate(ds.records):
            if rec.sample_id not in by_id:
                sample = ds[k]
                if split == "train":
                    image, mask, saved = shrink_pair(sample.image, sample.mask, max_side)
                    rescued += saved
                else:
                    image, mask = resize_pair(sample.image, sample.mask, eval_size)
                digest = hashlib.sha1((ds.root / "images" / f"{rec.sample_id}.tif")
                                      .read_bytes(), usedforsecurity=False).hexdigest()
                if digest not in by_file:
                    by_file[digest] = put(_encode_image(image, quality), images)
                by_id[rec.sample_id] = (by_file[digest], put(_encode_mask(mask), masks))
            image_idx, mask_idx = by_id[rec.sample_id]
            records.append({"id": rec.sample_id, "text": rec.text, "type": rec.expr_type,
                            "meta": rec.meta, "image": image_idx, "mask": mask_idx})
        size = blob.tell()
    index = {"format": FORMAT, "version": VERSION, "split": split,
             "resize": ({"rule": "longest_side", "max_side": max_side} if split == "train"
                        else {"rule": "resize_pair", "size": eval_size}),
             "images": images, "masks": masks, "records": records}
    with gzip.open(out / f"{split}.json.gz", "wt", encoding="utf-8", compresslevel=9) as fh:
        json.dump(index, fh, separators=(",", ":"))
    logger.info("packed %s/%s: %d lines, %d images, %d masks, %.1f MB", ds.root, split,
                len(records), len(images), len(masks), size / 1e6)
    return {"lines": len(records), "images": len(images), "masks": len(masks),
            "bin_bytes": size, "masks_rescued_by_box_filter": rescued}

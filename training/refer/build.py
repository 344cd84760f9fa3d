"""``python -m training build-refer``: labelled masks -> referring triples in the RefSegRS layout.

Output (``--out DIR``)::

    images/<id>.tif              RGB TIFF (deflate). Ids of one source image are hard links of one
                                 file (a copy where links are impossible).
    masks/<id>.tif               0/255 uint8 TIFF (deflate), the union of the target instances.
    output_phrase_{train,val}.txt  "<id> <expression>" lines (several lines may share an id:
                                 different phrasings of the same target).
    refer_{train,val}.jsonl      sidecar, one JSON row per phrase line: id, text, type, kind,
                                 source image, crop, scale, target instance ids, mask area, flags.
    stats.json, stats.md         expressions per type, targets per expression, mask-area
                                 distribution, rejected candidates by reason.
    build_info.json, README.md   options, seed, provenance and licence notes.

Working size: NWPU images are downscaled to ``max_side`` (default 512) on the longest side;
Dubai parts are cut at native resolution into ``crop_px`` crops (default 512, stride 256 in train
and 512 in val). The same options and seed give byte-identical phrase files, sidecars and masks.
The build is written to a temporary folder and renamed into place only when complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from backend.errors import InputError
from backend.outputs import check_output_folder
from training.refer import dubai, nwpu
from training.refer.generate import EXPR_TYPES, Expression, select_expressions
from training.refer.grammar import DUBAI_GRAMMAR, NWPU_GRAMMAR, Grammar, Query
from training.refer.resolve import Margins
from training.refer.scene import Scene

logger = logging.getLogger(__name__)

SOURCES = ("nwpu", "dubai")
SPLITS = ("train", "val")
AREA_BINS = (0.0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
NWPU_CAPS = {"class": 2, "unique": 2, "position": 4, "ordinal": 3, "size": 2, "relation": 4}
DUBAI_CAPS = {"class": 3, "unique": 1, "position": 3, "size": 1}
_LICENCE = {
    "nwpu": "NWPU VHR-10 images: non-commercial research use only (CC BY-NC 4.0 per torchgeo's "
            "mirror); do not redistribute in a product. Instance masks: MIT "
            "(chaozhong2010/VHR-10_dataset_coco).",
    "dubai": "Dubai aerial semantic segmentation (Humans in the Loop / MBRSC): CC0 1.0.",
}


@dataclass
class BuildOptions:
    """Options of one build (all recorded in ``build_info.json``)."""

    source: str
    root: Path
    out: Path
    seed: int = 0
    max_side: int = 512
    crop_px: int = 512
    train_stride_px: int = 256
    val_stride_px: int = 512
    min_labelled: float = 0.5
    minor_frac: float = 0.0005
    phrasings: int = 2
    val_phrasings: int = 1
    min_target_px: int = 16
    limit_images: int | None = None
    overwrite: bool = False
    caps: dict[str, int] = field(default_factory=dict)
    margins: Margins = field(default_factory=Margins)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise InputError(f"unknown --source {self.source!r}; use one of {', '.join(SOURCES)}")
        if not self.caps:
            self.caps = dict(NWPU_CAPS if self.source == "nwpu" else DUBAI_CAPS)
        if self.source == "dubai" and self.margins == Margins():
            self.margins = Margins(size_ratio=1.5)


def _save_tif(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="TIFF", compression="tiff_adobe_deflate")


class RefSegRSWriter:
    """Accumulates scenes and expressions; writes the RefSegRS layout plus sidecars."""

    def __init__(self, out: Path, source: str) -> None:
        self.out = out
        self.source = source
        (out / "images").mkdir(parents=True)
        (out / "masks").mkdir()
        self.next_id = 1
        self.lines: dict[str, list[str]] = {s: [] for s in SPLITS}
        self.rows: dict[str, list[dict[str, Any]]] = {s: [] for s in SPLITS}
        self.scenes: dict[str, int] = dict.fromkeys(SPLITS, 0)
        self.false_colour: dict[str, int] = dict.fromkeys(SPLITS, 0)

    def add(self, split: str, image: np.ndarray, scene: Scene, exprs: list[Expression]) -> None:
        """Write one scene's image/masks and queue its phrase lines."""
        self.scenes[split] += 1
        self.false_colour[split] += int(bool(scene.meta.get("false_colour")))
        ids: dict[frozenset[int], int] = {}
        first_image: Path | None = None
        for expr in exprs:
            if expr.target not in ids:
                sid = ids[expr.target] = self.next_id
                self.next_id += 1
                img_path = self.out / "images" / f"{sid}.tif"
                if first_image is None:
                    _save_tif(image, img_path)
                    first_image = img_path
                else:
                    try:
                        os.link(first_image, img_path)
                    except OSError:
                        shutil.copyfile(first_image, img_path)
                mask = scene.union_mask(expr.target)
                _save_tif(mask.astype(np.uint8) * 255, self.out / "masks" / f"{sid}.tif")
            sid = ids[expr.target]
            self.lines[split].append(f"{sid} {expr.text}")
            self.rows[split].append(self._row(sid, expr, scene))

    def _row(self, sid: int, expr: Expression, scene: Scene) -> dict[str, Any]:
        q: Query = expr.query
        major = [i for i in scene.instances if i.iid in expr.target and not i.minor]
        area = float(scene.union_mask(expr.target).sum()) / (scene.width * scene.height)
        return {
            "id": sid, "text": expr.text, "type": expr.expr_type, "kind": q.kind, "arg": q.arg,
            "k": q.k, "number": q.number, "target_class": q.cls, "anchor_class": q.anchor,
            "source": self.source, "source_image": scene.meta["source_image"],
            "crop": scene.meta.get("crop"), "scale": scene.meta.get("scale"),
            "image_size": [scene.width, scene.height], "targets": sorted(expr.target),
            "n_targets": len(major), "mask_area_frac": round(area, 6),
            "false_colour": bool(scene.meta.get("false_colour")),
        }

    def finish(self, rejected: dict[str, Counter[str]], options: BuildOptions) -> dict[str, Any]:
        """Write phrase files, sidecars, stats and notes; return the stats."""
        for split in SPLITS:
            (self.out / f"output_phrase_{split}.txt").write_text(
                "".join(f"{ln}\n" for ln in self.lines[split]), encoding="utf-8")
            (self.out / f"refer_{split}.jsonl").write_text(
                "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.rows[split]),
                encoding="utf-8")
        stats = {split: split_stats(self.rows[split], self.scenes[split],
                                    self.false_colour[split], rejected[split])
                 for split in SPLITS}
        stats["source"] = self.source
        (self.out / "stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
        (self.out / "stats.md").write_text(stats_markdown(stats))
        info = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()
                if k not in ("out", "overwrite")}
        (self.out / "build_info.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
        (self.out / "README.md").write_text(_readme(options))
        return stats


def split_stats(rows: list[dict[str, Any]], n_scenes: int, n_false_colour: int,
                rejected: Counter[str]) -> dict[str, Any]:
    """Counts and distributions of one split's sidecar rows."""
    def area_summary(areas: list[float]) -> dict[str, Any]:
        if not areas:
            return {"n": 0}
        a = np.asarray(areas)
        hist, _ = np.histogram(a, bins=AREA_BINS)
        return {"n": len(areas),
                "quantiles": {f"p{q}": round(float(np.quantile(a, q / 100)), 5)
                              for q in (5, 25, 50, 75, 95)},
                "histogram": {f"{lo:g}-{hi:g}": int(c) for lo, hi, c in
                              zip(AREA_BINS[:-1], AREA_BINS[1:], hist, strict=True)}}

    def targets_hist(ns: list[int]) -> dict[str, int]:
        c = Counter(n if n < 5 else (5 if n < 10 else 10) for n in ns)
        names = {5: "5-9", 10: "10+"}
        return {names.get(k, str(k)): c[k] for k in sorted(c)}

    ids = {r["id"] for r in rows}
    out: dict[str, Any] = {
        "images": n_scenes, "false_colour_images": n_false_colour, "expressions": len(rows),
        "targets": len(ids), "source_images": len({r["source_image"] for r in rows}),
        "per_type": {}, "targets_per_expression": targets_hist([r["n_targets"] for r in rows]),
        "mask_area_frac": area_summary([r["mask_area_frac"] for r in rows]),
        "rejected": {k: rejected[k] for k in sorted(rejected) if not k.endswith(":accepted")},
    }
    for t in EXPR_TYPES:
        sub = [r for r in rows if r["type"] == t]
        if sub:
            out["per_type"][t] = {
                "expressions": len(sub), "targets": len({r["id"] for r in sub}),
                "targets_per_expression": targets_hist([r["n_targets"] for r in sub]),
                "mask_area_frac": area_summary([r["mask_area_frac"] for r in sub]),
            }
    return out


def stats_markdown(stats: dict[str, Any]) -> str:
    """A human-readable version of ``stats.json``."""
    lines = [f"# Generated referring set: {stats['source']}", ""]
    for split in SPLITS:
        s = stats[split]
        lines += [f"## {split}", "",
                  f"{s['images']} scenes from {s['source_images']} source images "
                  f"({s['false_colour_images']} false-colour scenes), {s['expressions']} "
                  f"expressions, {s['targets']} target masks.",
                  "", "| type | expressions | targets | area p5 | area p50 | area p95 |",
                  "|---|---:|---:|---:|---:|---:|"]
        for t, d in s["per_type"].items():
            q = d["mask_area_frac"]["quantiles"]
            lines.append(f"| {t} | {d['expressions']} | {d['targets']} | {q['p5']:.4f} | "
                         f"{q['p50']:.4f} | {q['p95']:.4f} |")
        lines += ["", "Targets per expression: " + ", ".join(
            f"{k}: {v}" for k, v in s["targets_per_expression"].items()), "",
            "Mask area (fraction of image): " + ", ".join(
                f"{k}: {v}" for k, v in s["mask_area_frac"].get("histogram", {}).items()), "",
            "Rejected candidates: " + (", ".join(f"{k} {v}" for k, v in s["rejected"].items())
                                      or "none"), ""]
    return "\n".join(lines)


def _readme(o: BuildOptions) -> str:
    size = (f"images downscaled to at most {o.max_side} px on the longest side" if
            o.source == "nwpu" else
            f"{o.crop_px} px crops at native resolution, stride {o.train_stride_px} px (train) / "
            f"{o.val_stride_px} px (val); tiles {', '.join(map(str, dubai.VAL_TILES))} are val")
    return (f"# Generated referring-expression set ({o.source})\n\n"
            f"Built by `python -m training build-refer --source {o.source} --seed {o.seed}` from "
            f"`{o.root}`: {size}. RefSegRS layout; see stats.md. Expressions were checked to pick "
            "out exactly their target (training/refer/resolve.py).\n\n"
            f"Licence of the source data: {_LICENCE[o.source]}\n")


def _scenes(o: BuildOptions, split: str) -> Iterator[tuple[np.ndarray, Scene]]:
    if o.source == "nwpu":
        images = nwpu.read_split(o.root, split)
        if o.limit_images is not None:
            images = images[: o.limit_images]
        for img in images:
            yield nwpu.load_scene(o.root, img, o.max_side)
    else:
        tiles = dubai.TRAIN_TILES if split == "train" else dubai.VAL_TILES
        parts = dubai.list_parts(o.root, tiles)
        if o.limit_images is not None:
            parts = parts[: o.limit_images]
        stride = o.train_stride_px if split == "train" else o.val_stride_px
        for part in parts:
            yield from dubai.iter_crops(part, o.crop_px, stride, o.min_labelled, o.minor_frac)


def _candidates(o: BuildOptions, scene: Scene) -> list[Query]:
    if o.source == "nwpu":
        return list(nwpu.candidate_queries(scene))
    return list(dubai.candidate_queries(scene))


def build_refer(o: BuildOptions) -> dict[str, Any]:
    """Build one generated set (see the module docstring).

    Args:
        o: Options.

    Returns:
        The statistics written to ``stats.json``.

    Raises:
        InputError: Bad root or source; OutputError: ``out`` exists and ``overwrite`` is off.
    """
    if not o.root.is_dir():
        raise InputError(f"--root {str(o.root)!r} does not exist")
    check_output_folder(o.out, inputs=[o.root], overwrite=o.overwrite)  # never the source data
    grammar: Grammar = NWPU_GRAMMAR if o.source == "nwpu" else DUBAI_GRAMMAR
    tmp = o.out.with_name(f".{o.out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        writer = RefSegRSWriter(tmp, o.source)
        rejected: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        sources: dict[str, set[str]] = {s: set() for s in SPLITS}
        for si, split in enumerate(SPLITS):
            for n, (image, scene) in enumerate(_scenes(o, split)):
                sources[split].add(scene.meta["source_image"])
                rng = np.random.default_rng([o.seed, si, n])
                exprs = select_expressions(
                    scene, _candidates(o, scene), grammar, o.caps, rng, margins=o.margins,
                    phrasings=o.phrasings if split == "train" else o.val_phrasings,
                    min_target_px=o.min_target_px,
                    stats=rejected[split])
                writer.add(split, image, scene, exprs)
            logger.info("%s %s: %d scenes, %d expressions", o.source, split,
                        writer.scenes[split], len(writer.lines[split]))
        overlap = sources["train"] & sources["val"]
        if overlap:
            raise InputError(f"val images also in train: {sorted(overlap)[:5]}; fix the splits")
        stats = writer.finish(rejected, o)
        if o.out.exists():
            shutil.rmtree(o.out)
        tmp.rename(o.out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return stats

"""Measure the adaptation targets of issue 28 on the bundled rasters (docs/adapt.md).

``water``: the Dutch orthophoto ``demo_data/test_tiled.tif``; examples = the parts of the water
reference ``demo_data/test_tiled_water.gpkg`` in the northern half (which is given as the fully
labelled area), scored on the southern half with the full pipeline (base and adapted).

``spacenet``: the SpaceNet Las Vegas tile; examples = two of the three building footprints,
scored on the third (near it) and on the whole tile.

Usage::

    python tools/adapt_targets.py water --minutes 5 --threads 2 --out-dir /tmp/adapt_water
    python tools/adapt_targets.py spacenet --holdout-index 2 --minutes 5 --threads 2 \
        --out-dir /tmp/adapt_spacenet

Prints one JSON line per model (base, adapted) with IoU and "found" (share of the reference
inside the prediction), plus the adaptation's own hold-out numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEMO = ROOT / "demo_data"
DUTCH = DEMO / "test_tiled.tif"
WATER = DEMO / "test_tiled_water.gpkg"
SPACENET = DEMO / "SpaceNet_AOI_2_Las_Vegas-056155973080_01_P001-WV03-RGB.tif"
SPACENET_TRUTH = DEMO / "SpaceNet_AOI_2_Las_Vegas-056155973080_01_P001-WV03.gpkg"


def _write(path: Path, geoms: list[Any], crs: str) -> None:
    import numpy as np
    import pyogrio
    import shapely

    kind = "MultiPolygon" if any(g.geom_type == "MultiPolygon" for g in geoms) else "Polygon"
    pyogrio.raw.write(str(path), np.array([shapely.to_wkb(g) for g in geoms], dtype=object),
                      field_data=[], fields=[], crs=crs, geometry_type=kind, driver="GPKG")


def _score(raster: Path, text: str, checkpoint: str | None, bbox: Any, truth: list[Any],
           region: Any) -> dict[str, Any]:
    """Segment ``raster`` (inside ``bbox``) and compare with ``truth`` inside ``region``."""
    import shapely

    from backend import segment_raster
    from backend.demo import truth_found, truth_iou
    from backend.model.segmenter import load_segmenter

    seg = load_segmenter(checkpoint, device="cpu")
    t = time.perf_counter()
    result = segment_raster(str(raster), text, segmenter=seg, bbox=bbox)
    polys = [p.intersection(region) for p in result.polygons]
    polys = [p for p in polys if not p.is_empty]
    gt = [g.intersection(region) for g in truth]
    gt = [g for g in gt if not g.is_empty]
    return {"model": checkpoint or "bundled", "iou": round(100 * truth_iou(polys, gt), 1),
            "found": round(100 * truth_found(polys, gt), 1),
            "predicted_m2": round(float(shapely.union_all(polys).area) if polys else 0.0, 1),
            "reference_m2": round(float(shapely.union_all(gt).area) if gt else 0.0, 1),
            "seconds": round(time.perf_counter() - t, 1)}


def _adapt(raster: Path, examples: Path, text: str, out: Path, args: argparse.Namespace,
           area: Path | None) -> dict[str, Any]:
    from training.adapt.engine import adapt
    from training.adapt.spec import AdaptSpec

    spec = AdaptSpec(rasters=(str(raster),), examples=str(examples), text=text, out=str(out),
                     labelled_area=str(area) if area else None, budget_s=args.minutes * 60,
                     threads=args.threads, seed=args.seed, overwrite=True, lr=args.lr,
                     batch_size=args.batch_size, scoped=not args.all_texts)
    r = adapt(spec)
    return {"holdout_before": r.before["iou"], "holdout_after": r.after["iou"],
            "steps": r.steps, "seconds": round(r.seconds, 1), "notes": r.notes}


def water(args: argparse.Namespace) -> None:
    """The Dutch river: north half taught, south half scored."""
    import rasterio
    from shapely.geometry import box

    from backend.demo import read_truth

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with rasterio.open(DUTCH) as ds:
        b, crs = ds.bounds, ds.crs
    mid = 0.5 * (b.bottom + b.top)
    north, south = box(b.left, mid, b.right, b.top), box(b.left, b.bottom, b.right, mid)
    truth = read_truth(WATER, crs.to_wkt())
    examples = [g.intersection(north) for g in truth if not g.intersection(north).is_empty]
    _write(out_dir / "water_north.gpkg", examples, crs.to_string())
    _write(out_dir / "north_half.gpkg", [north], crs.to_string())
    ckpt = out_dir / "test_tiled_water.safetensors"
    info = _adapt(DUTCH, out_dir / "water_north.gpkg", "water", ckpt, args,
                  out_dir / "north_half.gpkg")
    print(json.dumps({"target": "water", "adaptation": info}))
    for model in (None, str(ckpt)):
        print(json.dumps({"target": "water south half", **_score(
            DUTCH, "water", model, south.bounds, truth, south)}))


def spacenet(args: argparse.Namespace) -> None:
    """Two footprints taught, the third scored (near it) and the whole tile."""
    import rasterio
    import shapely
    from shapely.geometry import box

    from backend.demo import read_truth

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with rasterio.open(SPACENET) as ds:
        b, crs = ds.bounds, ds.crs
    truth = read_truth(SPACENET_TRUTH, crs.to_wkt())
    held = truth[args.holdout_index]
    taught = [g for i, g in enumerate(truth) if i != args.holdout_index]
    _write(out_dir / "footprints_taught.gpkg", taught, crs.to_string())
    ckpt = out_dir / f"spacenet_buildings_{args.holdout_index}.safetensors"
    info = _adapt(SPACENET, out_dir / "footprints_taught.gpkg", "the buildings", ckpt, args,
                  None)
    print(json.dumps({"target": "spacenet", "holdout_index": args.holdout_index,
                      "adaptation": info}))
    near = held.buffer(5.0).difference(shapely.union_all(taught))
    whole = box(b.left, b.bottom, b.right, b.top)
    for model in (None, str(ckpt)):
        print(json.dumps({"target": "spacenet third footprint", **_score(
            SPACENET, "the buildings", model, None, [held], near)}))
        print(json.dumps({"target": "spacenet whole tile", **_score(
            SPACENET, "the buildings", model, None, truth, whole)}))


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run one target."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("target", choices=("water", "spacenet"))
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--all-texts", action="store_true", help="unscoped adaptation")
    p.add_argument("--holdout-index", type=int, default=2, help="spacenet: footprint scored")
    p.add_argument("--out-dir", required=True)
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    (water if args.target == "water" else spacenet)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

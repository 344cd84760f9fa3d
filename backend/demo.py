"""``make demo``: segment the bundled real GeoTIFFs for a few queries and show the results.

For every (raster, query) it writes ``<out>/<raster>__<query>.gpkg`` and a PNG overlay
(polygon outlines over the image, the query in the legend), prints a summary table (query,
working GSD, polygons, area, seconds) and, where ground-truth polygons exist (the SpaceNet
building footprints; an approximate water reference of the Dutch tile), the IoU of the predicted
area against them and the share of the reference inside the prediction ("found").

Usage::

    python -m backend.demo [--out demo_out] [--checkpoint PATH | --config NAME]
                           [--raster FILE --query TEXT ...] [--reduced]
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import Rs2SamError

__all__ = ["DEMO_CASES", "DemoRow", "main", "run_demo"]

logger = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parents[1] / "demo_data"
SPACENET = "SpaceNet_AOI_2_Las_Vegas-056155973080_01_P001-WV03-RGB.tif"
SPACENET_TRUTH = "SpaceNet_AOI_2_Las_Vegas-056155973080_01_P001-WV03.gpkg"

DEMO_CASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("test_tiled.tif", ("water", "the buildings", "the road", "vehicles")),
    (SPACENET, ("the buildings", "the largest building", "the road")),
)
"""Bundled rasters and the queries run on each (kinds of expressions the model was trained on)."""

WATER_TRUTH = "test_tiled_water.gpkg"

TRUTH = {(SPACENET, "the buildings"): SPACENET_TRUTH, ("test_tiled.tif", "water"): WATER_TRUTH}
"""(raster, query) -> reference polygon file in ``demo_data/``: the SpaceNet footprints, and an
approximate water reference of the Dutch tile made by ``tools/make_water_reference.py``."""

QUERY_GSD_M = {("test_tiled.tif", "vehicles"): 0.25}
"""(raster, query) -> working GSD (m/px) instead of the model's own: the bundled weights saw
vehicles at about 0.2 m/px, courts and buildings at 1-2 m/px (docs/model_card.md)."""


@dataclass(frozen=True)
class DemoRow:
    """One line of the summary table."""

    raster: str
    query: str
    polygons: int
    area_m2: float
    seconds: float
    gpkg: Path
    png: Path
    iou: float | None
    gsd_m: float | None = None
    found: float | None = None  # share of the reference area inside the prediction
    warnings: tuple[str, ...] = ()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "query"


def read_truth(truth_path: Path, crs_wkt: str) -> list[Any]:
    """Ground-truth polygons of ``truth_path``, reprojected to ``crs_wkt`` when needed."""
    import pyogrio
    import shapely
    from pyproj import CRS, Transformer
    from shapely.ops import transform

    meta, _, geometry, _ = pyogrio.raw.read(str(truth_path))
    truth = [g for g in shapely.from_wkb(geometry) if g is not None]
    src = CRS.from_user_input(meta["crs"])
    dst = CRS.from_wkt(crs_wkt)
    if not src.equals(dst):
        project = Transformer.from_crs(src, dst, always_xy=True).transform
        truth = [transform(project, g) for g in truth]
    return truth


def truth_iou(polygons: Sequence[Any], truth: Sequence[Any]) -> float:
    """IoU of the union of ``polygons`` with the union of ``truth`` (same CRS); 0 if both empty."""
    import shapely
    from shapely.ops import unary_union

    pred = unary_union(list(polygons)) if polygons else shapely.Polygon()
    gt = unary_union(list(truth)) if truth else shapely.Polygon()
    union = pred.union(gt).area
    return float(pred.intersection(gt).area / union) if union > 0 else 0.0


def truth_found(polygons: Sequence[Any], truth: Sequence[Any]) -> float:
    """Share (0-1) of the union of ``truth`` that lies inside the union of ``polygons``."""
    import shapely
    from shapely.ops import unary_union

    pred = unary_union(list(polygons)) if polygons else shapely.Polygon()
    gt = unary_union(list(truth)) if truth else shapely.Polygon()
    return float(pred.intersection(gt).area / gt.area) if gt.area > 0 else 0.0


def overlay_png(
    raster: Path,
    polygons: Sequence[Any],
    query: str,
    png: Path,
    note: str,
    truth: Sequence[Any] = (),
) -> Path:
    """Draw polygon outlines over the raster (downsampled to <= 1024 px) with a legend.

    Predictions are yellow; reference polygons, when given, dashed cyan.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import rasterio
    from matplotlib.lines import Line2D
    from rasterio.enums import Resampling

    with rasterio.open(raster) as ds:
        scale = max(1.0, max(ds.width, ds.height) / 1024)
        out_shape = (min(3, ds.count), int(ds.height / scale), int(ds.width / scale))
        image = ds.read(
            list(range(1, out_shape[0] + 1)), out_shape=out_shape, resampling=Resampling.average
        )
        inverse = ~ds.transform
        width, height = ds.width, ds.height
    rgb = np.moveaxis(image, 0, -1)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    fig, ax = plt.subplots(figsize=(7, 7 * height / width + 0.6), dpi=110)
    ax.imshow(rgb, extent=(0, width, height, 0))

    def draw(geoms: Sequence[Any], **style: Any) -> None:
        for geom in geoms:
            for polygon in getattr(geom, "geoms", [geom]):
                for ring in [polygon.exterior, *polygon.interiors]:
                    xy = np.asarray(ring.coords)
                    cols = inverse.a * xy[:, 0] + inverse.b * xy[:, 1] + inverse.c
                    rows = inverse.d * xy[:, 0] + inverse.e * xy[:, 1] + inverse.f
                    ax.plot(cols, rows, **style)

    draw(truth, color="#00e5ff", linewidth=1.2, linestyle="--")
    draw(polygons, color="#ffea00", linewidth=1.4)
    handles = [Line2D([0], [0], color="#ffea00", lw=2, label=f'"{query}"')]
    if truth:
        handles.append(Line2D([0], [0], color="#00e5ff", lw=2, ls="--", label="reference"))
    ax.set_axis_off()
    ax.legend(
        handles=handles,
        loc="upper right",
        fontsize=9,
        framealpha=0.85,
    )
    ax.set_title(f"{raster.name[:48]}\n{note}", fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
    return png


def run_demo(
    out_dir: Path,
    segmenter: Any,
    cases: Sequence[tuple[str, Sequence[str]]] = DEMO_CASES,
    *,
    data_dir: Path = DEMO_DIR,
) -> list[DemoRow]:
    """Run every (raster, query) of ``cases``; write GeoPackages and PNGs to ``out_dir``."""
    from .pipeline import segment_raster

    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[DemoRow] = []
    for raster_name, queries in cases:
        raster = (
            (data_dir / raster_name) if not Path(raster_name).is_absolute() else Path(raster_name)
        )
        for query in queries:
            stem = f"{Path(raster_name).stem[:24]}__{_slug(query)}"
            gpkg = out_dir / f"{stem}.gpkg"
            t0 = time.perf_counter()
            result = segment_raster(
                raster,
                query,
                segmenter=segmenter,
                out_path=gpkg,
                overwrite=True,
                gsd_m=QUERY_GSD_M.get((raster_name, query), "auto"),
            )
            seconds = time.perf_counter() - t0
            area = float(sum(a["area_m2"] for a in result.attributes))
            iou, found, truth = None, None, []
            truth_name = TRUTH.get((raster_name, query))
            if truth_name is not None and (data_dir / truth_name).exists():
                truth = read_truth(data_dir / truth_name, result.crs)
                iou = truth_iou(result.polygons, truth)
                found = truth_found(result.polygons, truth)
            note = f"{len(result.polygons)} polygons, {area:,.0f} m², {seconds:.1f} s" + (
                f", IoU vs reference {100 * iou:.1f} %, {100 * found:.0f} % of it found"
                if iou is not None and found is not None else ""
            )
            png = overlay_png(raster, result.polygons, query, out_dir / f"{stem}.png", note, truth)
            rows.append(
                DemoRow(
                    raster=raster_name,
                    query=query,
                    polygons=len(result.polygons),
                    area_m2=area,
                    seconds=seconds,
                    gpkg=gpkg,
                    png=png,
                    iou=iou,
                    gsd_m=result.gsd_m,
                    found=found,
                    warnings=tuple(result.warnings),
                )
            )
    return rows


def format_table(rows: Sequence[DemoRow]) -> str:
    """The summary as a markdown table."""
    lines = [
        "| raster | query | GSD | polygons | area (m²) | seconds | IoU vs reference | "
        "reference found |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        iou = f"{100 * r.iou:.1f} %" if r.iou is not None else "–"
        found = f"{100 * r.found:.0f} %" if r.found is not None else "–"
        gsd = "native" if r.gsd_m is None else f"{r.gsd_m:g} m"
        lines.append(
            f"| {r.raster[:32]} | {r.query} | {gsd} | {r.polygons} | {r.area_m2:,.0f} | "
            f"{r.seconds:.1f} | {iou} | {found} |"
        )
    notes = [f"- {r.query!r}: {w}" for r in rows for w in r.warnings]
    return "\n".join([*lines, "", *notes] if notes else lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m backend.demo`` (``make demo``)."""
    parser = argparse.ArgumentParser(prog="python -m backend.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--checkpoint", type=Path, help="weights file (default: bundled weights)")
    group.add_argument("--config", help="registry name with random init (tests only)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--raster", help="run only this raster (name in demo_data/ or a path)")
    parser.add_argument("--query", action="append", help="query to run (repeatable)")
    parser.add_argument("--reduced", action="store_true", help="one raster, one query")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cases: Sequence[tuple[str, Sequence[str]]] = DEMO_CASES
    if args.raster or args.query:
        raster = args.raster or DEMO_CASES[0][0]
        default_queries = dict(DEMO_CASES).get(raster, ("the buildings",))
        cases = ((raster, tuple(args.query or default_queries)),)
    if args.reduced:
        cases = ((cases[0][0], (cases[0][1][0],)),)
    try:
        from . import load_segmenter

        segmenter = load_segmenter(args.checkpoint, config=args.config, device=args.device)
        rows = run_demo(args.out, segmenter, cases)
    except Rs2SamError as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 2
    sha = str(segmenter.checkpoint_sha256)[:12] or "random init"
    print(f"\nModel: {segmenter.name} (sha256 {sha})")
    print(format_table(rows))
    print(f"\nGeoPackages and PNG overlays in {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Finishing a batch job: merge chunk borders, filter, reproject, write; the summary."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import OutputError
from .manifest import Manifest
from .state import JobState

__all__ = ["finish_summary", "write_outputs"]


def _read(path: Path) -> Any:
    """A chunk file checked before this run; damaged since then: a clear error, no traceback."""
    from .chunkfile import ChunkFileError, check_chunk

    try:
        return check_chunk(path)
    except ChunkFileError as exc:
        raise OutputError(
            f"chunk file {str(path)!r} was damaged during the run ({exc}); re-run the same "
            "command to compute it again"
        ) from exc


def write_outputs(job: JobState, manifest: Manifest, outputs: dict[str, Path]) -> None:
    """Merge and write one layer per query from the stored chunk results."""
    import numpy as np

    from .. import __version__
    from ..geo.vectorize import geodesic_areas_m2
    from .merge import merge_chunks
    from .output import make_writer, reproject

    o = job.o
    rasters = manifest.rasters()
    done = [r for r in manifest.chunks("done")]
    crs_list = [crs for _, _, planned, _, crs in rasters if planned and crs]
    if o.out_crs is not None:
        from pyproj import CRS

        out_wkt = CRS.from_user_input(o.out_crs).to_wkt()
    elif crs_list:
        out_wkt = crs_list[0]
    else:
        out_wkt = "EPSG:4326"
    created_at = manifest.get("created_at")
    warnings: set[str] = set()
    for q, query in enumerate(job.queries):
        writer = make_writer(
            o.fmt,
            outputs[query],
            out_wkt,
            {
                "prompt": query,
                "rasters": str(len(rasters)),
                "chunks": str(sum(1 for r in manifest.chunks() if r.query == q)),
                "job": str(job.out_dir),
                "backend_version": __version__,
            },
        )
        total = 0
        try:
            for idx, path, _, _, _ in rasters:
                rows = [r for r in done if r.raster == idx and r.query == q]
                if not rows:
                    continue
                data = [_read(job.chunk_path(r.id)) for r in rows]
                meta = data[0].meta
                warnings.update(meta.get("warnings") or [])
                features = merge_chunks(data, meta["transform"], meta["crs_wkt"])
                geoms = [f.geometry for f in features]
                areas = [f.area_m2 for f in features]
                if o.simplify > 0 and geoms:
                    geoms = [g.simplify(o.simplify, preserve_topology=True) for g in geoms]
                    areas = geodesic_areas_m2(geoms, meta["crs_wkt"])
                keep = [
                    i for i, (g, a) in enumerate(zip(geoms, areas, strict=True))
                    if not g.is_empty and a >= o.min_area_m2
                ]  # fmt: skip
                t = meta["transform"]
                pixel = math.sqrt(abs(t[0] * t[4] - t[1] * t[3]))
                geoms = reproject([geoms[i] for i in keep], meta["crs_wkt"], out_wkt, 8 * pixel)
                n = len(keep)
                records = {
                    "prompt": [query] * n,
                    "prompt_used": [str(meta.get("prompt_used") or query)] * n,
                    "score": [features[i].score for i in keep],
                    "area_m2": [float(areas[i]) for i in keep],
                    "pixels": [features[i].pixels for i in keep],
                    "model": [meta["model"]] * n,
                    "checkpoint_sha256": [meta["checkpoint_sha256"]] * n,
                    "source": [meta["source"]] * n,
                    "gsd_m": [float(meta["gsd_m"])] * n,
                    "threshold": [float(meta["threshold"])] * n,
                    "created_at": [created_at] * n,
                    "clicks": [""] * n,  # batch jobs are text-only
                    "source_raster": [path] * n,
                }
                writer.write(np.asarray(geoms, dtype=object), records)
                total += n
            job.summary.outputs[query] = str(writer.commit())
        except BaseException:
            writer.abort()
            raise
        job.summary.polygons[query] = total
    job.summary.warnings = [*job.summary.warnings, *sorted(warnings)]  # the job's own first


def finish_summary(job: JobState, manifest: Manifest) -> None:
    """Fill the summary's counts and failures (unreadable rasters, failed chunks)."""
    rasters = {idx: (path, error) for idx, path, _, error, _ in manifest.rasters()}
    s = job.summary
    counts = manifest.counts()
    s.done = counts.get("done", 0)
    s.chunks = sum(counts.values())
    for path, error in rasters.values():
        if error is not None:
            s.failures.append({"raster": path, "chunk": None, "query": None, "error": error})
    for row in manifest.chunks("failed"):
        s.failures.append(
            {
                "raster": rasters[row.raster][0],
                "chunk": row.id,
                "query": job.queries[row.query],
                "window": list(row.window),
                "error": row.error,
            }
        )

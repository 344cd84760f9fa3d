"""Planning a batch job: cheap checks of options and output folder, settings, chunk plans.

Everything here runs before any worker starts and raises :class:`~backend.errors.Rs2SamError`
for job-level mistakes (CLI exit 2); a raster that cannot be planned is recorded in the manifest
instead (the job goes on with the others).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError, Rs2SamError
from ..pipeline.options import _check_options
from ..text.lexicon import require_words
from .manifest import Manifest
from .output import FORMATS
from .state import BatchOptions, JobState

__all__ = [
    "check_options_cheap",
    "check_out_dir",
    "check_segmenter",
    "job_settings",
    "make_out_dir",
    "output_paths",
    "plan_rasters",
    "refresh_identities",
]

logger = logging.getLogger(__name__)


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60]
    return slug or "query"


def output_paths(out_dir: Path, queries: list[str], fmt: str) -> dict[str, Path]:
    """One file per query, named after it (``the_buildings.gpkg``)."""
    paths: dict[str, Path] = {}
    used: set[str] = set()
    for query in queries:
        name, n = _slug(query), 2
        while name in used:
            name, n = f"{_slug(query)}_{n}", n + 1
        used.add(name)
        paths[query] = out_dir / f"{name}{FORMATS[fmt].suffix}"
    return paths


def check_out_dir(out_dir: Path) -> None:
    """Check that ``out_dir`` is, or can be made, a writable folder; create nothing.

    Raises:
        OutputError: A file, a missing or read-only parent, or not writable.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {str(out_dir)!r} is a file; give a folder for the job")
    folder = out_dir if out_dir.exists() else out_dir.parent
    if not folder.is_dir():
        raise OutputError(
            f"the folder above --out {str(out_dir)!r} does not exist; create it or choose "
            "another --out"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            f"output folder {str(folder)!r} is not writable; choose another --out or fix its "
            "permissions"
        )


def make_out_dir(out_dir: Path) -> bool:
    """Create ``out_dir`` if needed and prove it writable (a probe file); True if created.

    Raises:
        OutputError: It cannot be created or written (a created folder is removed again).
    """
    try:
        out_dir.mkdir()
        created = True
    except FileExistsError:  # there already (or a second job made it just now)
        created = False
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {str(out_dir)!r} ({exc})") from exc
    probe = out_dir / f".rs2sam_write_test_{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if created:
            out_dir.rmdir()
        raise OutputError(
            f"output folder {str(out_dir)!r} is not writable ({exc.strerror}); choose another "
            "--out or fix its permissions"
        ) from exc
    return created


def refresh_identities(job: JobState, manifest: Manifest, identities: dict[str, Any]) -> None:
    """Redo every raster whose file changed since the manifest recorded it (see .identity).

    Its finished chunks and their files are dropped and it is planned again; each such raster
    adds one warning to the summary (and the log).
    """
    from .identity import describe_change

    stored = manifest.identities()
    for idx, path, *_ in manifest.rasters():
        current = identities.get(path)
        old = stored.get(idx)
        change = None if old is None else describe_change(old, current)
        if change is not None:
            dropped = manifest.reset_raster(idx)
            for chunk_id in dropped:
                job.chunk_path(chunk_id).unlink(missing_ok=True)
            message = (
                f"input raster {path!r} changed since the last run ({change}); its "
                f"{len(dropped)} chunks were discarded and it was segmented again"
            )
            logger.warning("%s", message)
            job.summary.warnings.append(message)
        if current is not None and old != current:
            manifest.set_identity(idx, current)


def check_options_cheap(o: BatchOptions) -> list[str]:
    """Check the options that need no file; return the stripped queries.

    Raises:
        InputError: An empty or repeated query, a bad option, format, chunk size or CRS.
    """
    queries = [q.strip() for q in o.queries if isinstance(q, str)]
    if not queries or any(not q for q in queries):
        raise InputError(
            "every --text must be a non-empty description, e.g. --text 'the buildings'"
        )
    if len(set(queries)) != len(queries):
        raise InputError("the same --text is given twice; give each query once")
    for q in queries:  # the pipeline's own checks of the shared options
        require_words(q)
        _check_options(
            q, o.threshold, o.min_area_m2, o.simplify, o.bands, o.gsd_m, o.tile_px,
            o.overlap_px, o.batch_size, "auto", False, 128,
        )  # fmt: skip
    if o.fmt not in FORMATS:
        raise InputError(f"--format {o.fmt!r} is unknown; use {' or '.join(FORMATS)}")
    if not isinstance(o.chunk_tiles, int) or o.chunk_tiles < 1:
        raise InputError(f"--chunk-tiles {o.chunk_tiles!r} must be an integer >= 1")
    if o.out_crs is not None:
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            CRS.from_user_input(o.out_crs)
        except CRSError as exc:
            raise InputError(f"--crs {o.out_crs!r} is not a CRS; use e.g. EPSG:32633") from exc
    return queries


def job_settings(o: BatchOptions, queries: list[str], paths: list[str]) -> dict[str, Any]:
    """What identifies a job for resuming (stored in the manifest)."""
    return {
        "inputs": paths,
        "queries": queries,
        "segmenter": o.segmenter.to_json(),
        "chunk_tiles": o.chunk_tiles,
        "threshold": o.threshold,
        "bands": list(o.bands) if o.bands else None,
        "gsd_m": o.gsd_m,
        "assume_crs": o.assume_crs,
        "tile_px": o.tile_px,
        "overlap_px": o.overlap_px,
        "batch_size": o.batch_size,
    }


def check_segmenter(manifest: Manifest, info: dict[str, Any], resumed: bool) -> None:
    """Store the workers' model on the first run; refuse another model on a resume."""
    stored = manifest.get("segmenter_info")
    if stored is None:
        manifest.put("segmenter_info", info)
    elif stored != info:
        raise InputError(
            f"the workers loaded {info['name']} ({info['checkpoint_sha256'][:12] or 'no hash'}) "
            f"but this job was planned with {stored['name']} "
            f"({stored['checkpoint_sha256'][:12] or 'no hash'}); use the same model or --restart"
        )


def plan_rasters(
    job: JobState, manifest: Manifest, headers: list[Any], info: dict[str, Any]
) -> None:
    """Plan every raster not yet planned (new, or unreadable last time)."""
    import rasterio

    from ..geo.raster import GDAL_CACHE_MB, choose_bands, open_raster, raster_info, resolve_crs
    from .planner import plan_raster

    o = job.o
    tile_px = o.tile_px or int(info.get("image_size") or 1024)
    overlap_px = tile_px // 8 if o.overlap_px is None else o.overlap_px
    if overlap_px >= tile_px:
        raise InputError(f"--overlap-px {overlap_px} must be smaller than --tile-px {tile_px}")
    gsd = info.get("gsd_m") if o.gsd_m == "auto" else o.gsd_m
    by_path = {h.path: h for h in headers}
    for idx, path, planned, _, _ in manifest.rasters():
        if planned:
            continue
        header = by_path[path]
        if header.error is not None:
            manifest.set_raster_error(idx, header.error)
            continue
        try:
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_raster(path) as ds:
                r_info = raster_info(ds, resolve_crs(ds, o.assume_crs))
                choose_bands(r_info, o.bands)
                windows = plan_raster(r_info, gsd, tile_px, overlap_px, o.chunk_tiles)
        except (Rs2SamError, OSError, ValueError) as exc:
            manifest.set_raster_error(idx, " ".join(str(exc).split()))
            continue
        manifest.add_plan(
            idx,
            r_info.crs_wkt,
            ((q, w.window, w.span) for q in range(len(job.queries)) for w in windows),
        )

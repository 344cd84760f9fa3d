"""What a job reads: expand globs and lists of paths, and read every raster's header once.

Job-level mistakes (nothing matches, a missing listed file, band counts that differ without
``--bands``) raise :class:`~backend.errors.InputError` before any work (CLI exit 2). A raster
that exists but cannot be read (a corrupt file) is *not* a job-level error: its header carries
the error, the job records it as a failed chunk and goes on with the others.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["LIST_SUFFIXES", "RasterHeader", "check_band_counts", "read_headers", "resolve_inputs"]

LIST_SUFFIXES = (".txt", ".lst", ".list")
"""An input with one of these suffixes is a text file of raster paths, one per line."""

_GLOB_CHARS = set("*?[")


def _is_gdal_path(text: str) -> bool:
    return text.startswith("/vsi") or (":" in text and not os.path.splitdrive(text)[0])


def _read_list(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read the list of rasters {_short(str(path))} ({exc}); give a UTF-8 text "
            "file with one raster path per line"
        ) from exc
    out = []
    for line in lines:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if not _is_gdal_path(item) and not os.path.isabs(item):
            item = str(path.parent / item)  # relative to the list file, not the cwd
        out.append(item)
    if not out:
        raise InputError(f"the list of rasters {str(path)!r} holds no path; one path per line")
    return out


def _short(text: str) -> str:
    return repr(text if len(text) <= 120 else f"{text[:100]}...")


def _require_file(path: str, what: str) -> None:
    """Refuse a missing path, and one that is not a regular file (FIFO, device, folder)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        raise InputError(f"{what} {_short(path)} does not exist; check the path") from None
    if not stat.S_ISREG(mode):
        kind = next(
            (name for test, name in _KINDS if test(mode)), "not a regular file"
        )
        raise InputError(
            f"{what} {_short(path)} is not a regular file but {kind}; give a raster file"
        )


_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def resolve_inputs(items: Sequence[str]) -> list[str]:
    """Raster paths of a job, in order, without repeats.

    Args:
        items: Each a raster (GeoTIFF, VRT mosaic, any GDAL path), a glob (quoted, e.g.
            ``"tiles/*.tif"``; ``**`` recurses) or a text file of paths (``.txt``/``.lst``).

    Raises:
        InputError: Nothing given, a glob that matches nothing, a missing file or list.
    """
    if not items:
        raise InputError("no input rasters given; pass files, a quoted glob or a .txt list")
    paths: list[str] = []
    for item in items:
        if _GLOB_CHARS & set(item) and not _is_gdal_path(item):
            matches = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(
                    f"input glob {_short(item)} matches no file; check the pattern and quote it "
                    "so the shell does not expand it"
                )
            paths.extend(matches)
        elif Path(item).suffix.lower() in LIST_SUFFIXES:
            _require_file(item, "list of rasters")
            paths.extend(_read_list(Path(item)))
        else:
            paths.append(item)
    resolved: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if not _is_gdal_path(path):
            _require_file(path, "input raster")
            path = os.path.abspath(path)
        if path not in seen:
            seen.add(path)
            resolved.append(path)
    return resolved


@dataclass(frozen=True)
class RasterHeader:
    """A raster's size, bands and CRS, or why it cannot be read.

    Attributes:
        path: As given to GDAL (absolute for local files).
        width, height, count: Pixels and bands (0 when unreadable).
        crs_wkt: The raster's CRS (or the assumed one) as WKT; ``""`` when unreadable.
        error: One line saying why the raster cannot be used, or None.
        files: Every other file GDAL reads for it (a VRT's sources, sidecars).
    """

    path: str
    width: int = 0
    height: int = 0
    count: int = 0
    crs_wkt: str = ""
    error: str | None = None
    files: tuple[str, ...] = ()


def read_headers(paths: Sequence[str], *, assume_crs: Any = None) -> list[RasterHeader]:
    """Open every raster once (header only) and note its size, bands and CRS, or its error."""
    import rasterio

    from ..errors import Rs2SamError
    from ..geo.raster import open_raster, resolve_crs

    headers = []
    with rasterio.Env(CPL_LOG_ERRORS="OFF"):
        for path in paths:
            try:
                with open_raster(path) as ds:
                    crs = resolve_crs(ds, assume_crs)
                    files = tuple(f for f in (ds.files or []) if f != path)
                    headers.append(
                        RasterHeader(path, ds.width, ds.height, ds.count, crs.to_wkt(), None, files)
                    )
            except InputError:
                raise  # a bad --assume-crs is the job's mistake, not the raster's
            except (Rs2SamError, OSError, ValueError) as exc:
                headers.append(RasterHeader(path, error=" ".join(str(exc).split())))
    return headers


def check_band_counts(headers: Sequence[RasterHeader], bands: Sequence[int] | None) -> None:
    """Refuse a job whose readable rasters have different band counts unless bands are chosen.

    Raises:
        InputError: Band counts differ and ``bands`` is None, or a chosen band is missing.
    """
    readable = [h for h in headers if h.error is None]
    if bands:
        for header in readable:
            if max(bands) > header.count:
                raise InputError(
                    f"--bands {','.join(map(str, bands))} asks for band {max(bands)} but "
                    f"{header.path!r} has {header.count}; choose bands every raster has"
                )
        return
    counts: dict[int, str] = {}
    for header in readable:
        counts.setdefault(header.count, header.path)
    if len(counts) > 1:
        examples = "; ".join(f"{n} bands: {p!r}" for n, p in sorted(counts.items())[:3])
        raise InputError(
            f"the rasters have different band counts ({examples}); pass --bands (e.g. 1,2,3) "
            "or run them as separate jobs"
        )

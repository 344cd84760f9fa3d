"""Batch segmentation of many rasters and whole mosaics: planned, resumable, local or on Ray.

A job is a list of rasters and one or more text queries. It is planned as *chunks* (a raster,
or a window of a large raster, and one query), recorded in a SQLite manifest beside the output;
workers that each load the segmenter once process the chunks and send back their polygons,
which the driver stores as one atomic file per chunk; finally the pieces of objects that cross
chunk borders are merged and one layer per query is written. Re-running the same command
resumes: finished chunks are skipped. See docs/batch.md.

Modules: :mod:`.inputs` (what to read), :mod:`.planner` (chunks aligned with the tile grid),
:mod:`.manifest` (SQLite), :mod:`.spec` (how workers build the segmenter), :mod:`.worker`
(one chunk -> polygons), :mod:`.chunkfile` (per-chunk result files), :mod:`.engines`
(local threads/processes, Ray), :mod:`.merge` (cross-chunk seams), :mod:`.output`
(GeoPackage / GeoParquet), :mod:`.job` (the orchestration of :mod:`.planning`,
:mod:`.running` and :mod:`.finishing` over :mod:`.state`), :mod:`.cli`.
"""

from __future__ import annotations

from .job import BatchOptions, BatchSummary, run_batch

__all__ = ["BatchOptions", "BatchSummary", "run_batch"]

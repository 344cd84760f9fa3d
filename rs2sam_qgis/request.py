"""Plain-data description of one run, and how the worker gets its pixels.

Everything in a :class:`SegmentRequest` is copied out of QGIS objects on the main thread
(``layer_input.py``). The only QGIS object inside is a *cloned* data provider for layers without
a local file (WMS/XYZ/...): the clone belongs to the request and is used by the worker only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .models import ModelChoice

Bounds = tuple[float, float, float, float]
"""``(minx, miny, maxx, maxy)`` in the CRS named next to it."""


@dataclass(frozen=True)
class FileSource:
    """A raster GDAL can open from a local path: the backend reads it itself."""

    path: str


@dataclass(frozen=True)
class ProviderSource:
    """Pixels read through a cloned QGIS data provider at a fixed size (web and other layers).

    Attributes:
        provider: ``QgsRasterDataProvider`` clone; only the worker thread touches it.
        extent: Area to read, in ``crs_wkt``.
        width: Output width in pixels.
        height: Output height in pixels.
        crs_wkt: The layer's CRS (WKT2).
        bands: 1-based bands to read (ignored for ARGB32 providers such as XYZ/WMS).
    """

    provider: Any = field(compare=False, repr=False)
    extent: Bounds
    width: int
    height: int
    crs_wkt: str
    bands: tuple[int, ...] = (1, 2, 3)


@dataclass(frozen=True)
class SegmentRequest:
    """Everything one "Segment by text" run needs.

    Attributes:
        text: The referring expression (stripped, non-empty).
        source: Where the pixels come from.
        bbox: Area to segment in ``bbox_crs``; None = whole raster (file sources only).
        bbox_crs: CRS of ``bbox`` as an auth id (``"EPSG:3857"``) or WKT; the backend transforms.
        threshold: Probability threshold in ``[0, 1]``.
        min_area_m2: Drop polygons smaller than this ground area; -1 = Auto (25 pixels at the
            working resolution, :mod:`.min_area`).
        model: Which model.
        device: Torch device string.
        threads: Torch CPU threads.
        precision: ``auto`` | ``fp32`` | ``bf16`` | ``int8`` (``backend.model.precision``).
        out_path: GeoPackage to write.
        layer_name: Name of the result layer.
        raster_layer_id: Layer id of the input (to insert the result above it); "" if none.
        aoi_wkt: Optional area-of-interest polygon(s); only pixels inside can become polygons.
        aoi_crs: CRS of ``aoi_wkt`` (auth id or WKT); None = ``bbox_crs``.
        memory_layer: Load the result as a memory layer (``out_path`` is then a temp file).
        source_name: Written to the ``source`` field for provider reads (the layer name).
        allow_large: Run even beyond the backend's planned limits (tiles / estimated time).
        gsd_m: Working ground resolution in m/px to resample to; None = the model's own
            (the checkpoint's per-concept table, else its ``gsd_m``; bundled weights:
            vehicles 0.25 m/px, most others 1 m/px).
        points: Clicks next to the text, ``"x,y,+;x,y,-"`` in the raster's CRS ("" = none).
    """

    text: str
    source: FileSource | ProviderSource
    bbox: Bounds | None
    bbox_crs: str | None
    threshold: float
    min_area_m2: float
    model: ModelChoice
    device: str
    threads: int
    out_path: str
    layer_name: str
    raster_layer_id: str = ""
    aoi_wkt: str | None = None
    aoi_crs: str | None = None
    memory_layer: bool = False
    source_name: str = ""
    gsd_m: float | None = None
    allow_large: bool = False
    precision: str = "auto"
    points: str = ""


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run produced (plain data, handed back to the main thread).

    Attributes:
        out_path: The GeoPackage written.
        polygons: Number of polygons.
        area_m2: Total ground area of the polygons in m².
        seconds: Wall time of the whole run (model load included).
        load_seconds: Time spent importing torch and loading the model (0.0 when cached).
        model_name: The segmenter's config name.
        warnings: The backend's warnings about the result (how the prompt was rewritten for
            the model, words it never saw in training), one sentence each.
        prompt_used: The text the model was given (the prompt with everyday words rewritten
            to the names it was trained with, e.g. "the water" for "the lake").
        quality_note: What the model is known to be worth on the prompt's concepts (measured
            quality, known failures; "" when the model or the concept is not in the table).
        quality_weak: The model is weak on them (the dock then offers the remedies).
        concepts: The trained concepts the prompt names (lexicon keys).
        min_area_text: The minimum area used, in words ("minimum area 25 m² (Auto: ...)").
    """

    out_path: str
    polygons: int
    area_m2: float
    seconds: float
    load_seconds: float
    model_name: str
    warnings: tuple[str, ...] = ()
    prompt_used: str = ""
    quality_note: str = ""
    quality_weak: bool = False
    concepts: tuple[str, ...] = ()
    min_area_text: str = ""

"""QGIS-free backend of "Segment by text": the RS2-SAM 2 model and the georeferenced pipeline.

Importing this package is cheap: torch, sam2, open_clip and rasterio load only when a name
that needs them is first used (PEP 562 lazy attributes), so QGIS start-up never pays for them.

Example:
    >>> import backend
    >>> seg = backend.load_segmenter(config="test-tiny")          # random init
    >>> prob = seg.predict(image, "the buildings")                 # (H, W) float32 in [0, 1]
    >>> result = backend.segment_raster("ortho.tif", "the river", segmenter=seg)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Cancelled",
    "CheckpointError",
    "InputError",
    "Rs2SamError",
    "SegmentResult",
    "Segmenter",
    "get_model_config",
    "list_models",
    "load_segmenter",
    "segment_array",
    "segment_raster",
]

_LAZY = {  # public name -> defining module, imported on first attribute access
    "load_segmenter": "backend.model.segmenter",
    "Segmenter": "backend.model.segmenter",
    "list_models": "backend.model.configs",
    "get_model_config": "backend.model.configs",
    "segment_raster": "backend.pipeline",
    "segment_array": "backend.pipeline",
    "SegmentResult": "backend.pipeline",
    "Rs2SamError": "backend.errors",
    "InputError": "backend.errors",
    "CheckpointError": "backend.errors",
    "Cancelled": "backend.errors",
}


def __getattr__(name: str) -> Any:
    """Import public names lazily (see module docstring)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'backend' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)

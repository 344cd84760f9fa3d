"""User preferences, stored in ``QgsSettings`` under ``rs2sam/`` (never in the plugin folder)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields

from qgis.core import QgsSettings

PREFIX = "rs2sam/"
MAX_RECENT_QUERIES = 20
EXTENT_MODES = ("canvas", "layer", "selection")
"""Visible map extent, full raster layer, selected polygon(s) of a vector layer."""
PRECISIONS = ("auto", "fp32", "bf16", "int8")
"""The backend's precision modes (``backend.model.precision``); ``auto`` is the default."""


def default_threads() -> int:
    """Torch threads for inference: all cores but one, so the GUI keeps a core."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass
class PluginSettings:
    """Everything the dock remembers between sessions.

    Attributes:
        recent_queries: Most recent first, at most :data:`MAX_RECENT_QUERIES`.
        threshold: Probability threshold in ``[0, 1]``.
        min_area_m2: Polygons smaller than this ground area (m²) are dropped; -1 = Auto
            (:mod:`.min_area`: 25 pixels at the working resolution).
        gsd_m: Working ground resolution in m/px; 0 = the model's own.
        checkpoint: Path of a ``.safetensors`` checkpoint; "" = the bundled default weights.
        device: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``.
        threads: Torch CPU threads.
        precision: ``auto`` | ``fp32`` | ``bf16`` | ``int8`` (backend.model.precision).
        output_dir: Folder for result GeoPackages; "" = next to the project (or a temp folder).
        memory_layer: Keep results as temporary memory layers instead of GeoPackages.
        extent_mode: One of :data:`EXTENT_MODES`.
        dev_models: Offer random-init test models and stand-ins in the dock (developers only;
            never on by default).
    """

    recent_queries: list[str] = field(default_factory=list)
    threshold: float = 0.5
    min_area_m2: float = -1.0
    gsd_m: float = 0.0
    checkpoint: str = ""
    device: str = "auto"
    threads: int = field(default_factory=default_threads)
    precision: str = "auto"
    output_dir: str = ""
    memory_layer: bool = False
    extent_mode: str = "canvas"
    dev_models: bool = False


def _read(settings: QgsSettings, name: str, default: object) -> object:
    key = PREFIX + name
    if not settings.contains(key):
        return default
    # bool before int/float: a bool is an int in Python
    if isinstance(default, bool):
        return settings.value(key, default, type=bool)
    if isinstance(default, int):
        return settings.value(key, default, type=int)
    if isinstance(default, float):
        return settings.value(key, default, type=float)
    if isinstance(default, list):
        try:
            value = json.loads(str(settings.value(key, "[]")))
        except ValueError:
            return default
        return [str(v) for v in value] if isinstance(value, list) else default
    return str(settings.value(key, default))


def load_settings() -> PluginSettings:
    """Read the stored preferences; missing or unreadable keys fall back to the defaults."""
    settings = QgsSettings()
    defaults = PluginSettings()
    values = {f.name: _read(settings, f.name, getattr(defaults, f.name)) for f in fields(defaults)}
    loaded = PluginSettings(**values)  # type: ignore[arg-type]
    if loaded.extent_mode not in EXTENT_MODES:
        loaded.extent_mode = defaults.extent_mode
    loaded.threshold = min(1.0, max(0.0, loaded.threshold))
    loaded.threads = max(1, loaded.threads)
    loaded.gsd_m = max(0.0, loaded.gsd_m)
    if loaded.precision not in PRECISIONS:
        loaded.precision = defaults.precision
    # RS2SAM_DEV_MODELS=1 also enables the developer models (tests, CI, desktop e2e)
    loaded.dev_models = loaded.dev_models or os.environ.get("RS2SAM_DEV_MODELS") == "1"
    return loaded


def save_settings(values: PluginSettings) -> None:
    """Write every preference except ``dev_models`` (which is only ever set by hand)."""
    settings = QgsSettings()
    for f in fields(values):
        if f.name == "dev_models":
            continue
        value = getattr(values, f.name)
        if isinstance(value, list):
            value = json.dumps(value[:MAX_RECENT_QUERIES])
        settings.setValue(PREFIX + f.name, value)


def remember_query(recent: list[str], text: str) -> list[str]:
    """Return ``recent`` with ``text`` moved to the front (deduplicated, capped)."""
    text = text.strip()
    if not text:
        return list(recent)
    return [text, *(q for q in recent if q != text)][:MAX_RECENT_QUERIES]

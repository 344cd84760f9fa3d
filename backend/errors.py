"""Errors whose messages can be shown to a user as they are.

Every message names the offending value and says how to fix it. Each class also derives from
the matching builtin, so ``except ValueError`` still works for callers who don't know ours.
"""

from __future__ import annotations


class Rs2SamError(Exception):
    """Base class: an error whose message can be shown to a QGIS or CLI user as-is."""


class InputError(Rs2SamError, ValueError):
    """A bad argument: image, text, bbox, threshold, band list, ..."""


class ConfigError(Rs2SamError, ValueError):
    """An unknown model config name or an invalid config value."""


class DeviceError(Rs2SamError, ValueError):
    """An unknown or unavailable compute device."""


class CheckpointError(Rs2SamError, ValueError):
    """A checkpoint is missing, unreadable, unsafe, or does not fit the model."""


class RasterReadError(Rs2SamError, OSError):
    """A raster could not be opened or read."""


class UnsupportedRasterError(Rs2SamError, ValueError):
    """The raster's bands, dtype, geotransform or CRS cannot be used."""


class OutputError(Rs2SamError, OSError):
    """The output path exists (and overwrite is off), or its folder is missing or read-only."""


class DependencyError(Rs2SamError, ImportError):
    """A required package (torch, sam2, open_clip, rasterio) is missing or incompatible."""


class Cancelled(Rs2SamError):
    """Raised by long-running backend functions when ``is_cancelled()`` returns True."""


class ResourceError(Rs2SamError, MemoryError):
    """A run or a model would exceed a documented limit (memory, tiles, time) before it starts."""

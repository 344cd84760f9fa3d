"""The pinned requirement set of the backend (pure data, stdlib only).

Read by the dependency check (:mod:`.deps`: what is missing) and by the installer's plan
(:mod:`.install_plan`: what to install), so neither has to import the other for it.
"""

from __future__ import annotations

# import name -> pip requirement (the versions the plugin is tested with; pyproject.toml)
REQUIRED: dict[str, str] = {
    "torch": "torch==2.14.1",
    "torchvision": "torchvision==0.29.1",
    "open_clip": "open_clip_torch==3.3.0",
    "rasterio": "rasterio==1.4.4",
    "shapely": "shapely>=2.0,<3",
    "pyproj": "pyproj>=3.6,<4",
    "pyogrio": "pyogrio>=0.10,<1",
    "safetensors": "safetensors>=0.4,<1",
    "omegaconf": "omegaconf>=2.3,<2.4",
    "hydra": "hydra-core==1.3.8",
    "iopath": "iopath==0.1.10",
}
# optional: only the published RS2-SAM 2 weights (import-official) need them; installed with
# --no-deps because torchscale pins old timm/fairscale that would replace the tested versions
OPTIONAL: dict[str, str] = {
    "torchscale": "torchscale==0.3.0",
    "fairscale": "fairscale==0.4.13",
    "einops": "einops>=0.6",
    "sentencepiece": "sentencepiece==0.2.3",
}
SAM2_REQUIREMENT = "sam2==1.1.0"
SAM2_MIN_NUMPY = (1, 24, 4)  # sam2 1.1.0 needs numpy >= 1.24.4
NUMPY_1_PIN = "numpy>=1.24.4,<2"  # GDAL built for NumPy 1.x needs < 2
EXTRA_PINS = ("attrs>=23.2",)  # affine 3 (rasterio) breaks with older attrs


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit()) if piece else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def numpy_pin(numpy_version: str, gdal_array_ok: bool) -> str:
    """The numpy requirement that keeps QGIS's GDAL bindings working (its ABI major).

    Args:
        numpy_version: The numpy QGIS's Python has now (e.g. ``"1.24.2"``; "" if none).
        gdal_array_ok: Whether ``osgeo.gdal_array`` imports with it.

    Returns:
        ``numpy>=<floor>,<<major+1>``: never older than QGIS's own numpy (nor sam2's floor)
        and never across the major version QGIS's GDAL was built for. A failing
        ``gdal_array`` with numpy >= 2 means GDAL was built for 1.x: :data:`NUMPY_1_PIN`.
    """
    current = _version_tuple(numpy_version)
    if not current or (current[0] >= 2 and not gdal_array_ok):
        return NUMPY_1_PIN
    floor = max(current, SAM2_MIN_NUMPY)
    return f"numpy>={'.'.join(map(str, floor))},<{current[0] + 1}"

"""Suite-wide settings: CPU only, offline, offscreen Qt, private HOME/caches."""

from __future__ import annotations

import importlib.util
import os
import tempfile

import pytest

if os.environ.get("RS2SAM_TEST_GPU") != "1":  # `make test-gpu` sets it; before torch sees CUDA
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.pop("PROJ_LIB", None)  # rasterio's bundled PROJ must not read Debian's proj.db
os.environ.pop("PROJ_DATA", None)
_TMP_HOME = tempfile.mkdtemp(prefix="rs2sam-test-home-")
for _var in ("TORCH_HOME", "HF_HOME", "XDG_CACHE_HOME"):
    os.environ[_var] = os.path.join(_TMP_HOME, _var.lower())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    has_qgis = importlib.util.find_spec("qgis") is not None
    for item in items:
        if ("qgis" in item.keywords or "desktop" in item.keywords) and not has_qgis:
            item.add_marker(pytest.mark.skip(reason="qgis.core not importable; run `make setup`"))
        if "gpu" in item.keywords:
            import torch

            if not torch.cuda.is_available():
                item.add_marker(pytest.mark.skip(reason="no CUDA device"))

"""metadata.txt and LICENSE: what plugins.qgis.org needs (issue 2, foundation)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _general() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "metadata.txt", encoding="utf-8")
    assert parser.has_section("general")
    return parser["general"]


def test_metadata_has_every_required_key() -> None:
    general = _general()
    required = (
        "name",
        "qgisMinimumVersion",
        "description",
        "about",
        "version",
        "author",
        "email",
        "repository",
        "tracker",
        "tags",
        "category",
        "hasProcessingProvider",
    )
    assert [k for k in required if not general.get(k, "").strip()] == []
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["category"] == "Raster"
    assert general["hasProcessingProvider"] == "yes"
    for key in ("repository", "tracker"):
        assert general[key].startswith("https://"), key
    assert "@" in general["email"]


def test_metadata_version_matches_pyproject() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', pyproject, re.MULTILINE)
    assert version is not None
    assert _general()["version"] == version.group(1)


def test_license_is_gpl() -> None:
    """plugins.qgis.org accepts GPL (v2 or later) compatible plugins only."""
    text = (ROOT / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in text


def test_metadata_declares_qt6_and_describes_the_installer() -> None:
    """QGIS 4 loads the plugin (tests/qgis/test_qgis_qt6.py keeps the code clean for it), and
    the plugin repository's text says what the plugin really does about its dependencies."""
    general = _general()
    assert general["supportsQt6"] == "yes"
    assert general["qgisMaximumVersion"] == "4.99"
    about = general["about"]
    assert "never installs anything itself" not in about
    assert "exact install command" not in about
    assert "Install dependencies" in about and "only when you ask" in about

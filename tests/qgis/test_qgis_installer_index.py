"""What the installer can reach: pip's settings, index probes, measured sizes (local index)."""

from __future__ import annotations

from pathlib import Path

import pytest
from local_index import LocalIndex, closed_port_url, make_wheel

pytestmark = pytest.mark.qgis


@pytest.fixture
def index(tmp_path: Path):
    folder = tmp_path / "wheels"
    make_wheel(folder, "rs2sam_probe", "1.0", requires=("rs2sam_dep>=2",))
    make_wheel(folder, "rs2sam_probe", "1.1", requires=("rs2sam_dep>=2",))
    make_wheel(folder, "rs2sam_dep", "1.0")
    make_wheel(folder, "rs2sam_dep", "2.0", requires=('rs2sam_never; sys_platform == "nope"',))
    served = LocalIndex(folder)
    yield served
    served.close()


def test_pip_settings_from_config_list_and_environment() -> None:
    from rs2sam_qgis.installer_index import PYPI_SIMPLE, parse_pip_settings

    assert parse_pip_settings("", {}).index_url == PYPI_SIMPLE
    assert parse_pip_settings("", {}).source == "pip's default"
    listed = (
        "global.index-url='https://mirror.example/simple/'\n"
        "global.proxy='proxy.example:3128'\n"
        "install.trusted-host='mirror.example other.example'\n"
    )
    settings = parse_pip_settings(listed, {})
    assert settings.index_url == "https://mirror.example/simple"
    assert settings.proxy == "proxy.example:3128"
    assert settings.trusted_hosts == ("mirror.example", "other.example")
    assert settings.source == "pip configuration"
    env = parse_pip_settings(listed, {"PIP_INDEX_URL": "http://127.0.0.1:9/simple"})
    assert env.index_url == "http://127.0.0.1:9/simple" and env.source == "PIP_INDEX_URL"


def test_read_pip_settings_asks_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from rs2sam_qgis.installer_index import read_pip_settings

    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    assert read_pip_settings(sys.executable).index_url == "http://127.0.0.1:9/simple"


def test_probe_tells_a_closed_port_from_a_live_index(index: LocalIndex) -> None:
    from rs2sam_qgis.installer_index import Http, PipSettings, probe

    http = Http(PipSettings(index_url=index.url), timeout_s=5)
    assert probe(index.url, http, "rs2sam-probe").reachable
    assert probe(index.url, http, "not-there").reachable  # a 404 is an answer
    closed = probe(closed_port_url(), http)
    assert not closed.reachable and closed.reason == "connection refused"


@pytest.mark.parametrize("with_sizes", [True, False])
def test_measure_follows_dependencies_and_adds_real_file_sizes(
    tmp_path: Path, with_sizes: bool
) -> None:
    from rs2sam_qgis.installer_index import Http, PipSettings
    from rs2sam_qgis.installer_sizes import Resolver

    folder = tmp_path / "w"
    probe_11 = make_wheel(folder, "rs2sam_probe", "1.1", requires=("rs2sam_dep>=2",))
    make_wheel(folder, "rs2sam_probe", "1.0")
    make_wheel(folder, "rs2sam_dep", "1.0")
    dep_20 = make_wheel(folder, "rs2sam_dep", "2.0", requires=('x; sys_platform == "nope"',))
    served = LocalIndex(folder, with_sizes=with_sizes)
    try:
        resolver = Resolver(Http(PipSettings(index_url=served.url)), [served.url])
        estimate = resolver.measure(["rs2sam_probe"])
        assert [(f.project, f.version) for f in estimate.files] == [
            ("rs2sam-probe", "1.1"),
            ("rs2sam-dep", "2.0"),
        ]
        assert estimate.total_bytes == probe_11.stat().st_size + dep_20.stat().st_size
        assert estimate.complete
        assert any(r.startswith("HEAD") for r in served.requests) is not with_sizes
        assert not any(r.endswith(".whl") and r.startswith("GET") for r in served.requests)
        pinned = resolver.measure(["rs2sam_probe==1.0"])
        assert [(f.project, f.version) for f in pinned.files] == [("rs2sam-probe", "1.0")]
    finally:
        served.close()


def test_measure_reads_dependencies_by_range_when_the_index_lists_no_metadata(
    tmp_path: Path,
) -> None:
    """Some mirrors serve no .metadata files: the wheel's METADATA member is read with a few
    Range requests from the end of the file, never the whole wheel."""
    from rs2sam_qgis.installer_index import Http, PipSettings
    from rs2sam_qgis.installer_sizes import Resolver

    folder = tmp_path / "w"
    top = make_wheel(folder, "rs2sam_probe", "1.1", requires=("rs2sam_dep>=2",))
    dep = make_wheel(folder, "rs2sam_dep", "2.0")
    for meta in folder.glob("*.metadata"):
        meta.unlink()
    served = LocalIndex(folder, metadata=False)
    try:
        resolver = Resolver(Http(PipSettings(index_url=served.url)), [served.url])
        estimate = resolver.measure(["rs2sam_probe"])
        assert [f.project for f in estimate.files] == ["rs2sam-probe", "rs2sam-dep"]
        assert estimate.total_bytes == top.stat().st_size + dep.stat().st_size
        assert estimate.complete
        ranged = [r for r in served.requests if r.startswith("GET /files/") and "whl" in r]
        assert ranged  # METADATA came from the wheels, by Range (the handler logs the GETs)
    finally:
        served.close()


def test_measure_reports_what_it_could_not_measure(index: LocalIndex) -> None:
    from rs2sam_qgis.installer_index import Http, PipSettings
    from rs2sam_qgis.installer_sizes import Resolver

    dead = closed_port_url()
    resolver = Resolver(Http(PipSettings(index_url=index.url), timeout_s=5), [index.url, dead])
    estimate = resolver.measure(["rs2sam_probe", "rs2sam_missing==1"])
    assert [f.project for f in estimate.files] == ["rs2sam-probe", "rs2sam-dep"]
    assert not estimate.complete
    assert any("rs2sam_missing" in p and "connection refused" in p for p in estimate.problems)


def test_human_bytes() -> None:
    from rs2sam_qgis.installer_sizes import human_bytes

    assert human_bytes(5_812_000_000) == "5.81 GB"
    assert human_bytes(912_400_000) == "912.4 MB"
    assert human_bytes(512) == "512 B"


def test_pip_output_names_the_index_it_could_not_reach() -> None:
    """pip 23's own lines (connection refused on the extra index, then 'no version')."""
    from rs2sam_qgis.installer import unreachable_hosts

    lines = [
        "Looking in indexes: http://127.0.0.1:9/simple, http://127.0.0.1:8/whl/cpu",
        "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, "
        "status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3."
        "connection.HTTPConnection object at 0x7f>: Failed to establish a new connection: "
        "[Errno 111] Connection refused')': /whl/cpu/rs2sam-probe/",
        "ERROR: Could not find a version that satisfies the requirement x==1.0+cpu",
        "Could not fetch URL https://download.pytorch.org/whl/cpu/torch/: There was a problem",
    ]
    assert unreachable_hosts(lines) == [
        "http://127.0.0.1:8/whl/cpu",
        "https://download.pytorch.org/whl/cpu/torch/",
    ]
    assert unreachable_hosts(["Successfully installed x-1.0"]) == []

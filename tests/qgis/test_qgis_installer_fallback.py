"""The installer behind a PyPI-only mirror, in real QGIS, against a package index on 127.0.0.1.

pip's own configuration points at a local index that serves small wheels (PIP_INDEX_URL, as a
company mirror would be configured); the "CPU build" of the plan needs an extra index on a
closed port (what download.pytorch.org looks like from behind such a mirror). The dialog must
say so in one sentence, offer PyPI's own build with its measured size, install it, record
where it came from, and show it, with repair and removal, when opened again.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from local_index import LocalIndex, closed_port_url, make_wheel
from qgis_helpers import wait_for

pytestmark = pytest.mark.qgis


def _report():
    from rs2sam_qgis.deps import DependencyReport

    return DependencyReport(
        missing=["rs2sam_probe"], problems=["missing Python packages: rs2sam_probe"]
    )


def _factory(target: Path, cpu_index: str):
    """cpu: ``rs2sam_probe==1.0+cpu`` from an extra index (closed); pypi: the index's own."""
    from rs2sam_qgis.install_plan import InstallPlan, pip_step
    from rs2sam_qgis.interpreter import qgis_python
    from rs2sam_qgis.private_site import staging_dir

    def plan(variant: str) -> InstallPlan:
        python = qgis_python().path
        staging = staging_dir(target)
        if variant == "pypi":
            reqs, options = ["rs2sam_probe==1.0"], ["--no-cache-dir"]
        else:
            reqs = ["rs2sam_probe==1.0+cpu"]
            options = ["--no-cache-dir", "--retries", "1", "--extra-index-url", cpu_index]
        step = pip_step("Installing the probe", python, staging, reqs, options)
        return InstallPlan(python, target, staging, (step,), tuple(reqs), torch_variant=variant)

    return plan


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "rs2sam_probe", "1.0", requires=("rs2sam_dep",))
    make_wheel(wheels, "rs2sam_dep", "3.0")
    index = LocalIndex(wheels)
    # pip's own configuration: this index only (no config file, no find-links of the machine)
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    yield index, wheels
    index.close()


def test_blocked_cpu_index_offers_pypi_build_with_measured_size_and_installs(
    qgis_iface, tmp_path, mirror
) -> None:
    from rs2sam_qgis.installer_dialog import InstallerDialog
    from rs2sam_qgis.installer_record import read_record
    from rs2sam_qgis.installer_sizes import human_bytes

    index, wheels = mirror
    cpu_index = closed_port_url("/whl/cpu")
    target = tmp_path / "deps" / sys.implementation.cache_tag
    dialog = InstallerDialog(_report(), _factory(target, cpu_index), parent=qgis_iface.mainWindow())
    dialog.variant_combo.setCurrentIndex(dialog.variant_combo.findData("cpu"))
    dialog.show()
    try:
        assert wait_for(lambda: dialog.variant == "pypi" and not dialog.checking, 60)
        text = dialog.index_label.text()
        # one sentence: which index, that it cannot be reached, why that may be
        assert (
            f"The PyTorch CPU package index ({cpu_index}) cannot be reached from this computer "
            "(connection refused): a proxy or a PyPI-only mirror may block it." in text
        ), text
        assert f"Packages come from {index.url} (PIP_INDEX_URL)" in text  # pip's own setting
        size = sum(w.stat().st_size for w in wheels.glob("*.whl"))
        assert "PyPI's own build" in dialog.size_label.text()
        assert f"Download: {human_bytes(size)} in 2 files" in dialog.size_label.text()
        assert "rs2sam_probe==1.0\n" in dialog.plan_view.toPlainText() + "\n"
        dialog.install_button.click()
        assert wait_for(lambda: dialog.state != "installing", 120), dialog.log_view.toPlainText()
        assert dialog.state == "done", dialog.log_view.toPlainText()[-3000:]
        assert (target / "rs2sam_probe" / "__init__.py").is_file()
        assert (target / "rs2sam_dep").is_dir()
        record = read_record(target)
        assert record is not None and record.variant == "pypi"
        assert record.index_url == index.url and record.index_source == "PIP_INDEX_URL"
        assert record.size_bytes > 0 and record.folder == str(target)
        assert "Restart QGIS" in dialog.status_label.text()
    finally:
        dialog.close()

    # opened again: what is installed, where, how big; repair and remove
    again = InstallerDialog(_report(), _factory(target, cpu_index), parent=qgis_iface.mainWindow())
    try:
        shown = again.installed_label.text()
        assert str(target) in shown and human_bytes(record.size_bytes) in shown
        assert index.url in shown and "PyPI's own build" in shown
        assert again.install_button.text() == "Repair (install again)"
        assert again.remove_button.isEnabled()
        asked: list[str] = []
        again.confirm = lambda question: asked.append(question) or True
        assert again.remove_installed()
        assert asked and str(target) in asked[0]
        assert not target.exists()
        assert again.installed_label.isHidden() and again.remove_button.isHidden()
        assert again.install_button.text() == "Install" or again.state == "missing"
    finally:
        again.close()


def test_unreachable_index_in_a_failed_install_is_named(qgis_iface, tmp_path, mirror) -> None:
    """When pip itself cannot reach an index, the failure says which one, not 'no version'."""
    from rs2sam_qgis.installer_dialog import InstallerDialog

    cpu_index = closed_port_url("/whl/cpu")
    target = tmp_path / "deps" / sys.implementation.cache_tag
    plans = _factory(target, cpu_index)
    dialog = InstallerDialog(_report(), lambda _v: plans("cpu"), parent=qgis_iface.mainWindow())
    dialog.show()
    try:
        dialog.start_install()  # before the check could offer anything else
        assert wait_for(lambda: dialog.state != "installing", 120)
        assert dialog.state == "failed"
        status = dialog.status_label.text()
        assert f"the package index {cpu_index} could not be reached" in status, status
        assert not target.exists()
    finally:
        dialog.close()

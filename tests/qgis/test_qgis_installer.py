"""The dependency installer dialog in real QGIS: missing, installing, done, failed, cancelled.

The install itself is real: QGIS's resolved interpreter runs ``pip install --target`` in a
QProcess. "done" installs a tiny pure-Python package from PyPI (skipped when PyPI cannot be
reached) and a hand-made wheel from a local folder (always); "failed" asks a local, empty index
for a package that does not exist.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from qgis_helpers import ROOT, wait_for

pytestmark = pytest.mark.qgis

PYPI_PACKAGE = ("tomli-w==1.2.0", "tomli_w")


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


def _report(missing=("sam2",)):
    from rs2sam_qgis.deps import DependencyReport

    return DependencyReport(
        missing=list(missing),
        problems=[f"missing Python packages: {', '.join(missing)}"],
        numpy_pin="numpy>=1.24.4,<2",
    )


def _small_plan(target: Path, requirements: list[str], options: tuple[str, ...] = ()):
    from rs2sam_qgis.install_plan import InstallPlan, pip_step
    from rs2sam_qgis.interpreter import qgis_python
    from rs2sam_qgis.private_site import staging_dir

    python = qgis_python().path
    staging = staging_dir(target)
    step = pip_step("Installing a small package", python, staging, requirements, options)
    return InstallPlan(python, target, staging, (step,), tuple(requirements))


def _dialog(plan_factory, qgis_iface):
    from rs2sam_qgis.installer_dialog import InstallerDialog

    dialog = InstallerDialog(_report(), plan_factory, parent=qgis_iface.mainWindow())
    states: list[str] = []
    dialog.state_changed.connect(states.append)
    dialog.show()
    return dialog, states


def _wheel(folder: Path, name: str = "rs2sam_probe", version: str = "1.0") -> Path:
    """A minimal valid pure-Python wheel (py3-none-any) with one module."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"VALUE = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


def _import_after_restart(deps_root: Path, module: str) -> str:
    """A fresh interpreter imports the plugin package (as QGIS does at start-up), then
    ``module``: prints where it came from."""
    env = {**os.environ, "RS2SAM_DEPS_DIR": str(deps_root), "PYTHONPATH": str(ROOT)}
    code = f"import rs2sam_qgis, {module}; print({module}.__file__)"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_missing_state_shows_why_the_pinned_set_and_the_commands(qgis_iface, tmp_path) -> None:
    from rs2sam_qgis.install_plan import backend_plan

    target = tmp_path / "deps" / "cpython-311"
    dialog, _ = _dialog(lambda v: backend_plan(_report(), v, target=target), qgis_iface)
    try:
        assert dialog.state == "missing"
        assert "missing Python packages: sam2" in dialog.why_label.text()
        plan_text = dialog.plan_view.toPlainText()
        for pin in ("sam2==1.1.0", "open_clip_torch==3.3.0", "numpy>=1.24.4,<2", "attrs>=23.2"):
            assert pin in plan_text, pin
        assert f"--target {target}" in plan_text  # terminal commands write the final folder
        assert str(target) in dialog.where_label.text()
        assert dialog.install_button.isEnabled() and not dialog.cancel_button.isEnabled()
        # the user can choose the torch build; the plan follows
        index = dialog.variant_combo.findData("cpu")
        dialog.variant_combo.setCurrentIndex(index)
        assert dialog.plan.torch_variant == "cpu"
        if sys.platform.startswith("linux"):
            assert "torch==2.14.1+cpu" in dialog.plan_view.toPlainText()
            dialog.variant_combo.setCurrentIndex(dialog.variant_combo.findData("cuda"))
            assert "torch==2.14.1\n" in dialog.plan_view.toPlainText()
    finally:
        dialog.close()


def test_local_wheel_installs_then_loads_at_the_next_start(qgis_iface, tmp_path) -> None:
    """done: installing -> done, staging swapped in, old contents replaced, import works."""
    wheels = tmp_path / "wheels"
    _wheel(wheels)
    root = tmp_path / "deps"
    target = root / sys.implementation.cache_tag
    (target / "old_marker").mkdir(parents=True)  # a previous install is replaced as a whole
    plan = _small_plan(target, ["rs2sam_probe==1.0"], ("--no-index", "--find-links", str(wheels)))
    dialog, states = _dialog(lambda _v: plan, qgis_iface)
    try:
        dialog.install_button.click()
        assert dialog.state == "installing" and dialog.cancel_button.isEnabled()
        assert not dialog.close_button.isEnabled()
        assert wait_for(lambda: dialog.state != "installing", 120), dialog.log_view.toPlainText()
        assert dialog.state == "done", dialog.status_label.text()
        assert states == ["installing", "done"]
        assert "Restart QGIS" in dialog.status_label.text()
        assert dialog.progress_bar.value() == dialog.progress_bar.maximum()
        assert "Successfully installed rs2sam_probe-1.0" in dialog.log_view.toPlainText()
        assert (target / "rs2sam_probe" / "__init__.py").is_file()
        assert not (target / "old_marker").exists() and not plan.staging.exists()
    finally:
        dialog.close()
    where = _import_after_restart(root, "rs2sam_probe")
    assert Path(where).parent == target / "rs2sam_probe"


@pytest.mark.skipif(not _pypi_reachable(), reason="PyPI (pypi.org:443) cannot be reached")
def test_real_package_from_pypi_with_qgis_python(qgis_iface, tmp_path) -> None:
    requirement, module = PYPI_PACKAGE
    root = tmp_path / "deps"
    target = root / sys.implementation.cache_tag
    # --isolated: ignore the machine's pip config (local mirrors), so the file comes from PyPI
    options = ("--isolated", "--no-cache-dir", "--index-url", "https://pypi.org/simple")
    plan = _small_plan(target, [requirement], options)
    dialog, states = _dialog(lambda _v: plan, qgis_iface)
    try:
        dialog.start_install()
        assert wait_for(lambda: dialog.state != "installing", 300), dialog.log_view.toPlainText()
        log = dialog.log_view.toPlainText()
        assert dialog.state == "done", log[-3000:]
        assert "Downloading tomli_w-1.2.0-py3-none-any.whl" in log, log
        assert "Successfully installed tomli-w-1.2.0" in log
    finally:
        dialog.close()
    assert Path(_import_after_restart(root, module)).is_relative_to(target)


def test_failed_install_keeps_the_old_folder_and_says_why(qgis_iface, tmp_path) -> None:
    empty = tmp_path / "empty_index"
    empty.mkdir()
    target = tmp_path / "deps" / "cpython-311"
    (target / "kept").mkdir(parents=True)
    plan = _small_plan(
        target, ["rs2sam-no-such-package==1.0"], ("--no-index", "--find-links", str(empty))
    )
    dialog, states = _dialog(lambda _v: plan, qgis_iface)
    try:
        dialog.install_button.click()
        assert wait_for(lambda: dialog.state != "installing", 120)
        assert dialog.state == "failed" and states == ["installing", "failed"]
        status = dialog.status_label.text()
        assert "Step 1 of 1 failed" in status and "rs2sam-no-such-package" in status, status
        assert (target / "kept").is_dir() and not plan.staging.exists()
        assert dialog.install_button.isEnabled() and dialog.install_button.text() == "Try again"
        assert dialog.close_button.isEnabled()
    finally:
        dialog.close()


def test_cancel_stops_the_process_and_installs_nothing(qgis_iface, tmp_path) -> None:
    from rs2sam_qgis.install_plan import InstallPlan, InstallStep
    from rs2sam_qgis.private_site import staging_dir

    target = tmp_path / "deps" / "cpython-311"
    staging = staging_dir(target)
    code = (
        "import os, sys, time; os.makedirs(sys.argv[1]); print('started', flush=True); "
        "time.sleep(120)"
    )
    step = InstallStep("A slow step", sys.executable, ("-c", code, str(staging)))
    plan = InstallPlan(sys.executable, target, staging, (step,), ())
    dialog, states = _dialog(lambda _v: plan, qgis_iface)
    try:
        dialog.install_button.click()
        assert wait_for(lambda: "started" in dialog.log_view.toPlainText().splitlines(), 60)
        assert staging.is_dir()
        dialog.cancel_button.click()
        assert wait_for(lambda: dialog.state != "installing", 30)
        assert dialog.state == "cancelled" and states == ["installing", "cancelled"]
        assert "nothing was installed" in dialog.status_label.text()
        assert not staging.exists() and not target.exists()
    finally:
        dialog.close()


def test_plugin_menu_and_dock_button_open_the_installer(plugin, qgis_iface, monkeypatch) -> None:
    import rs2sam_qgis.deps as deps

    real = deps._installed
    monkeypatch.setattr(deps, "_installed", lambda name: name != "sam2" and real(name))
    dock = plugin.show_dock()
    assert not dock.deps_box.isHidden()  # the check runs when the dock opens
    dock.install_button.click()
    dialog = plugin.installer
    assert dialog is not None and dialog.isVisible() and dialog.state == "missing"
    assert "sam2" in dialog.why_label.text()
    dialog.close()
    plugin.install_action.trigger()
    assert plugin.installer.isVisible()
    plugin.installer._on_finished("done", "x")
    plugin._on_install_state("done")
    assert "Restart QGIS" in dock.deps_label.text() and dock.install_button.isHidden()


def test_a_silent_step_still_reports_what_it_writes(qgis_iface, tmp_path) -> None:
    """pip prints nothing while it unpacks torch: the runner measures pip's temp folder and
    says so in the log and the status line until the step talks again."""
    from rs2sam_qgis.install_plan import InstallPlan, InstallStep
    from rs2sam_qgis.private_site import staging_dir

    target = tmp_path / "deps" / "cpython-311"
    staging = staging_dir(target)
    code = (
        "import os, sys, time; os.makedirs(sys.argv[1]); "
        "open(os.path.join(os.environ['TMPDIR'], 'blob'), 'wb').write(b'x' * 3_000_000); "
        "print('Installing collected packages: blob', flush=True); time.sleep(6); "
        "print('Successfully installed blob-1.0', flush=True)"
    )
    step = InstallStep("A quiet step", sys.executable, ("-c", code, str(staging)))
    plan = InstallPlan(sys.executable, target, staging, (step,), ())
    dialog, _states = _dialog(lambda _v: plan, qgis_iface)
    statuses: list[str] = []
    dialog.runner.progress.connect(lambda _f, text: statuses.append(text))
    try:
        dialog.install_button.click()
        assert wait_for(lambda: dialog.state != "installing", 60)
        assert dialog.state == "done", dialog.status_label.text()
        quiet = [s for s in statuses if "still working" in s]
        assert quiet and "3.0 MB written so far" in quiet[0], statuses
        assert quiet[0].startswith("Installing collected packages: blob")
        log = dialog.log_view.toPlainText()
        assert "[Installing collected packages: blob — still working" in log
        assert not (tmp_path / "deps" / "cpython-311.tmp").exists()  # pip's temp folder is gone
    finally:
        dialog.close()

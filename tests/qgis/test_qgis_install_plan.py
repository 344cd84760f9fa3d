"""The installer's plan: exact pins, numpy at QGIS's ABI, torch CPU/CUDA per platform, --target."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis


def test_numpy_pin_keeps_the_abi_major_and_never_downgrades() -> None:
    from rs2sam_qgis.deps import NUMPY_1_PIN, numpy_pin

    assert numpy_pin("1.24.2", True) == "numpy>=1.24.4,<2"  # Debian 12: sam2's floor, <2
    assert numpy_pin("1.26.4", True) == "numpy>=1.26.4,<2"
    assert numpy_pin("2.1.3", True) == "numpy>=2.1.3,<3"  # GDAL built for NumPy 2
    assert numpy_pin("2.1.3", False) == NUMPY_1_PIN  # GDAL built for 1.x fails with numpy 2
    assert numpy_pin("", True) == NUMPY_1_PIN


@pytest.mark.parametrize(
    ("platform", "variant", "torch", "index"),
    [
        ("linux", "cpu", "torch==2.14.1+cpu", "https://download.pytorch.org/whl/cpu"),
        ("linux", "cuda", "torch==2.14.1", None),
        ("win32", "cpu", "torch==2.14.1", None),
        ("win32", "cuda", "torch==2.14.1+cu128", "https://download.pytorch.org/whl/cu128"),
        ("darwin", "cpu", "torch==2.14.1", None),
    ],
)
def test_backend_plan_per_platform(platform, variant, torch, index, tmp_path) -> None:
    from rs2sam_qgis.deps import DependencyReport
    from rs2sam_qgis.install_plan import backend_plan

    report = DependencyReport(missing=["torch", "sam2"], numpy_pin="numpy>=1.24.4,<2")
    target = tmp_path / "cpython-311"
    plan = backend_plan(report, variant, python="/q/python3", target=target, platform=platform)
    tools, packages, sam2 = plan.steps
    assert all(s.program == "/q/python3" and s.arguments[:3] == ("-m", "pip", "install")
               for s in plan.steps)
    assert packages.arguments[packages.arguments.index("--target") + 1] == str(plan.staging)
    assert plan.staging != target and plan.staging.parent == target.parent
    assert torch in packages.arguments and "numpy>=1.24.4,<2" in packages.arguments
    assert "attrs>=23.2" in packages.arguments and "open_clip_torch==3.3.0" in packages.arguments
    assert ("--extra-index-url" in packages.arguments) == (index is not None)
    if index:
        assert packages.arguments[packages.arguments.index("--extra-index-url") + 1] == index
    assert sam2.arguments[-1] == "sam2==1.1.0" and "--no-build-isolation" in sam2.arguments
    assert sam2.env["SAM2_BUILD_CUDA"] == "0"
    assert sam2.env["PYTHONPATH"].startswith(str(plan.staging))
    assert "setuptools>=70.1" in tools.arguments and plan.scratch
    assert plan.requirements[-1] == "sam2==1.1.0"
    # the terminal version writes straight into the private folder
    text = "\n".join(plan.shell_commands(platform))
    assert str(plan.staging) not in text and str(target) in text
    if platform == "win32":
        assert 'set "SAM2_BUILD_CUDA=0" && ' in text


def test_cuda_is_not_offered_on_macos_and_detected_elsewhere() -> None:
    from rs2sam_qgis.install_plan import default_torch_variant, torch_requirements, torch_variants

    assert torch_variants("darwin") == ("cpu",)
    assert default_torch_variant("darwin", has_cuda=True) == "cpu"
    assert default_torch_variant("linux", has_cuda=True) == "cuda"
    assert default_torch_variant("win32", has_cuda=False) == "cpu"
    with pytest.raises(ValueError, match="not available"):
        torch_requirements("cuda", "darwin")


def test_private_folder_is_per_interpreter_and_activated_first(tmp_path, monkeypatch) -> None:
    import sys

    from rs2sam_qgis import private_site

    monkeypatch.setenv("RS2SAM_DEPS_DIR", str(tmp_path))
    folder = private_site.deps_dir()
    assert folder == tmp_path / sys.implementation.cache_tag
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert private_site.activate() is None  # nothing installed: sys.path untouched
    pending = private_site.pending_dir(folder)
    (pending / "probe_pkg").mkdir(parents=True)
    (pending / "probe_pkg" / "__init__.py").write_text("VALUE = 7\n")
    (pending / "extra.pth").write_text(str(tmp_path / "from_pth") + "\n")
    (tmp_path / "from_pth").mkdir()
    assert private_site.activate() == folder  # the pending install is promoted first
    assert not pending.exists() and (folder / "probe_pkg").is_dir()
    assert sys.path[:2] == [str(folder), str(tmp_path / "from_pth")]
    assert private_site.activate() == folder and sys.path.count(str(folder)) == 1
    import importlib

    assert importlib.import_module("probe_pkg").VALUE == 7
    sys.modules.pop("probe_pkg", None)
    assert Path(private_site.staging_dir(folder)).name.endswith(".staging")

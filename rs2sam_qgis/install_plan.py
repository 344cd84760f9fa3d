"""What the dependency installer runs: exact pinned requirements and pip command lines (pure).

Every step runs QGIS's own interpreter (:mod:`.interpreter`) as ``python -m pip install
--target <staging folder>``: ``--target`` never touches the system site-packages (and is allowed
on PEP 668 "externally managed" Pythons such as Debian's). The staging folder becomes the private
package folder (:mod:`.private_site`) only when every step succeeded.

Steps of the backend plan:

1. build tools (setuptools, wheel) into a throw-away folder: sam2 is built from its sdist;
2. the pinned set: torch + torchvision (CPU or CUDA build), open_clip, rasterio, ... with numpy
   kept at the ABI major QGIS's GDAL was built for;
3. sam2 with ``--no-deps --no-build-isolation`` (its build imports torch from step 2) and
   ``SAM2_BUILD_CUDA=0`` (its CUDA extension is only used for hole filling, not needed).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .i18n import tr
from .interpreter import qgis_python
from .pins import EXTRA_PINS, REQUIRED, SAM2_REQUIREMENT
from .private_site import deps_dir, staging_dir


class PinnedReport(Protocol):
    """What a plan needs of the dependency check (:class:`.deps.DependencyReport`)."""

    numpy_pin: str

TORCH_VARIANTS = ("cpu", "cuda")
FALLBACK_VARIANT = "pypi"
"""PyPI's own torch build: offered when the PyTorch index of a variant cannot be reached."""
PYTORCH_INDEX = "https://download.pytorch.org/whl"
CUDA_WHEEL_TAG = "cu128"
"""CUDA build of the pinned torch on download.pytorch.org for Windows (Linux uses PyPI's)."""

BUILD_TOOLS = ("setuptools>=70.1", "wheel")
PIP_FLAGS = ("--disable-pip-version-check", "--no-input", "--progress-bar", "off")


@dataclass(frozen=True)
class InstallStep:
    """One process of an install.

    Attributes:
        title: What the step does, for the dialog ("Installing torch, …").
        program: Executable (QGIS's interpreter).
        arguments: Its arguments.
        env: Extra environment variables; a value containing ``{PYTHONPATH}`` is expanded with
            the inherited ``PYTHONPATH`` (or "") when the step starts.
    """

    title: str
    program: str
    arguments: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def shell_command(
        self, platform: str = sys.platform, replace: tuple[str, str] = ("", "")
    ) -> str:
        """The step as one line for a terminal (cmd.exe syntax on Windows).

        Args:
            platform: ``sys.platform`` value.
            replace: ``(old, new)`` substring replaced in arguments and environment (the plan
                points a terminal at the final folder instead of the staging folder).
        """
        windows = platform.startswith("win")
        sep = ";" if windows else ":"

        def fix(text: str) -> str:
            return text.replace(*replace) if replace[0] else text

        quote = _quote_cmd if windows else shlex.quote
        command = " ".join(quote(fix(a)) for a in (self.program, *self.arguments))
        env = {k: fix(v.replace("{PYTHONPATH}", "")).strip(sep) for k, v in self.env.items()}
        if not env:
            return command
        if windows:
            return " && ".join([*(f'set "{k}={v}"' for k, v in env.items()), command])
        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()), command])


@dataclass(frozen=True)
class InstallPlan:
    """Everything an install does, shown to the user before it starts.

    Attributes:
        python: QGIS's interpreter.
        target: The private package folder the result becomes.
        staging: Folder the steps write into (replaces ``target`` on success).
        steps: The processes, in order.
        requirements: The exact requirement set, for display.
        scratch: Folders to delete after the install, whatever the outcome.
        torch_variant: ``cpu`` or ``cuda`` ("" when torch is not part of the plan).
    """

    python: str
    target: Path
    staging: Path
    steps: tuple[InstallStep, ...]
    requirements: tuple[str, ...]
    scratch: tuple[Path, ...] = ()
    torch_variant: str = ""

    def shell_commands(self, platform: str = sys.platform) -> list[str]:
        """Every step as a terminal command, writing straight into :attr:`target`."""
        swap = (str(self.staging), str(self.target))
        return [step.shell_command(platform, swap) for step in self.steps]


def _quote_cmd(arg: str) -> str:
    """Quote one argument for cmd.exe (it has no single quotes)."""
    return f'"{arg}"' if any(c in arg for c in ' <>=|&^"') else arg


def cuda_available() -> bool:
    """True when an NVIDIA driver is installed (``nvidia-smi`` on PATH or in System32)."""
    if shutil.which("nvidia-smi"):
        return True
    if sys.platform.startswith("win"):
        system_root = os.environ.get("SystemRoot", r"C:\Windows")
        return Path(system_root, "System32", "nvidia-smi.exe").is_file()
    return False


def torch_variants(platform: str = sys.platform) -> tuple[str, ...]:
    """The torch builds that exist for ``platform`` (no CUDA on macOS)."""
    return ("cpu",) if platform == "darwin" else TORCH_VARIANTS


def default_torch_variant(platform: str = sys.platform, has_cuda: bool | None = None) -> str:
    """``cuda`` when an NVIDIA driver was detected (and the platform has CUDA builds), else cpu."""
    has_cuda = cuda_available() if has_cuda is None else has_cuda
    return "cuda" if has_cuda and "cuda" in torch_variants(platform) else "cpu"


def torch_requirements(variant: str, platform: str = sys.platform) -> tuple[list[str], list[str]]:
    """Requirements and index options for torch + torchvision.

    Args:
        variant: ``cpu`` or ``cuda``; or ``pypi``: PyPI's own build from the index pip uses,
            the one that works behind a PyPI-only mirror (runs on a CPU everywhere; on Linux it
            is the large CUDA build).
        platform: ``sys.platform`` value.

    Returns:
        ``(requirements, pip_options)``. Local version labels (``+cpu``) make pip take the build
        from download.pytorch.org even though PyPI has the same version.

    Raises:
        ValueError: Unknown variant, or CUDA on macOS.
    """
    if variant == FALLBACK_VARIANT:
        return [REQUIRED["torch"], REQUIRED["torchvision"]], []
    if variant not in torch_variants(platform):
        raise ValueError(f"torch variant {variant!r} is not available on {platform}")
    torch, vision = REQUIRED["torch"], REQUIRED["torchvision"]
    linux = platform.startswith("linux")
    windows = platform.startswith("win")
    if variant == "cpu" and linux:  # PyPI's Linux torch is the (large) CUDA build
        return [f"{torch}+cpu", f"{vision}+cpu"], ["--extra-index-url", f"{PYTORCH_INDEX}/cpu"]
    if variant == "cuda" and windows:  # PyPI's Windows torch is CPU-only
        tag = CUDA_WHEEL_TAG
        return [f"{torch}+{tag}", f"{vision}+{tag}"], [
            "--extra-index-url",
            f"{PYTORCH_INDEX}/{tag}",
        ]
    return [torch, vision], []


def pip_step(
    title: str,
    python: str,
    target: Path,
    requirements: list[str] | tuple[str, ...],
    options: list[str] | tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> InstallStep:
    """``python -m pip install --target <target> [options] <requirements>``."""
    arguments = ("-m", "pip", "install", *PIP_FLAGS, "--target", str(target), *options)
    return InstallStep(title, python, (*arguments, *requirements), dict(env or {}))


def backend_plan(
    report: PinnedReport,
    torch_variant: str,
    *,
    python: str | None = None,
    target: Path | None = None,
    platform: str = sys.platform,
) -> InstallPlan:
    """The plan that installs the backend's complete pinned set.

    The whole set is installed even when only part of it is missing: ``pip --target`` resolves
    without looking at what QGIS's Python already has, so a partial set would pull unpinned
    versions of the rest (torch included).

    Args:
        report: The dependency check (gives the numpy pin).
        torch_variant: ``cpu`` or ``cuda``.
        python: Interpreter; default QGIS's (:func:`.interpreter.qgis_python`).
        target: Private folder; default :func:`.private_site.deps_dir`.
        platform: ``sys.platform`` value.

    Returns:
        The plan.
    """
    python = python or qgis_python().path
    target = target or deps_dir()
    staging = staging_dir(target)
    tools = target.with_name(target.name + ".buildtools")
    torch_reqs, index_options = torch_requirements(torch_variant, platform)
    others = [req for name, req in REQUIRED.items() if name not in ("torch", "torchvision")]
    requirements = [*torch_reqs, *others, *EXTRA_PINS, report.numpy_pin]
    sep = ";" if platform.startswith("win") else ":"
    steps = (
        pip_step(tr("Installing build tools (setuptools, wheel)"), python, tools, BUILD_TOOLS),
        pip_step(
            tr("Downloading and installing torch ({variant}), open_clip, rasterio, …").format(
                variant=torch_variant.upper()
            ),
            python,
            staging,
            requirements,
            ["--upgrade", *index_options],
        ),
        pip_step(
            tr("Building and installing sam2"),
            python,
            staging,
            [SAM2_REQUIREMENT],
            ["--no-deps", "--no-build-isolation"],
            env={
                "SAM2_BUILD_CUDA": "0",
                "PYTHONPATH": f"{staging}{sep}{tools}{sep}{{PYTHONPATH}}",
            },
        ),
    )
    return InstallPlan(
        python=python,
        target=target,
        staging=staging,
        steps=steps,
        requirements=(*requirements, SAM2_REQUIREMENT),
        scratch=(tools,),
        torch_variant=torch_variant,
    )

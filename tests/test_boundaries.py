"""The import-direction contract of style_and_layout.md, checked in fresh interpreters."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# module -> top-level packages that importing it must not load
BOUNDARIES: dict[str, tuple[str, ...]] = {
    "backend": ("qgis", "PyQt5", "torch", "rasterio", "sam2", "open_clip"),
    "backend.errors": ("qgis", "PyQt5", "torch", "rasterio"),
    "backend.types": ("qgis", "PyQt5", "torch", "rasterio"),
    "backend.pipeline": ("qgis", "PyQt5", "torch", "rasterio"),
    "backend.text.lexicon": ("qgis", "PyQt5", "torch", "rasterio", "numpy"),
    "backend.geo": ("qgis", "PyQt5", "torch", "sam2", "open_clip"),
    "backend.geo.tiling": ("qgis", "PyQt5", "torch", "rasterio"),
    "backend.geo.raster": ("qgis", "PyQt5", "torch", "sam2", "open_clip"),
    "backend.geo.vectorize": ("qgis", "PyQt5", "torch", "sam2", "open_clip"),
    "backend.model": ("qgis", "PyQt5", "rasterio"),
    "backend.model.configs": ("qgis", "PyQt5", "torch", "sam2", "open_clip", "rasterio"),
    "backend.model.segmenter": ("qgis", "PyQt5", "rasterio"),
    "training": ("qgis", "PyQt5"),
    "rs2sam_qgis": ("torch", "rasterio", "sam2", "open_clip"),
}


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize(("module", "forbidden"), sorted(BOUNDARIES.items()))
def test_import_boundaries(module: str, forbidden: tuple[str, ...]) -> None:
    if not _exists(module):
        pytest.fail(f"{module} does not exist; the layout of style_and_layout.md B2 requires it")
    code = textwrap.dedent(
        f"""
        import importlib, sys
        importlib.import_module({module!r})
        leaked = sorted(n for n in {forbidden!r} if n in sys.modules)
        print(",".join(leaked))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    leaked = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert leaked == "", f"importing {module} loads {leaked}"


def test_walk_imports_of_backend_geo_have_no_torch() -> None:
    """Importing every backend.geo module together still loads no torch."""
    geo = ROOT / "backend" / "geo"
    modules = sorted(f"backend.geo.{p.stem}" for p in geo.glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("False")


def test_model_package_never_imports_rasterio_or_qgis_in_source() -> None:
    """A static check as well: no import statement of rasterio/qgis anywhere in backend/model."""
    offenders = []
    for path in (ROOT / "backend" / "model").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")) and any(
                f" {bad}" in stripped or f" {bad}." in stripped for bad in ("rasterio", "qgis")
            ):
                offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert offenders == []


def test_training_never_imports_qgis_in_source() -> None:
    offenders = []
    for path in (ROOT / "training").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import qgis", "from qgis", "from PyQt5", "import PyQt5")):
                offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert offenders == []


# ---------------------------------------------------------------- import circles and sizes
PACKAGES = ("backend", "training", "rs2sam_qgis")
"""The packages whose internal imports must form no circle and whose rooms stay small."""

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 150

SIZE_ALLOWLIST: dict[str, int] = {}
"""Today's offenders (``path`` or ``path:function`` -> its current line count), which may only
shrink: a bigger count fails, and so does an entry that is within the limits again (delete it).
Empty: every module and function of the three packages is within the limits."""


def _package_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` of :data:`PACKAGES` under ``root``.

    The plugin zip's vendored copy (``rs2sam_qgis/libs``) is a build output and is skipped.
    """
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[:2] == ["rs2sam_qgis", "libs"]:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _import_graph(root: Path) -> dict[str, set[str]]:
    """Static import graph of the three packages: module -> the package modules it imports.

    Every ``import`` statement counts, wherever it is: at module level, inside a function (a
    lazy import still makes the lower module know the higher one) and under
    ``if TYPE_CHECKING:``. ``from a import b`` is an edge to ``a.b`` when that is a module, else
    to ``a``; importing ``a.b.c`` is an edge to ``a.b.c`` only (not to the parent packages'
    ``__init__``). Imports by string (``importlib.import_module``, the registries' lazy
    references) are not seen: that is how a registry looks a plug-in up without knowing it.
    """
    modules = _package_modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One import circle per strongly connected group, as ``[a, b, ..., a]`` (shortest)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    circles = []
    for group in groups:
        start = min(group)
        paths = {start: [start]}
        queue = [start]
        while queue:  # breadth first: the shortest way back to start inside the group
            node = queue.pop(0)
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    circles.append([*paths[node], start])
                    queue = []
                    break
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    queue.append(nxt)
    return sorted(circles)


def _oversized(root: Path) -> dict[str, int]:
    """``path`` -> lines of modules over the limit, ``path:function`` -> lines of functions."""
    found: dict[str, int] = {}
    for path in _package_modules(root).values():
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found[rel] = len(text.splitlines())
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    found[f"{rel}:{node.name}"] = max(lines, found.get(f"{rel}:{node.name}", 0))
    return found


def test_no_import_circles() -> None:
    """No module of backend/, training/, rs2sam_qgis/ imports (even lazily) one that imports it.

    The cure: move the shared names into a small module both sides import, or let the lower
    module stop knowing the higher one (the plug-in registers itself; the factory looks a name
    up).
    """
    circles = [" -> ".join(circle) for circle in _circles(_import_graph(ROOT))]
    assert circles == [], "import circles:\n" + "\n".join(circles)


def _size_problems(found: dict[str, int], allowlist: dict[str, int]) -> list[str]:
    """What is wrong with ``found`` (from :func:`_oversized`) given ``allowlist``."""
    problems = [
        f"{key}: {lines} lines, over the limit ({MAX_MODULE_LINES} a module, "
        f"{MAX_FUNCTION_LINES} a function): split it along its seams, in a commit of its own"
        for key, lines in sorted(found.items())
        if key not in allowlist
    ]
    for key, allowed in sorted(allowlist.items()):
        now = found.get(key, 0)
        if now > allowed:
            problems.append(f"{key}: grew from {allowed} to {now} lines (allowlisted offender)")
        elif now < allowed:
            problems.append(
                f"{key}: {now or 'within the limit'} (allowlisted at {allowed}): "
                "lower or delete its SIZE_ALLOWLIST entry"
            )
    return problems


def test_modules_and_functions_stay_small() -> None:
    """Modules at most 400 lines, functions at most 150; the allowlist only shrinks."""
    problems = _size_problems(_oversized(ROOT), SIZE_ALLOWLIST)
    assert problems == [], "\n".join(problems)


def test_the_gates_see_circles_and_big_rooms(tmp_path: Path) -> None:
    """The two checks above can fail: a lazy circle, a relative one, a big module and function."""
    files = {
        "backend/__init__.py": "",
        "backend/a.py": "def f():\n    from .b import x\n    return x\n",
        "backend/b.py": "from backend.a import f\nx = 1\n",
        "backend/c/__init__.py": "from . import d\n",
        "backend/c/d.py": "from .. import c\n",
        "backend/e.py": "from .a import f\n",
        "training/__init__.py": "",
        "rs2sam_qgis/__init__.py": "",
        "rs2sam_qgis/big.py": "def g():\n" + "    y = 1\n" * 150 + "\n" * 300,
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = _import_graph(tmp_path)
    assert graph["backend.e"] == {"backend.a"}
    assert _circles(graph) == [
        ["backend.a", "backend.b", "backend.a"],
        ["backend.c", "backend.c.d", "backend.c"],
    ]
    found = _oversized(tmp_path)
    assert found == {"rs2sam_qgis/big.py": 451, "rs2sam_qgis/big.py:g": 151}
    assert _size_problems(found, {"rs2sam_qgis/big.py": 451, "rs2sam_qgis/big.py:g": 151}) == []
    assert len(_size_problems(found, {"rs2sam_qgis/big.py": 451})) == 1  # a new offender
    assert "grew" in _size_problems(found, {**found, "rs2sam_qgis/big.py": 450})[0]
    assert "lower or delete" in _size_problems(found, {**found, "backend/gone.py": 420})[0]

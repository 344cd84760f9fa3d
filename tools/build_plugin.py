"""Build the installable QGIS plugin zip: ``dist/rs2sam_qgis.zip`` (what ``make plugin`` runs).

Layout of the zip (one top-level folder, as plugins.qgis.org and "Install from ZIP" require)::

    rs2sam_qgis/
        __init__.py, plugin.py, ...      the plugin (GUI only)
        metadata.txt, LICENSE            from the repository root
        icons/segment_by_text.svg
        libs/__init__.py
        libs/backend/...                 the QGIS-free backend, vendored (weights included)
        libs/training/...                the training package (the adaptation engine), vendored

The vendored backend is imported as ``rs2sam_qgis.libs.backend`` (see ``rs2sam_qgis/_backend.py``),
so it cannot collide with another package named ``backend``. Absolute ``backend.`` imports inside
the backend (``from backend.x import y`` and dotted module names in strings such as
``importlib.import_module("backend.pipeline")``) are rewritten to that name; every rewrite is
printed. An ``import backend.x`` without ``as`` cannot be rewritten safely and fails the build.

After building, Bandit (the scanner plugins.qgis.org blocks uploads on) runs on the staged folder
unless ``--no-bandit`` is given; any finding fails the build.

Usage::

    python tools/build_plugin.py --out dist/rs2sam_qgis.zip [--stage build/plugin] [--no-bandit]
"""

from __future__ import annotations

import argparse
import ast
import configparser
import os
import re
import shutil
import subprocess  # nosec B404 - runs the bandit CLI of this venv with a fixed argument list
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = "rs2sam_qgis"
VENDORED = f"{PLUGIN}.libs.backend"
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "libs", "i18n_src"}
SKIP_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".swp"}
_DOTTED_BACKEND = re.compile(r"^backend(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class BuildError(Exception):
    """The plugin cannot be built; the message says why."""


def _copy_tree(src: Path, dst: Path, skip_dirs: set[str]) -> list[Path]:
    """Copy regular files of ``src`` into ``dst`` (no symlinks, no caches); return the copies."""
    copied = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in skip_dirs or part.startswith(".") for part in rel.parts):
            continue
        if path.is_symlink():
            raise BuildError(f"{path} is a symlink; QGIS plugin zips must not contain symlinks")
        if path.is_dir() or path.suffix in SKIP_SUFFIXES:
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied.append(target)
    return copied


def _backend_modules(backend_dir: Path) -> set[str]:
    """Dotted names of every module/package under the backend (``backend``, ``backend.geo``...)."""
    names = set()
    for path in backend_dir.rglob("*.py"):
        rel = path.relative_to(backend_dir.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return names


def _parse(path: Path) -> tuple[ast.Module, list[str]]:
    """``path``'s syntax tree and its lines (with their line ends).

    Raises:
        BuildError: A syntax error.
    """
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise BuildError(f"{path}: {exc}") from exc
    return tree, source.splitlines(keepends=True)


def rewrite_backend_imports(path: Path, modules: set[str]) -> list[str]:
    """Point absolute ``backend`` imports of one vendored file at ``rs2sam_qgis.libs.backend``.

    Args:
        path: A ``.py`` file inside the vendored backend (edited in place).
        modules: Dotted names of the backend's modules (from :func:`_backend_modules`).

    Returns:
        One line per rewrite (``file:line: old -> new``).

    Raises:
        BuildError: An import that cannot be rewritten safely (``import backend.x`` without
            ``as``), or a syntax error.
    """
    tree, lines = _parse(path)
    changes: list[str] = []
    edits: list[tuple[int, int, int, str]] = []  # (line, col, end_col, replacement) on one line
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "backend" or node.module.startswith("backend."):
                line = lines[node.lineno - 1]
                match = re.search(r"\bfrom\s+(backend)\b", line)
                if match is None:
                    raise BuildError(f"{path}:{node.lineno}: cannot rewrite {line.strip()!r}")
                edits.append((node.lineno, match.start(1), match.end(1), VENDORED))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "backend" or alias.name.startswith("backend."):
                    if alias.asname is None:
                        raise BuildError(
                            f"{path}:{node.lineno}: 'import {alias.name}' cannot be vendored; "
                            "use a relative import (from . import x) or 'import ... as name'"
                        )
                    line = lines[node.lineno - 1]
                    match = re.search(rf"\b({re.escape(alias.name)})\b", line)
                    if match is None:
                        raise BuildError(f"{path}:{node.lineno}: cannot rewrite {line.strip()!r}")
                    new = f"{PLUGIN}.libs.{alias.name}"
                    edits.append((node.lineno, match.start(1), match.end(1), new))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if _DOTTED_BACKEND.match(value) and value in modules and "." in value:
                if node.lineno != node.end_lineno:
                    raise BuildError(f"{path}:{node.lineno}: multi-line module string {value!r}")
                line = lines[node.lineno - 1]
                start = line.find(value, node.col_offset)
                if start < 0:
                    raise BuildError(f"{path}:{node.lineno}: cannot locate {value!r}")
                edits.append((node.lineno, start, start + len(value), f"{PLUGIN}.libs.{value}"))
    for lineno, start, end, new in sorted(edits, key=lambda e: (e[0], -e[1])):
        line = lines[lineno - 1]
        changes.append(f"{path.name}:{lineno}: {line[start:end]} -> {new}")
        lines[lineno - 1] = line[:start] + new + line[end:]
    if edits:
        path.write_text("".join(lines), encoding="utf-8")
    return changes


def rewrite_training_imports(path: Path) -> list[str]:
    """Point absolute ``training`` imports of one vendored file at ``rs2sam_qgis.libs.training``.

    The vendored ``training`` package is the adaptation engine (``training.adapt``) that the
    plugin's "Adapt the model" algorithm and "Teach" action run; its ``backend`` imports are
    rewritten by :func:`rewrite_backend_imports`.

    Raises:
        BuildError: ``import training.x`` without ``as``, or a syntax error.
    """
    tree, lines = _parse(path)
    edits: list[tuple[int, int, int]] = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.asname is not None]
            if any(a.asname is None and (a.name == "training" or a.name.startswith("training."))
                   for a in node.names):
                raise BuildError(f"{path}:{node.lineno}: 'import training...' cannot be vendored")
        if any(n == "training" or n.startswith("training.") for n in names):
            line = lines[node.lineno - 1]
            match = re.search(r"\b(training)\b", line)
            if match is None:
                raise BuildError(f"{path}:{node.lineno}: cannot rewrite {line.strip()!r}")
            edits.append((node.lineno, match.start(1), match.end(1)))
    changes = []
    for lineno, start, end in sorted(edits, key=lambda e: (e[0], -e[1])):
        line = lines[lineno - 1]
        changes.append(f"{path.name}:{lineno}: training -> {PLUGIN}.libs.training")
        lines[lineno - 1] = line[:start] + f"{PLUGIN}.libs.training" + line[end:]
    if edits:
        path.write_text("".join(lines), encoding="utf-8")
    return changes


def _check_metadata(metadata: Path, plugin_dir: Path) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(metadata, encoding="utf-8")
    if not parser.has_section("general"):
        raise BuildError(f"{metadata}: no [general] section")
    general = parser["general"]
    required = (
        "name",
        "qgisMinimumVersion",
        "description",
        "about",
        "version",
        "author",
        "email",
        "repository",
    )
    missing = [key for key in required if not general.get(key, "").strip()]
    if missing:
        raise BuildError(f"{metadata}: missing required keys {missing}")
    icon = general.get("icon", "").strip()
    if icon and not (plugin_dir / icon).is_file():
        raise BuildError(f"{metadata}: icon={icon} does not exist in the plugin folder")


def build(out: Path, stage_root: Path) -> tuple[Path, list[str]]:
    """Stage the plugin folder and zip it.

    Args:
        out: The zip to write.
        stage_root: Folder in which ``rs2sam_qgis/`` is staged (emptied first).

    Returns:
        ``(staged plugin folder, import rewrites)``.
    """
    stage = stage_root / PLUGIN
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    _copy_tree(ROOT / PLUGIN, stage, SKIP_DIRS)
    for name in ("metadata.txt", "LICENSE"):
        if not (ROOT / name).is_file():
            raise BuildError(f"{ROOT / name} is missing")
        shutil.copy2(ROOT / name, stage / name)
    _check_metadata(stage / "metadata.txt", stage)

    libs = stage / "libs"
    libs.mkdir()
    (libs / "__init__.py").write_text(
        '"""Packages vendored into the plugin by tools/build_plugin.py (do not edit)."""\n',
        encoding="utf-8",
    )
    backend_src = ROOT / "backend"
    if not (backend_src / "__init__.py").is_file():
        raise BuildError(f"{backend_src} is not a package")
    _copy_tree(backend_src, libs / "backend", {"__pycache__", "tests"})
    modules = _backend_modules(backend_src)
    rewrites: list[str] = []
    for path in sorted((libs / "backend").rglob("*.py")):
        rewrites += rewrite_backend_imports(path, modules)

    _copy_tree(ROOT / "training", libs / "training", {"__pycache__", "configs", "refer"})
    for path in sorted((libs / "training").rglob("*")):  # the engine needs no shell scripts
        if path.suffix == ".sh":
            path.unlink()
    for path in sorted((libs / "training").rglob("*.py")):
        rewrites += rewrite_training_imports(path)
        rewrites += rewrite_backend_imports(path, modules)

    for path in stage.rglob("*.py"):  # a syntax error must fail the build, not QGIS start-up
        compile(path.read_text(encoding="utf-8"), str(path), "exec")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(stage.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo.from_file(path, arcname=str(path.relative_to(stage_root)))
                info.external_attr = 0o644 << 16  # plain files, no executable bits
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    os.replace(tmp, out)
    return stage, rewrites


def run_bandit(stage: Path) -> int:
    """Run Bandit on the staged plugin with the repo's ``.bandit.yaml``; return its exit code."""
    bandit = Path(sys.executable).with_name("bandit")
    if not bandit.exists():
        print("bandit is not installed in this venv; skipping the security scan", file=sys.stderr)
        return 0
    command = [str(bandit), "-q", "-r", str(stage), "-c", str(ROOT / ".bandit.yaml")]
    return subprocess.run(command, check=False).returncode  # nosec B603 - fixed argv, no shell


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / f"{PLUGIN}.zip")
    parser.add_argument(
        "--stage",
        type=Path,
        default=ROOT / "build" / "plugin",
        help="staging folder (the unzipped plugin ends up in STAGE/rs2sam_qgis)",
    )
    parser.add_argument("--no-bandit", action="store_true", help="skip the Bandit scan")
    args = parser.parse_args(argv)
    try:
        stage, rewrites = build(args.out.resolve(), args.stage.resolve())
    except BuildError as exc:
        print(f"build_plugin: {exc}", file=sys.stderr)
        return 2
    for line in rewrites:
        print(f"vendored import rewritten: {line}")
    files = [p for p in stage.rglob("*") if p.is_file()]
    print(
        f"{args.out}: {len(files)} files, {args.out.stat().st_size / 1e6:.2f} MB "
        f"(staged in {stage})"
    )
    weights = stage / "libs" / "backend" / "weights"
    print(
        "bundled weights: "
        + (
            ", ".join(sorted(p.name for p in weights.glob("*")))
            if weights.is_dir()
            else "none (backend/weights is absent)"
        )
    )
    if not args.no_bandit:
        code = run_bandit(stage)
        if code != 0:
            print("build_plugin: Bandit reported findings (see above)", file=sys.stderr)
            return code
        print("bandit: no findings")
    return 0


if __name__ == "__main__":
    sys.exit(main())

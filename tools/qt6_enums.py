"""Find Qt5-only short enum names (``Qt.AlignLeft``) in plugin code: PyQt6 needs the scoped form.

PyQt6 (QGIS 4) no longer puts enum members on the class: ``Qt.RightDockWidgetArea`` must be
written ``Qt.DockWidgetArea.RightDockWidgetArea``, ``QProcess.NotRunning`` as
``QProcess.ProcessState.NotRunning`` (QGIS's own PyQt5 -> PyQt6 migration script rewrites these
from an introspected enum table). The scoped form also works with PyQt5 >= 5.11 and QGIS 3.22,
so one spelling runs on both.

flake8-qgis (``QGS403``, run by ``make lint``) knows a hand-written list of such enums; this
check is complete for what the code uses: it imports every class the plugin imports from
``qgis.*`` / ``qgis.PyQt.*`` (under PyQt5) and flags each ``Class.member`` whose value is a
member of an enum type nested in that class. Run it with a Python that has QGIS::

    python tools/qt6_enums.py rs2sam_qgis        # prints file:line:col findings; exit 1 if any
    python tools/qt6_enums.py --fix rs2sam_qgis  # rewrites them to the scoped form
"""

from __future__ import annotations

import ast
import enum
import importlib
import sys
from pathlib import Path
from typing import Any


def _imported_names(tree: ast.Module) -> dict[str, tuple[str, str]]:
    """Local name -> (module, attribute) for ``from qgis... import X [as Y]``."""
    names: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("qgis"):
            for alias in node.names:
                names[alias.asname or alias.name] = (node.module, alias.name)
    return names


def _resolve(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


KEPT_BY_QGIS = frozenset({"QVariant"})
"""Classes whose short names QGIS keeps working on Qt6 builds: it patches ``QVariant.Int`` etc.
back in as their ``QMetaType.Type`` equivalents, and the ``QMetaType`` spelling needs QGIS 3.38
(``QgsField(name, QMetaType.Type.QString)``), so QGIS's own migration script leaves them alone
when the code must keep running on QGIS 3."""


def scoped_name(owner: Any, owner_name: str, attr: str) -> str | None:
    """``Owner.Enum.attr`` when ``owner.attr`` is a member of an enum nested in ``owner``."""
    if getattr(owner, "__name__", owner_name) in KEPT_BY_QGIS:
        return None
    member = getattr(owner, attr, None)
    if member is None or isinstance(member, type) or type(member) in (int, bool, str, float):
        return None
    etype = type(member)
    if not (issubclass(etype, int) or isinstance(member, enum.Enum)):
        return None
    nested = getattr(owner, etype.__name__, None)
    if nested is not etype or etype.__name__ == attr:
        return None
    return f"{owner_name}.{etype.__name__}.{attr}"


def _scan(source: str, filename: str) -> list[tuple[ast.Attribute, str]]:
    tree = ast.parse(source, filename=filename)
    imported = _imported_names(tree)
    owners = {local: _resolve(*where) for local, where in imported.items()}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
            continue
        owner = owners.get(node.value.id)
        if owner is None or not isinstance(owner, type):
            continue
        scoped = scoped_name(owner, node.value.id, node.attr)
        if scoped:
            found.append((node, scoped))
    return found


def check_source(source: str, filename: str = "<string>") -> list[str]:
    """Findings ``file:line:col: ... 'X.Enum.m' instead of 'X.m'`` for one module's source."""
    return [
        f"{filename}:{node.lineno}:{node.col_offset + 1}: Qt6 needs the scoped enum "
        f"'{scoped}' instead of '{node.value.id}.{node.attr}'"  # type: ignore[attr-defined]
        for node, scoped in _scan(source, filename)
    ]


def fix_source(source: str, filename: str = "<string>") -> str:
    """``source`` with every finding rewritten to its scoped form."""
    lines = source.splitlines(keepends=True)
    found = sorted(_scan(source, filename), key=lambda f: (f[0].lineno, f[0].col_offset))
    for node, scoped in reversed(found):
        line = lines[node.lineno - 1].encode("utf-8")  # ast offsets count UTF-8 bytes
        start, stop = node.col_offset, node.end_col_offset or node.col_offset
        lines[node.lineno - 1] = (line[:start] + scoped.encode() + line[stop:]).decode("utf-8")
    return "".join(lines)


def check_paths(paths: list[Path]) -> list[str]:
    """Findings for every ``*.py`` under ``paths``."""
    findings: list[str] = []
    for path in paths:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            findings += check_source(file.read_text(encoding="utf-8"), str(file))
    return findings


def main(argv: list[str] | None = None) -> int:
    """Print the findings; exit status 1 when there are any."""
    args = list(argv if argv is not None else sys.argv[1:])
    fix = "--fix" in args
    paths = [Path(a) for a in args if a != "--fix"] or [Path("rs2sam_qgis")]
    if fix:
        for path in paths:
            for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
                text = file.read_text(encoding="utf-8")
                fixed = fix_source(text, str(file))
                if fixed != text:
                    file.write_text(fixed, encoding="utf-8")
    findings = check_paths(paths)
    for line in findings:
        print(line)
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Markdown click-curve table from ``python -m training eval --clicks`` JSON lines.

Several files of one model (e.g. the same split scored in parts with ``--types``) are merged:
each group's mIoU, NoC@85 and reached@85 are n-weighted means over the files (so ``all`` of
the parts is ``all`` of their union; oIoU cannot be merged and is left out).

Usage::

    python tools/click_table.py before=a.json,b.json after=c.json,d.json \
        --groups all,class,instance
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def merge(paths: list[Path]) -> dict[str, dict[str, float]]:
    """``{group: {"n", "k0", "k1", ..., "noc", "reached"}}`` over the files."""
    acc: dict[str, dict[str, float]] = {}
    for path in paths:
        data = json.loads(path.read_text().strip().splitlines()[-1])
        for k, groups in data["clicks"].items():
            for g, m in groups.items():
                row = acc.setdefault(g, {"n": 0.0})
                row[f"k{k}"] = row.get(f"k{k}", 0.0) + m["mIoU"] * m["n"]
                if k == "0":
                    row["n"] += m["n"]
        for key, name in (("NoC@85", "noc"), ("reached@85", "reached")):
            for g, v in data.get(key, {}).items():
                n = data["clicks"]["0"][g]["n"] if g in data["clicks"]["0"] else 0
                acc.setdefault(g, {"n": 0.0})[name] = acc[g].get(name, 0.0) + v * n
    for row in acc.values():
        n = row["n"] or 1.0
        for key in list(row):
            if key != "n":
                row[key] /= n
    return acc


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; prints the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="+", help="label=file.json[,file2.json]")
    p.add_argument("--groups", default="all,class,instance")
    args = p.parse_args(argv)
    print("| model | group | n | 0 clicks | 1 | 3 | 5 | NoC@85 | reached 85 % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in args.models:
        label, _, files = spec.partition("=")
        rows = merge([Path(f) for f in files.split(",")])
        for g in args.groups.split(","):
            r = rows.get(g)
            if r is None:
                continue
            noc = f"{r['noc']:.2f}" if "noc" in r else "–"
            reached = f"{r['reached']:.1f}" if "reached" in r else "–"
            print(f"| {label} | {g} | {int(r['n'])} | {r['k0']:.2f} | {r['k1']:.2f} | "
                  f"{r['k3']:.2f} | {r['k5']:.2f} | {noc} | {reached} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Markdown tables of referring-segmentation metrics for one or more training runs.

Reads, per run folder, ``eval_nwpu.json`` / ``eval_dubai.json`` (``python -m training eval
--by-type`` output) when present, else the run's ``val_log.csv`` (the in-run validation on the
fixed val subsets) at the best epoch or at ``--epoch N``.

    .venv/bin/python tools/eval_table.py runs/nano_default_2h [runs/ablation30_no_bhfm ...] \
        [--epoch 2] [--full]

``--full`` prints one table per run with oIoU, mIoU and Pr@0.5-0.9 per data set and type;
the default prints one line per run with mIoU (oIoU) per data set and type.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

SETS = ("nwpu", "dubai")
TYPES = ("all", "class", "unique", "position", "ordinal", "size", "relation")
KEYS = ("oIoU", "mIoU", "Pr@0.5", "Pr@0.6", "Pr@0.7", "Pr@0.8", "Pr@0.9", "n")


def load_run(run: Path, epoch: int | None = None) -> tuple[dict[str, dict[str, dict[str, float]]],
                                                             str]:
    """``{set: {type: metrics}}`` and a note on where the numbers come from."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    if epoch is None and all((run / f"eval_{s}.json").is_file() for s in SETS):
        for s in SETS:
            data = json.loads((run / f"eval_{s}.json").read_text())
            groups = {"all": {k: data[k] for k in KEYS if k in data}}
            groups.update(data.get("by_type", {}))
            out[s] = groups
        return out, "full val splits (python -m training eval)"
    rows = list(csv.DictReader(open(run / "val_log.csv", newline="")))
    if not rows:
        raise SystemExit(f"{run}: no validation rows yet")
    if epoch is None:
        by_epoch: dict[int, float] = {}
        for r in rows:
            if r["group"] == "all":
                by_epoch[int(r["epoch"])] = by_epoch.get(int(r["epoch"]), 0.0) + float(r["score"])
        epoch = max(by_epoch, key=lambda e: by_epoch[e])
    for r in rows:
        if int(r["epoch"]) == epoch:
            out.setdefault(r["set"], {})[r["group"]] = {k: float(r[k]) for k in KEYS if k in r}
    step = next(r["global_step"] for r in rows if int(r["epoch"]) == epoch)
    return out, f"in-run val subsets, epoch {epoch} (step {step})"


def _cell(m: dict[str, float] | None) -> str:
    if not m:
        return "–"
    return f"{m['mIoU']:.1f} ({m['oIoU']:.1f})"


def summary(runs: list[Path], epoch: int | None) -> str:
    """One line per run: mIoU (oIoU) per set and type."""
    cols = [(s, t) for s in SETS for t in TYPES]
    head = "| run | source | " + " | ".join(f"{s} {t}" for s, t in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for run in runs:
        data, note = load_run(run, epoch)
        cells = [_cell(data.get(s, {}).get(t)) for s, t in cols]
        lines.append(f"| {run.name} | {note} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def full(run: Path, epoch: int | None) -> str:
    """All metrics of one run, per set and type."""
    data, note = load_run(run, epoch)
    lines = [f"{run.name}: {note}", "", "| set | type | " + " | ".join(KEYS) + " |",
             "|" + "---|" * (len(KEYS) + 2)]
    for s in SETS:
        for t in TYPES:
            m: dict[str, Any] | None = data.get(s, {}).get(t)
            if m:
                vals = [f"{int(m[k])}" if k == "n" else f"{m[k]:.2f}" for k in KEYS]
                lines.append(f"| {s} | {t} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def main() -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--epoch", type=int, default=None, help="val_log epoch (default: best)")
    p.add_argument("--full", action="store_true", help="one detailed table per run")
    a = p.parse_args()
    if a.full:
        print("\n\n".join(full(r, a.epoch) for r in a.runs))
    else:
        print(summary(a.runs, a.epoch))


if __name__ == "__main__":
    main()

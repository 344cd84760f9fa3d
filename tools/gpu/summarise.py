"""Summary of a tools/gpu/train_default.sh run: steps, training speed, val metrics vs targets.

    python tools/gpu/summarise.py --run RUN --work WORK --out summary.json [--print]

Reads ``RUN/train_log.csv``, ``RUN/metrics.json``, ``WORK/steps.jsonl`` and
``WORK/evals/eval_<checkpoint>_<set>.json`` (the ``python -m training eval --by-type`` lines);
writes what it finds (missing pieces are reported, never fatal). The headline rows are the
issue's: NWPU class-level mIoU, NWPU instance-level mIoU (position, ordinal, size, relation,
weighted by n) and Dubai class-level mIoU, beside the shipped CPU run and the targets.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

INSTANCE_TYPES = ("position", "ordinal", "size", "relation")
# the shipped CPU default (docs/model_card.md, 2026-12-05)
CPU_RUN = {"nwpu_class": 37.7, "nwpu_instance": 13.4, "dubai_class": 48.5}
TARGETS = {"nwpu_class": 50.0, "nwpu_instance": 35.0, "dubai_class": 55.0}  # issue 16


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def headline(evals: dict[str, Any]) -> dict[str, float | None]:
    """The issue's three rows from one checkpoint's ``{set: eval JSON}``."""
    out: dict[str, float | None] = {"nwpu_class": None, "nwpu_instance": None,
                                    "dubai_class": None}
    nwpu, dubai = evals.get("nwpu") or {}, evals.get("dubai") or {}
    by_type = nwpu.get("by_type", {})
    if "class" in by_type:
        out["nwpu_class"] = by_type["class"]["mIoU"]
    rows = [by_type[t] for t in INSTANCE_TYPES if t in by_type]
    n = sum(r["n"] for r in rows)
    if n:
        out["nwpu_instance"] = round(sum(r["mIoU"] * r["n"] for r in rows) / n, 2)
    if "class" in dubai.get("by_type", {}):
        out["dubai_class"] = dubai["by_type"]["class"]["mIoU"]
    return out


def train_stats(run: Path) -> dict[str, Any]:
    """Steps, samples, speed and the last logged losses of the run."""
    path = run / "train_log.csv"
    if not path.is_file():
        return {"train_log": "missing"}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {"train_log": "empty"}
    speeds = [float(r["samples_per_s"]) for r in rows[1:]] or [float(rows[0]["samples_per_s"])]
    last = rows[-1]
    return {"global_step": int(last["global_step"]), "samples": int(last["samples"]),
            "epoch": int(last["epoch"]), "train_elapsed_s": float(last["elapsed_s"]),
            "samples_per_s_median": round(statistics.median(speeds), 1),
            "samples_per_s_max": round(max(speeds), 1),
            "last": {k: last.get(k) for k in ("loss", "bce", "dice", "boundary", "text_weight",
                                               "lr_new")},
            "exports": sorted(p.name for p in run.glob("*.safetensors"))}


def main() -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget", type=float, default=0)
    p.add_argument("--t0", type=float, default=0)
    p.add_argument("--print", action="store_true", help="print a table and a SUMMARY line")
    a = p.parse_args()

    steps = []
    steps_file = a.work / "steps.jsonl"
    if steps_file.is_file():
        steps = [json.loads(ln) for ln in steps_file.read_text().splitlines() if ln.strip()]
    evals: dict[str, dict[str, Any]] = {}
    for f in sorted((a.work / "evals").glob("eval_*.json")):
        data = _read_json(f)
        ck, _, tag = f.stem.removeprefix("eval_").rpartition("_")
        if data is not None:
            evals.setdefault(ck, {})[tag] = data
    summary = {
        "elapsed_s": round(time.time() - a.t0, 1) if a.t0 else None, "budget_s": a.budget,
        "steps": steps, "train": train_stats(a.run), "metrics_json": _read_json(
            a.run / "metrics.json"),
        "env": (a.work / "env.txt").read_text().strip() if (a.work / "env.txt").is_file() else "",
        "evals": evals,
        "headline": {ck: headline(e) for ck, e in evals.items()},
        "cpu_run_64k_samples": CPU_RUN, "targets": TARGETS,
    }
    tmp = a.out.with_name(a.out.name + ".tmp")
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(a.out)
    if a.print:
        print(f"{'checkpoint':22s} {'NWPU class':>10s} {'NWPU inst.':>10s} {'Dubai class':>11s}")
        for ck, h in [("CPU run (64k samples)", CPU_RUN), ("target", TARGETS),
                      *summary["headline"].items()]:
            print(f"{ck:22s} " + " ".join(
                f"{'-' if h[k] is None else h[k]:>{w}}" for k, w in
                (("nwpu_class", 10), ("nwpu_instance", 10), ("dubai_class", 11))))
        print("SUMMARY " + json.dumps({"train": summary["train"], "headline":
                                       summary["headline"], "steps": [
                                           (s["step"], s["rc"], s["wall_s"]) for s in steps]}))


if __name__ == "__main__":
    main()

"""Run-folder logs: append-only CSVs (truncated on resume) and ``curves.png``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

TRAIN_LOG_FIELDS = ("epoch", "step", "global_step", "samples", "loss", "bce", "dice", "boundary",
                    "lr_base", "lr_new", "samples_per_s", "elapsed_s")
VAL_LOG_FIELDS = ("epoch", "global_step", "set", "group", "oIoU", "mIoU", "Pr@0.5", "Pr@0.6",
                  "Pr@0.7", "Pr@0.8", "Pr@0.9", "n", "score")


class CsvLog:
    """Append-only CSV with a fixed header; truncated to a step on resume."""

    def __init__(self, path: Path, fields: tuple[str, ...]) -> None:
        self.path, self.fields = path, fields

    def truncate(self, keep: Any) -> None:
        """Keep only rows for which ``keep(row)`` is true (rows after a resume point go)."""
        if not self.path.is_file():
            return
        with open(self.path, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if keep(r)]
        with open(self.path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row."""
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=self.fields)
            if new:
                w.writeheader()
            w.writerow({k: _fmt(row.get(k, "")) for k in self.fields})


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v


def plot_curves(out_dir: Path) -> Path | None:
    """Write ``curves.png``: training loss terms by step, validation mIoU / oIoU by epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train_csv, val_csv = out_dir / "train_log.csv", out_dir / "val_log.csv"
    if not train_csv.is_file():
        return None
    with open(train_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [int(r["global_step"]) for r in rows]
    for key in ("loss", "bce", "dice", "boundary"):
        ax0.plot(steps, [float(r[key]) for r in rows], label=key, lw=1)
    ax0.set_xlabel("optimiser step")
    ax0.set_ylabel("training loss")
    ax0.set_yscale("symlog", linthresh=1e-2)
    ax0.legend()
    if val_csv.is_file():
        with open(val_csv, newline="") as fh:
            vrows = [r for r in csv.DictReader(fh) if r["group"] == "all"]
        for tag in sorted({r["set"] for r in vrows}):
            sub = [r for r in vrows if r["set"] == tag]
            ep = [int(r["epoch"]) for r in sub]
            ax1.plot(ep, [float(r["mIoU"]) for r in sub], "o-", label=f"{tag} mIoU")
            ax1.plot(ep, [float(r["oIoU"]) for r in sub], "s--", label=f"{tag} oIoU")
        ax1.legend()
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("validation (x100)")
    fig.tight_layout()
    path = out_dir / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

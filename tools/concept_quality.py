"""Measure a checkpoint's quality per concept on held-out splits (-> concept_quality.json).

Each val expression of the generated sets records the class it refers to (``target_class`` in
``refer_val.jsonl``; the same keys as the lexicon's concepts). This scores the checkpoint on the
class-level expressions ("the buildings", "the only ship": types ``class`` and ``unique``,
which name the concept and nothing else) in paper mode (256 px, as ``python -m training eval``),
grouped by concept, and stores mIoU / oIoU / n per concept under the weights' sha256, with
the command line, next to the failure cases the model card records (kept from the file).

    python tools/concept_quality.py --checkpoint backend/weights/default.safetensors \
        --set dubai=data_gen/dubai --set nwpu=data_gen/nwpu --threads 1

A concept measured on both sets keeps the set with more expressions.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "backend" / "weights" / "concept_quality.json"
CLASS_LEVEL = ("class", "unique")


class _ByConcept:
    """An EvalSet view whose group key is the target concept (class-level samples only)."""

    def __init__(self, base: Any, concepts: list[str]) -> None:
        self.base, self.concepts = base, concepts

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, k: int) -> dict[str, Any]:
        item = dict(self.base[k])
        item["type"] = self.concepts[k]
        return item


def measure_set(checkpoint: Path, root: Path, split: str, batch_size: int) -> dict[str, Any]:
    """``{concept: {"mIoU", "oIoU", "n"}}`` for one data set's split."""
    import torch

    from backend.model.checkpoint import load_checkpoint
    from training.data.datasets import EvalSet, Source, open_dataset
    from training.dist import cleanup, init_distributed
    from training.evaluation import evaluate
    from training.metrics import round_metrics

    ds = open_dataset("refsegrs", str(root), split)
    records = ds.records
    keep = [i for i, r in enumerate(records) if r.expr_type in CLASS_LEVEL]
    concepts = [str(records[i].meta["target_class"]) for i in keep]
    device = torch.device("cpu")
    info = init_distributed(device.type)
    try:
        model = load_checkpoint(checkpoint, device=device).model
        base = EvalSet(Source(root.name, ds), model.image_size, keep)
        view = _ByConcept(base, concepts)
        view.source = base.source  # evaluate() reads the tag for its progress bar
        metrics = evaluate(model, view, "paper", device, "fp32", batch_size, info)  # type: ignore[arg-type]
    finally:
        cleanup()
    return {
        name: {k: v for k, v in round_metrics(m).items() if k in ("mIoU", "oIoU", "n")}
        for name, m in metrics.items()
        if name != "all"
    }


def main(argv: list[str] | None = None) -> int:
    """Measure and write the table entry for the checkpoint."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--set", action="append", required=True, metavar="NAME=ROOT")
    parser.add_argument("--split", default="val")
    parser.add_argument("--label", default="the bundled model")
    parser.add_argument("--weak-below", type=float, default=40.0,
                        help="mIoU under which a concept counts as weak (offers the remedies)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    import torch

    from backend.model.checkpoint import load_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    sha = load_checkpoint(args.checkpoint, device="cpu").weights_sha256
    best: dict[str, dict[str, Any]] = {}
    for spec in args.set:
        name, _, root = spec.partition("=")
        for concept, row in measure_set(args.checkpoint, Path(root), args.split,
                                        args.batch_size).items():
            row = {"set": name, "split": args.split, **row}
            if concept not in best or row["n"] > best[concept]["n"]:
                best[concept] = row
    table = json.loads(args.out.read_text()) if args.out.is_file() else {"format": 1, "models": {}}
    entry = table["models"].get(sha, {})
    entry.update(
        label=args.label,
        weak_below_miou=args.weak_below,
        measured_by="python tools/concept_quality.py "
        + " ".join(map(shlex.quote, argv or sys.argv[1:])),
        concepts=dict(sorted(best.items())),
    )
    entry.setdefault("failure_cases", {})
    table["models"][sha] = entry
    args.out.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n")
    for concept, row in sorted(best.items()):
        print(f"{concept:18s} {row['set']:6s} n={row['n']:4d} "
              f"mIoU {row['mIoU']:6.2f} oIoU {row['oIoU']:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Does an adapted model forget? Class-level val mIoU of a base and an adapted checkpoint.

Scores only the val lines of expression type ``class`` (the ``class`` row of
``python -m training eval --by-type``: the same samples, metric and code path,
``training.evaluation.evaluate`` in paper mode, without spending time on the other types).

Usage::

    python tools/adapt_forgetting.py --base backend/weights/default.safetensors \
        --adapted my_water.safetensors --set nwpu=data_gen/packed/nwpu \
        --set dubai=data_gen/packed/dubai [--threads 1]

Prints one JSON line per (set, model) and a last line with the differences (adapted - base).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def class_miou(checkpoint: str, root: str, tag: str) -> dict[str, float]:
    """``{"mIoU", "oIoU", "n"}`` (x100) of the class-level val lines of a packed set."""
    import torch

    from backend.model.checkpoint import load_checkpoint
    from training.data.datasets import EvalSet, Source, open_dataset
    from training.dist import DistInfo
    from training.evaluation import evaluate
    from training.metrics import round_metrics

    ds = open_dataset("packed", root, "val")
    keep = [i for i, r in enumerate(ds.records) if r.expr_type == "class"]
    model = load_checkpoint(checkpoint, device="cpu").model
    view = EvalSet(Source(tag, ds), model.image_size, keep)
    metrics = evaluate(model, view, "paper", torch.device("cpu"), "fp32", 4,
                       DistInfo(rank=0, world_size=1, local_rank=0))
    return dict(round_metrics(metrics["class"]))


def main(argv: list[str] | None = None) -> int:
    """Score both checkpoints on every set; returns 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", required=True)
    p.add_argument("--adapted", required=True)
    p.add_argument("--set", action="append", required=True, help="tag=packed folder")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", choices=("base", "adapted"), default=None,
                   help="score one of the two (to run them in parallel)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    diffs = {}
    for item in args.set:
        tag, _, root = item.partition("=")
        scores = {}
        for name, ckpt in (("base", args.base), ("adapted", args.adapted)):
            if args.only and name != args.only:
                continue
            t = time.perf_counter()
            scores[name] = class_miou(ckpt, root, tag)
            print(json.dumps({"set": tag, "model": name, "checkpoint": ckpt, **scores[name],
                              "seconds": round(time.perf_counter() - t)}), flush=True)
        if len(scores) == 2:
            diffs[tag] = round(scores["adapted"]["mIoU"] - scores["base"]["mIoU"], 2)
    print(json.dumps({"class_mIoU_change": diffs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

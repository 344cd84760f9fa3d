"""Write the shipped model's regression samples and record its IoU on them.

Picks fixed val samples of the generated sets by rule (the first val sample, in file order,
of each (set, type, target class) listed in ``PICKS``), stores them at the model input size
(256 px: image as PNG, mask as 1-bit PNG) under ``tests/data/regression/``, and writes
``expected.json`` with the default weights' IoU (threshold 0.5) for each one, which
``tests/backend/model/test_default_weights.py`` checks.

    .venv/bin/python tools/make_regression_set.py [--weights backend/weights/default.safetensors]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "data" / "regression"
SIZE = 256
# (data set, expression type, target class or "" for any)
PICKS = [
    ("dubai", "class", "water"),
    ("dubai", "class", "building"),
    ("dubai", "class", "road"),
    ("nwpu", "class", "ground_track_field"),
    ("nwpu", "unique", ""),
]


def pick_samples() -> list[dict[str, object]]:
    """The fixed samples: image (S,S,3) uint8, mask (S,S) bool, text, provenance."""
    from training.data.datasets import open_dataset

    out = []
    for source, etype, cls in PICKS:
        root = REPO / "data_gen" / source
        lines = [json.loads(x) for x in open(root / "refer_val.jsonl")]
        ds = open_dataset("refsegrs", str(root), "val")
        for i, meta in enumerate(lines):  # noqa: B007 - i is used after the loop
            if meta["type"] == etype and (not cls or meta["target_class"] == cls):
                break
        else:
            raise SystemExit(f"no {source} val sample of type {etype} / {cls}")
        s = ds[i]
        if s.text != meta["text"]:
            raise SystemExit(f"{source} val #{i}: jsonl and data set disagree")
        img = Image.fromarray(s.image).resize((SIZE, SIZE), Image.BILINEAR)
        mask = Image.fromarray(s.mask.astype(np.uint8) * 255).resize((SIZE, SIZE), Image.NEAREST)
        out.append({"name": f"{source}_{etype}_{cls or 'any'}", "source": source,
                    "source_image": meta["source_image"], "crop": meta.get("crop"),
                    "text": s.text, "type": etype, "image": np.asarray(img),
                    "mask": np.asarray(mask) > 127})
    return out


def iou(prob: np.ndarray, mask: np.ndarray) -> float:
    """IoU of ``prob > 0.5`` with ``mask`` (0 when both are empty, as in training.metrics)."""
    pred = prob > 0.5
    union = np.logical_or(pred, mask).sum()
    return float(np.logical_and(pred, mask).sum() / union) if union else 0.0


def main() -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=None, help="default: the bundled default weights")
    a = p.parse_args()
    from backend.model.segmenter import load_segmenter

    seg = load_segmenter(a.weights, device="cpu", threads=2)
    OUT.mkdir(parents=True, exist_ok=True)
    records = []
    for s in pick_samples():
        Image.fromarray(s["image"]).save(OUT / f"{s['name']}.png", optimize=True)
        Image.fromarray(s["mask"]).convert("1").save(OUT / f"{s['name']}_mask.png")
        image = np.asarray(Image.open(OUT / f"{s['name']}.png").convert("RGB"))
        mask = np.asarray(Image.open(OUT / f"{s['name']}_mask.png")) > 0
        prob = seg.predict(image, s["text"])
        rec = {k: s[k] for k in ("name", "source", "source_image", "crop", "text", "type")}
        rec |= {"iou": round(iou(prob, mask), 4), "fg_fraction": round(float(mask.mean()), 4)}
        records.append(rec)
    result = {"weights_sha256": seg.checkpoint_sha256, "threshold": 0.5, "size_px": SIZE,
              "samples": records, "note": "recorded by tools/make_regression_set.py"}
    (OUT / "expected.json").write_text(json.dumps(result, indent=1) + "\n")
    for r in records:
        print(f"{r['name']:35s} IoU {r['iou']:.3f}  {r['text']!r}")


if __name__ == "__main__":
    main()

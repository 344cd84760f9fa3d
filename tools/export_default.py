"""Export a trained ``nano`` run to the bundled default weights (fp16, <= 25 MB).

    .venv/bin/python tools/export_default.py runs/nano_default/best.safetensors \
        --out backend/weights/default.safetensors --gsd-m 1.0

* fp16 safetensors (``backend.model.checkpoint.save_checkpoint``), loaded back as float32.
* The CLIP text tower's BPE token table (49,408 x 96, 9.5 MB in fp16) is stored row-pruned:
  only the rows that training touched are kept. A row never seen in training is exactly its
  seeded random init times the AdamW weight-decay factor; the tool finds the touched rows by
  comparing with a fresh model built with the run's seed, and cross-checks them against the
  tokens of the training captions when ``--data`` folders are given. Untouched rows load as
  zeros (a word the model never saw contributes nothing instead of random noise).
* ``gsd_m`` of the stored config is set to the training data's working resolution
  (``--gsd-m``, default: the run's ``inference.gsd_m``), so the pipeline resamples rasters to
  the scale the model was trained at; the metadata's ``inference.gsd_m_by_concept`` (per
  concept, from the training config) is kept.
* ``--data`` may name generated folders or their packed shards (``data_gen/packed/*``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from pathlib import Path

import torch

KEY = "union.text.token_embedding.weight"


def touched_rows(trained: torch.Tensor, init: torch.Tensor, rtol: float = 1e-4) -> torch.Tensor:
    """Rows of ``trained`` that are not a common multiple of ``init`` (i.e. got gradients)."""
    dot = (trained * init).sum(1)
    norm = (init * init).sum(1).clamp_min(1e-12)
    c = float((dot / norm).median())  # the weight-decay factor of untouched rows
    resid = (trained - c * init).norm(dim=1)
    return torch.nonzero(resid > rtol * init.norm(dim=1).clamp_min(1e-12)).flatten()


def caption_tokens(model: torch.nn.Module, roots: list[Path]) -> set[int]:
    """Token ids of every caption in the given generated sets (train and val)."""
    from training.data.packed import PackedDataset

    texts = []
    for root in roots:
        for split in ("train", "val"):
            f = root / f"refer_{split}.jsonl"
            if f.is_file():
                texts += [json.loads(line)["text"] for line in f.open()]
            elif (root / f"{split}.json.gz").is_file():  # packed shards (make data)
                texts += [r.text for r in PackedDataset(root, split).records]
    ids: set[int] = set()
    for i in range(0, len(texts), 512):
        tokens, pad = model.tokenize(texts[i : i + 512])  # type: ignore[operator]
        ids |= set(tokens[~pad].tolist())
    return ids


def main() -> None:
    """CLI entry point."""
    from backend.model.checkpoint import load_checkpoint, save_checkpoint
    from backend.model.rs2sam import build_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path, help="the run's best.safetensors (float32)")
    p.add_argument("--out", type=Path, default=Path("backend/weights/default.safetensors"))
    p.add_argument("--gsd-m", type=float, default=None,
                   help="working resolution, m/px (default: the checkpoint's inference.gsd_m)")
    p.add_argument("--seed", type=int, default=None, help="the run's seed (default: metadata)")
    p.add_argument("--data", type=Path, nargs="*", default=[Path("data_gen/nwpu"),
                                                            Path("data_gen/dubai")])
    p.add_argument("--note", default="", help="extra metadata note")
    p.add_argument("--trained-on", default="CPU, ~2 h", help="hardware / budget, for the "
                   "description")
    a = p.parse_args()

    ck = load_checkpoint(a.checkpoint)
    model, meta = ck.model, dict(ck.metadata)
    if a.gsd_m is None:
        a.gsd_m = (meta.get("inference") or {}).get("gsd_m")
        if not a.gsd_m:
            p.error("the checkpoint stores no inference.gsd_m: pass --gsd-m")
    meta["inference"] = {**(meta.get("inference") or {}), "gsd_m": a.gsd_m}
    seed = a.seed if a.seed is not None else int(meta["training"]["seed"])
    init = build_model(ck.config, seed=seed).state_dict()[KEY]
    trained = model.state_dict()[KEY]
    rows = touched_rows(trained, init)
    words = caption_tokens(model, [d for d in a.data if d.is_dir()])
    missing = sorted(words - set(rows.tolist()))
    print(f"token rows touched by training: {len(rows)} of {len(trained)}; caption tokens: "
          f"{len(words)}, of which not touched: {len(missing)}")
    keep = torch.tensor(sorted(set(rows.tolist()) | words), dtype=torch.int64)

    model.config = dataclasses.replace(ck.config, gsd_m=a.gsd_m, description=(
        "Default weights: nano trained from scratch on NWPU VHR-10 + Dubai referring sets "
        f"({a.trained_on}); non-commercial research use (NWPU licence)"))
    meta["export"] = {
        "source": str(a.checkpoint), "source_weights_sha256": ck.weights_sha256,
        "dtype": "float16", "token_rows_kept": len(keep), "token_rows_total": len(trained),
        "gsd_m": a.gsd_m, "note": a.note,
        "licence": "weights derived from NWPU VHR-10 (non-commercial research use only, "
                   "CC BY-NC 4.0 per torchgeo) and the Dubai aerial set (CC0)",
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    sha = save_checkpoint(model.half(), a.out, metadata=meta, keep_rows={KEY: keep})
    file_sha = hashlib.sha256(a.out.read_bytes()).hexdigest()
    size = a.out.stat().st_size
    print(json.dumps({"out": str(a.out), "bytes": size, "MB": round(size / 1e6, 2),
                      "weights_sha256": sha, "file_sha256": file_sha}))


if __name__ == "__main__":
    main()

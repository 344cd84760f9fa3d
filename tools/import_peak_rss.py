"""Peak memory of ``import-official`` on a full-size release (official-large, random weights).

Writes a release folder in the published layout (``config.json``, ``model.safetensors`` under
the published key names, a small sentencepiece model) for ``official-large`` with random
weights, then runs ``python -m backend import-official`` on it in a child process under
``/usr/bin/time`` and prints the child's peak RSS next to the file sizes. ``--tree`` runs the
import from other checkouts too (e.g. a worktree of an older commit), in the same run.

Needs about 8 GiB of memory to build the release; run it under the shared lock::

    flock /tmp/rs2sam-bigmem.lock python tools/import_peak_rss.py --workdir /tmp/rss [--fp16] \
        [--layout safetensors|bin] [--tree OTHER_CHECKOUT ...]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SENTENCES = (
    "the white storage tank on the left",
    "a large ship in the harbor near the bridge",
    "the airplane parked next to the terminal building",
    "two tennis courts beside the green baseball field",
)


def _spm() -> bytes:
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES),
        model_writer=out,
        vocab_size=60,
        model_type="unigram",
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return out.getvalue()


def write_large_release(folder: Path, layout: str = "safetensors") -> None:
    """``official-large`` with random weights, in the published layout.

    Args:
        folder: The release folder to write.
        layout: ``"safetensors"`` (streamed to disk) or ``"bin"`` (``torch.save`` zip).
    """
    from backend.model.official.keymap import to_release_key
    from backend.model.official.model import build_official_model
    from backend.model.official.stream import StreamEntry, stream_safetensors

    spm_bytes = _spm()
    model = build_official_model("official-large", seed=0, tokenizer_model=spm_bytes)
    folder.mkdir(parents=True, exist_ok=True)
    entries = [
        StreamEntry(to_release_key(k), v.dtype, tuple(v.shape), lambda v=v: v)
        for k, v in model.state_dict().items()
        if k != "tokenizer_model"
    ]
    if layout == "bin":
        import torch

        torch.save({e.key: e.read() for e in entries}, folder / "pytorch_model.bin")
    else:
        stream_safetensors(folder / "model.safetensors", entries, {"format": "pt"}, sha_field="sha")
    config = {
        "architectures": ["EvfSamModel"],
        "model_type": "evf",
        "hidden_size": model.config.beit3_width,
        "out_dim": model.prompt_dim,
        "mm_extractor_scale": "large",
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "sentencepiece.bpe.model").write_bytes(spm_bytes)


def measure(tree: Path, release: Path, out: Path, fp16: bool) -> dict[str, float]:
    """Run the import from ``tree`` in a child process; its peak RSS (GiB) and wall time (s)."""
    if out.exists():
        out.unlink()
    cmd = ["/usr/bin/time", "-f", "%M %e", sys.executable, "-m", "backend", "import-official"]
    cmd += [str(release), "--out", str(out), *(["--fp16"] if fp16 else [])]
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"import from {tree} failed:\n{done.stderr[-2000:]}")
    kib, seconds = done.stderr.strip().splitlines()[-1].split()
    size = out.stat().st_size
    out.unlink()
    return {"peak_rss_gib": int(kib) / 1024**2, "seconds": float(seconds), "out_gb": size / 1e9}


def main() -> None:
    """Build (or reuse) the release, import it from each tree, print one JSON line per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--tree", type=Path, action="append", default=[])
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--layout", choices=("safetensors", "bin"), default="safetensors")
    args = parser.parse_args()
    release = args.workdir / f"rrsisd-{args.layout}"
    weights = release / ("pytorch_model.bin" if args.layout == "bin" else "model.safetensors")
    if not weights.is_file():
        t0 = time.perf_counter()
        write_large_release(release, args.layout)
        print(f"wrote {release} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    file_gb = weights.stat().st_size / 1e9
    trees = args.tree or [Path(__file__).resolve().parents[1]]
    for tree in trees:
        row = measure(tree, release, args.workdir / "imported.safetensors", args.fp16)
        row |= {"tree": str(tree), "release_file_gb": file_gb, "fp16": args.fp16}
        row["layout"] = args.layout
        print(json.dumps(row))


if __name__ == "__main__":
    main()

"""Parameter counts and forward times of every registered model config (a script, not a test).

Each config runs in its own subprocess (clean peak-RSS numbers, no cross-talk) and the script
prints one markdown table. Forward = ``prepare_inputs`` + ``model(inputs)`` on one random
uint8 image at the config's native size, batch 1, under ``torch.inference_mode``; the median of
``--runs`` timed runs after one warm-up for small configs, a single cold run for the configs in
``--once`` (Hiera-S/L at 1024 take tens of seconds on 2 CPU threads).

Usage:
    .venv/bin/python tools/model_report.py                       # all configs, CPU, 2 threads
    .venv/bin/python tools/model_report.py --configs test-tiny nano --runs 9
    .venv/bin/python tools/model_report.py --device cuda --runs 20 --once   # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(name: str, device: str, threads: int, runs: int, once: bool) -> dict[str, object]:
    """Build ``name`` and time its forward pass; returns a JSON-ready dict."""
    import resource

    import numpy as np
    import torch

    from backend.model.architectures import architecture_of
    from backend.model.configs import get_model_config
    from backend.resources import check_fits, load_bytes

    torch.set_num_threads(threads)
    config = get_model_config(name)
    arch = architecture_of(config)
    counts_model = arch.build(config, device="meta")  # counts without memory
    counts = counts_model.parameter_counts()
    check_fits(load_bytes(counts_model), device, what=f"building {name}")  # fail early, not OOM
    del counts_model

    t0 = time.perf_counter()
    model = arch.build(config, device=device)
    build_s = time.perf_counter() - t0
    size = model.image_size
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    text = ["the two white storage tanks next to the road"]
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.startswith("cuda")
        else torch.autocast("cpu", enabled=False)
    )

    def forward() -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode(), autocast:
            out = model(model.prepare_inputs(image, text))
            out.logits.sum().item()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    if once:
        times = [forward()]
    else:
        forward()  # warm-up
        times = [forward() for _ in range(runs)]
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "name": name,
        "architecture": arch.name,
        "image_size": size,
        "encoders": model.describe_encoders(),
        **counts,
        "build_s": build_s,
        "forward_s": statistics.median(times),
        "runs": len(times),
        "cold": once,
        "peak_rss_gib": peak_gib,
        "device": device,
        "threads": threads,
        "torch": torch.__version__,
    }


def _millions(n: object) -> str:
    return f"{int(n) / 1e6:.2f} M"  # type: ignore[call-overload]


def main(argv: list[str] | None = None) -> int:
    """Run the report (or, with ``--one``, measure a single config and print JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=None, help="default: all registered")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="timed runs for small configs")
    parser.add_argument(
        "--once",
        nargs="*",
        default=["base", "large", "official-large"],
        help="configs timed with a single cold run (default: base large official-large)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        row = measure(args.one, args.device, args.threads, args.runs, args.one in args.once)
        print(json.dumps(row))
        return 0

    from backend.model.configs import list_models

    names = args.configs or list_models()
    order = {"test-tiny": 0, "nano": 1, "base": 2, "large": 3, "official-tiny": 4,
             "lgce-tiny": 5, "lgce-nano": 6}
    names = sorted(names, key=lambda n: order.get(n, 9))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    rows = []
    for name in names:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--device",
            args.device,
            "--threads",
            str(args.threads),
            "--runs",
            str(args.runs),
            "--once",
            *args.once,
        ]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    if not rows:
        return 1
    first = rows[0]
    print(
        f"device {first['device']}, {first['threads']} threads, torch {first['torch']}; "
        "forward = preprocessing + model, batch 1, native size\n"
    )
    print(
        "| config | input px | encoders | params total | trainable | adapters "
        "| build s | forward s | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    parts = []
    for r in rows:
        timing = (
            f"{r['forward_s']:.2f} (1 cold run)"
            if r["cold"]
            else f"{r['forward_s']:.3f} (median of {r['runs']})"
        )
        print(
            f"| {r['name']} | {r['image_size']} | {r['encoders']} "
            f"| {_millions(r['total'])} | {_millions(r['trainable'])} "
            f"| {_millions(r['adapters']) if 'adapters' in r else '–'} "
            f"| {r['build_s']:.1f} | {timing} "
            f"| {r['peak_rss_gib']:.2f} GiB |"
        )
        if isinstance(r.get("sam2"), int):
            parts.append(
                f"{r['name']}: union encoder {_millions(r['union'])}, SAM 2 without adapters "
                f"{_millions(r['sam2'])}, adapters {_millions(r['adapters'])}, heads "
                f"{_millions(r['heads'])}"
            )
    if parts:
        print("\nparameters by part (published layout):")
        print("\n".join(f"- {p}" for p in parts))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())

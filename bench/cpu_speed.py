"""CPU speed of a model in each precision mode, per stage, against the cores' GEMM limits.

One case per (config, mode) runs in a fresh process (``python -m bench.cpu_speed mode ...``)
and prints one ``BENCH_JSON`` line: the cores' plain GEMM rates measured in that same process
(fp32, bf16, dynamic int8: the practical limit of each precision), the build and the one-off
preparation (int8 quantisation), the model seconds per ``image_size`` tile (median of
``--tiles`` warm tiles of a real crop of ``demo_data/test_tiled.tif``) split into stages
(pre-processing, union encoder, image encoder = Hiera + adapters + FPN, decoder = text fusion
+ prompt encoder + mask decoder, the small heads, post-processing), the peak RSS (``VmHWM``)
and the mask decoder's ``z`` for the fidelity comparison. The fp32 case also counts the
forward's FLOPs with ``torch.utils.flop_counter``. ``load`` writes a random-init checkpoint
(fp32 or fp16) and loads it in a fresh process: peak RSS against the file's size.

``gemm`` prints only the GEMM limits (a few seconds): with the ratios of the table in
docs/benchmarks.md it estimates the seconds per tile on another CPU.

``official-large`` is built under ``flock /tmp/rs2sam-bigmem.lock`` (a shared machine).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RASTER = ROOT / "demo_data" / "test_tiled.tif"
BIGMEM_LOCK = Path("/tmp/rs2sam-bigmem.lock")
STAGES = {
    "union": ("union",),
    "image_encoder": ("image_encoder",),
    "decoder": ("text_fusion", "sam_prompt_encoder", "sam_mask_decoder"),
}


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def bigmem_lock(config: str) -> Iterator[None]:
    """Hold the machine's big-memory lock while ``official-large`` is in memory."""
    if not config.startswith("official-large"):
        yield
        return
    with open(BIGMEM_LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def gemm_limits(threads: int, seconds: float = 1.5) -> dict[str, float]:
    """Best GFLOP/s of a plain ``2048³`` fp32 / bf16 matmul and of a dynamic int8 Linear."""
    import torch
    from torch import nn

    from backend.model.precision import apply_precision, cpu_support

    torch.set_num_threads(threads)

    def best(fn: Any, flops: float) -> float:
        fn()
        rates, t_end = [], time.perf_counter() + seconds
        while time.perf_counter() < t_end or len(rates) < 3:
            t0 = time.perf_counter()
            fn()
            rates.append(flops / (time.perf_counter() - t0) / 1e9)
        return max(rates)

    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = {"fp32": best(lambda: a @ b, 2 * n**3)}
    nb = n if cpu_support().bf16 else 256  # the non-native fallback is ~300x slower
    ab, bb = a[:nb, :nb].bfloat16(), b[:nb, :nb].bfloat16()
    out["bf16"] = best(lambda: ab @ bb, 2 * nb**3)
    m, k = 4096, 2048
    holder = nn.Module()
    holder.union = nn.Sequential(nn.Linear(k, k))  # a name int8 quantises
    apply_precision(holder.eval(), "int8")
    x = torch.randn(m, k)
    with torch.inference_mode():
        out["int8"] = best(lambda: holder.union(x), 2 * m * k * k)
    return out


def _crop(size: int) -> np.ndarray:
    import rasterio

    with rasterio.open(RASTER) as ds:
        img = np.moveaxis(ds.read([1, 2, 3]), 0, -1)
    reps = -(-size // min(img.shape[:2]))
    return np.ascontiguousarray(np.tile(img, (reps, reps, 1))[:size, :size])


class StageClock:
    """Adds up wall time per stage with forward pre/post hooks."""

    def __init__(self, model: Any) -> None:
        self.seconds: dict[str, float] = {k: 0.0 for k in STAGES}
        self._start: dict[str, float] = {}
        for stage, names in STAGES.items():
            for name in names:
                module = getattr(model, name, None)
                if module is None:
                    continue
                key = f"{stage}:{name}"
                module.register_forward_pre_hook(self._pre(key))
                module.register_forward_hook(self._post(key, stage))

    def _pre(self, key: str) -> Any:
        def hook(*_: Any) -> None:
            self._start[key] = time.perf_counter()

        return hook

    def _post(self, key: str, stage: str) -> Any:
        def hook(*_: Any) -> None:
            self.seconds[stage] += time.perf_counter() - self._start.pop(key)

        return hook


def count_flops(model: Any, inputs: Any) -> tuple[float, dict[str, float]]:
    """Total forward FLOPs and FLOPs per stage (``torch.utils.flop_counter``)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, depth=2)
    with torch.inference_mode(), counter:
        model(inputs)
    per_module = counter.get_flop_counts()
    total = float(counter.get_total_flops())
    stages = {}
    for stage, names in STAGES.items():
        stages[stage] = float(
            sum(
                sum(ops.values())
                for mod, ops in per_module.items()
                if mod.rsplit(".", 1)[-1] in names and mod.count(".") == 1
            )
        )
    stages["rest"] = total - sum(stages.values())
    return total, stages


def case_mode(args: argparse.Namespace) -> dict[str, Any]:
    """One (config, precision) case in this process."""
    import torch
    import torch.nn.functional as F

    from backend.model.architectures import architecture_of
    from backend.model.configs import get_model_config
    from backend.model.precision import cpu_support
    from backend.model.segmenter import Segmenter

    limits = gemm_limits(args.threads)
    cfg = get_model_config(args.config)
    t0 = time.perf_counter()
    model = architecture_of(cfg).build(cfg, device="cpu", seed=0)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    seg = Segmenter(model, precision=args.precision)
    prepare_s = time.perf_counter() - t0
    image = _crop(cfg.image_size)[None]
    text = "the buildings"
    clock = StageClock(seg.model)
    result: dict[str, Any] = {
        "config": cfg.name,
        "precision": seg.precision,
        "threads": torch.get_num_threads(),
        "cpu": cpu_support().describe(),
        "gemm_gflops": limits,
        "build_s": build_s,
        "prepare_s": prepare_s,
        "image_px": int(cfg.image_size),
    }
    tiles: list[dict[str, float]] = []
    z = None
    if args.flops:  # the warm-up forward, counted
        inputs = seg.model.prepare_inputs(image, [text])
        result["flops"], result["stage_flops"] = count_flops(seg.model, inputs)
    with torch.inference_mode():
        warm = 0 if args.flops else 1  # the counted forward warmed the model up
        for i in range(args.tiles + warm):
            for k in clock.seconds:
                clock.seconds[k] = 0.0
            t0 = time.perf_counter()
            inputs = seg.model.prepare_inputs(image, [text])
            t1 = time.perf_counter()
            with seg._autocast():
                logits = seg.model(inputs).logits
            t2 = time.perf_counter()
            prob = torch.sigmoid(F.interpolate(logits.float(), size=image.shape[1:3]))[:, 0]
            prob = prob.numpy()
            t3 = time.perf_counter()
            if i == 0:
                z = ((logits.float() + 1.0) / 2.0)[0, 0].numpy()
            if i < warm:
                continue
            stage = dict(clock.seconds)
            stage["heads"] = (t2 - t1) - sum(clock.seconds.values())
            tiles.append({"total": t3 - t0, "pre": t1 - t0, "post": t3 - t2, **stage})
    result["tile_s"] = statistics.median(t["total"] for t in tiles)
    result["stage_s"] = {k: statistics.median(t[k] for t in tiles) for k in tiles[0]}
    result["tiles_s"] = [t["total"] for t in tiles]
    if args.z_out and z is not None:
        np.save(args.z_out, z.astype(np.float32))
    result["peak_rss_mib"] = _peak_rss_mib()
    return result


def case_load(args: argparse.Namespace) -> dict[str, Any]:
    """Peak RSS of ``load_checkpoint`` in this fresh process."""
    from backend.model.checkpoint import load_checkpoint

    base = _peak_rss_mib()
    t0 = time.perf_counter()
    ckpt = load_checkpoint(args.checkpoint)
    seconds = time.perf_counter() - t0
    weights = sum(t.numel() * t.element_size() for t in ckpt.model.state_dict().values())
    return {
        "file_mib": Path(args.checkpoint).stat().st_size / 2**20,
        "weights_mib": weights / 2**20,
        "before_mib": base,
        "peak_rss_mib": _peak_rss_mib(),
        "load_s": seconds,
    }


def write_checkpoint(config: str, path: Path, *, fp16: bool) -> None:
    """A random-init checkpoint of ``config`` (float tensors in fp16 with ``fp16``)."""
    import torch

    from backend.model.architectures import architecture_of
    from backend.model.checkpoint import save_checkpoint
    from backend.model.configs import get_model_config

    cfg = get_model_config(config)
    model = architecture_of(cfg).build(cfg, device="cpu", seed=0)
    if fp16:
        model.to(torch.float16)
    save_checkpoint(model, path, metadata={"bench": "random init"})


def run(kind: str, *argv: str, timeout: int = 3600) -> dict[str, Any]:
    """Run one case in a fresh process; its ``BENCH_JSON`` line."""
    cmd = [sys.executable, "-m", "bench.cpu_speed", kind, *argv]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise RuntimeError(f"cpu_speed {kind} {argv} failed:\n{proc.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    """``mode`` / ``load`` / ``write`` subcommands (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_speed", description=__doc__)
    sub = parser.add_subparsers(dest="kind", required=True)
    p = sub.add_parser("mode")
    p.add_argument("--config", required=True)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--tiles", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--flops", action="store_true")
    p.add_argument("--z-out", default="")
    p = sub.add_parser("load")
    p.add_argument("--checkpoint", required=True)
    p = sub.add_parser("gemm", help="only this CPU's GEMM limits (seconds; for estimates)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p = sub.add_parser("write")
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--fp16", action="store_true")
    args = parser.parse_args(argv)
    if args.kind == "write":
        write_checkpoint(args.config, Path(args.out), fp16=args.fp16)
        print("BENCH_JSON {}")
        return 0
    if args.kind == "gemm":
        print("BENCH_JSON " + json.dumps(gemm_limits(args.threads)))
        return 0
    import torch

    if args.kind == "mode":
        torch.set_num_threads(args.threads)
    result = case_mode(args) if args.kind == "mode" else case_load(args)
    print("BENCH_JSON " + json.dumps(result))
    return 0


def measure(config: str, modes: list[str], tiles: int, out: Path) -> dict[str, Any]:
    """Every mode of ``config`` (fp32 first, with FLOPs), the fidelity and the load memory."""
    results: dict[str, Any] = {"modes": {}, "load": {}}
    out.mkdir(parents=True, exist_ok=True)
    with bigmem_lock(config):
        for mode in ["fp32", *[m for m in modes if m != "fp32"]]:
            extra = ["--flops"] if mode == "fp32" else []
            z_path = out / f"z_{config}_{mode}.npy"
            try:
                results["modes"][mode] = run(
                    "mode", "--config", config, "--precision", mode, "--tiles", str(tiles),
                    "--z-out", str(z_path), *extra,
                )  # fmt: skip
            except RuntimeError as err:
                results["modes"][mode] = {"error": str(err).strip().splitlines()[-1]}
        results["fidelity"] = fidelity(out, config, list(results["modes"]))
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            for fp16 in (False, True):
                path = Path(tmp) / f"{config}_{'fp16' if fp16 else 'fp32'}.safetensors"
                run("write", "--config", config, "--out", str(path), *(["--fp16"] if fp16 else []))
                results["load"]["fp16" if fp16 else "fp32"] = run("load", "--checkpoint", str(path))
                path.unlink()
    return results


def fidelity(out: Path, config: str, modes: list[str]) -> dict[str, Any]:
    """Mask IoU and pixel agreement of each mode against fp32 on the bench tile.

    Random weights give ``z`` far below the published threshold 0.5 everywhere, so ``z`` is
    scaled (the published ``z`` is linear in the weights of the mask decoder's last
    hypernetwork layer, which stays float32 in every mode) so that the fp32 mask covers 30 %
    of the tile (or half of its positive ``z``, when fewer); a mask already covering 5-95 % is
    compared as it is.
    """
    ref_path = out / f"z_{config}_fp32.npy"
    if not ref_path.is_file():
        return {}
    ref = np.load(ref_path)
    positive = float((ref > 0).mean())  # scaling z cannot make a negative z pass 0.5
    q = float(np.quantile(ref, 1.0 - min(0.3, 0.5 * positive)))
    scale = 0.5 / q if q > 0 else 1.0
    if 0.05 <= float((ref > 0.5).mean()) <= 0.95:
        scale = 1.0  # the model's own decision already gives a mask worth comparing
    ref_mask = ref * scale > 0.5
    res: dict[str, Any] = {"scale": scale, "fp32_cover": float(ref_mask.mean())}
    for mode in modes:
        path = out / f"z_{config}_{mode}.npy"
        if mode == "fp32" or not path.is_file():
            continue
        mask = np.load(path) * scale > 0.5
        union = np.logical_or(mask, ref_mask).sum()
        res[mode] = {
            "iou": float(np.logical_and(mask, ref_mask).sum() / max(union, 1)),
            "agree": float((mask == ref_mask).mean()),
        }
    return res


if __name__ == "__main__":
    sys.exit(main())

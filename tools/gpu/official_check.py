"""GPU check of the published RS2-SAM 2 layout (run by official_check.sh; a script, not a test).

Steps (each in try/except; the JSON is rewritten after each, so a killed run keeps what it did):

1. env: torch, CUDA device, packages;
2. tiny: official-tiny written as a release folder, ``import-official``, loaded on CUDA: fp32
   CUDA vs fp32 CPU predictions (max |Δp|), bf16 vs fp32 mask IoU;
3. large: official-large (random init) built on CUDA; ``predict`` at 1024² under bf16 autocast
   (1 warm-up, 5 timed), ``predict_batch`` of 4, peak memory; bf16 vs fp32 agreement.

``OFFICIAL_CHECK_DRY=1``: CPU, official-tiny for both steps, fewer repetitions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

DRY = os.environ.get("OFFICIAL_CHECK_DRY", "0") not in ("", "0")
BUDGET_S = float(os.environ.get("OFFICIAL_CHECK_BUDGET_S", "330"))
ROOT = Path(__file__).resolve().parents[2]
T0 = time.monotonic()
TEXT = "the white storage tank next to the road"


def log(*parts: object) -> None:
    """Progress line with the elapsed time."""
    print(f"[official_check {time.monotonic() - T0:6.1f}s]", *parts, flush=True)


class Results:
    """A JSON file rewritten after every step."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, object] = {"dry": DRY}
        self.flush()

    def set(self, key: str, value: object) -> None:
        """Record one step and rewrite the file."""
        self.data[key] = value
        self.flush()

    def flush(self) -> None:
        """Write the file atomically."""
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)


def _error(err: BaseException) -> dict[str, object]:
    return {
        "ok": False,
        "error": f"{type(err).__name__}: {err}"[:2000],
        "traceback": traceback.format_exc()[-3000:],
    }


def _iou(a: object, b: object) -> float:
    import numpy as np

    a, b = np.asarray(a) > 0.5, np.asarray(b) > 0.5
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def step_env() -> dict[str, object]:
    """Python, torch, CUDA device and the carried packages."""
    import torch

    out: dict[str, object] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        out["device"] = torch.cuda.get_device_name(0)
    for name in ("torchscale", "fairscale", "sentencepiece", "sam2", "numpy", "PIL"):
        try:
            module = __import__(name)
            out[name] = getattr(module, "__version__", "?")
        except Exception as err:  # report, go on
            out[name] = f"missing: {err}"
    return out


def step_tiny(device: str) -> dict[str, object]:
    """official-tiny → release folder → import-official → CUDA vs CPU."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "tests" / "backend" / "model"))
    from official_release import train_spm, write_release

    from backend.model.official.importer import import_official
    from backend.model.official.model import build_official_model
    from backend.model.segmenter import Segmenter, load_segmenter

    spm = train_spm()
    source = build_official_model("official-tiny", tokenizer_model=spm, seed=3)
    with tempfile.TemporaryDirectory(prefix="official_tiny_") as tmp:
        work = Path(tmp)
        folder = write_release(source, work / "release", spm, layout="bin-sharded")
        result = import_official(folder, work / "tiny.safetensors")
        image = np.random.default_rng(0).integers(0, 256, (200, 260, 3), dtype=np.uint8)
        cpu = Segmenter(source).predict(image, TEXT)
        seg = load_segmenter(result.out, device=device)
        out: dict[str, object] = {"ok": True, "import": result.summary(), "device": seg.device}
        seg_fp32 = load_segmenter(result.out, device=device)
        seg_fp32._autocast = contextlib.nullcontext  # type: ignore[method-assign]  # fp32 on CUDA
        fp32 = seg_fp32.predict(image, TEXT)
        out["fp32_vs_cpu_max_abs_dp"] = float(np.abs(fp32 - cpu).max())
        bf16 = seg.predict(image, TEXT)
        out["bf16_vs_fp32_max_abs_dp"] = float(np.abs(bf16 - fp32).max())
        out["bf16_vs_fp32_mask_iou"] = _iou(bf16, fp32)
        return out


def step_large(device: str, name: str, runs: int) -> dict[str, object]:
    """Random-init ``name`` on ``device``: predict / predict_batch time and memory."""
    import numpy as np
    import torch

    from backend.model.configs import get_model_config
    from backend.model.official.model import build_official_model
    from backend.model.segmenter import Segmenter

    cuda = device.startswith("cuda")
    t = time.perf_counter()
    model = build_official_model(get_model_config(name), device=device)
    out: dict[str, object] = {
        "ok": True,
        "model": name,
        "build_s": time.perf_counter() - t,
        "params": model.parameter_counts(),
    }
    seg = Segmenter(model, max_batch=4)
    size = model.image_size
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, size, size, 3), dtype=np.uint8)

    def timed(fn: object) -> float:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    out["first_predict_s"] = timed(lambda: seg.predict(images[0], TEXT))
    times = [timed(lambda: seg.predict(images[0], TEXT)) for _ in range(runs)]
    out["predict_s"] = sorted(times)[len(times) // 2]
    out["predict_runs"] = times
    batch = timed(lambda: seg.predict_batch(images, TEXT))
    out["batch4_s"] = batch
    out["batch4_images_per_s"] = 4 / batch
    if cuda:
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        bf16 = seg.predict(images[1], TEXT)
        seg._autocast = contextlib.nullcontext  # type: ignore[method-assign]  # fp32 on CUDA
        out["fp32_predict_s"] = timed(lambda: seg.predict(images[1], TEXT))
        fp32 = seg.predict(images[1], TEXT)
        out["bf16_vs_fp32_max_abs_dp"] = float(np.abs(bf16 - fp32).max())
        out["bf16_vs_fp32_mask_iou"] = _iou(bf16, fp32)
    return out


def main() -> int:
    """Run the steps; print a SUMMARY line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    res = Results(args.out)
    import torch

    device = "cpu" if DRY or not torch.cuda.is_available() else "cuda"
    torch.set_num_threads(2 if DRY else max(1, (os.cpu_count() or 2) - 1))
    steps = [
        ("env", 30, step_env),
        ("tiny", 60, lambda: step_tiny(device)),
        (
            "large",
            150,
            lambda: step_large(
                device, "official-tiny" if DRY else "official-large", 2 if DRY else 5
            ),
        ),
    ]
    for name, need_s, fn in steps:
        left = BUDGET_S - (time.monotonic() - T0)
        if left < need_s:
            log(f"{name}: skipped, {left:.0f}s of the budget left")
            res.set(name, {"ok": False, "error": "skipped: time budget"})
            continue
        log(f"{name}: start")
        try:
            value = fn()
        except Exception as err:  # record and go on
            value = _error(err)
        res.set(name, value)
        log(f"{name}: {json.dumps(value, default=str)[:600]}")

    def get(step: str, key: str) -> object:
        value = res.data.get(step)
        return value.get(key) if isinstance(value, dict) else None

    summary = {
        "device": get("env", "device") or device,
        "large_predict_s": get("large", "predict_s"),
        "large_batch4_img_s": get("large", "batch4_images_per_s"),
        "large_peak_gib": get("large", "peak_gib"),
        "large_bf16_vs_fp32_iou": get("large", "bf16_vs_fp32_mask_iou"),
        "tiny_fp32_vs_cpu": get("tiny", "fp32_vs_cpu_max_abs_dp"),
        "elapsed_s": round(time.monotonic() - T0, 1),
    }
    print("SUMMARY " + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Where int8's error comes from: quantise one part of the published layout at a time.

``python -m bench.int8_parts --model reduced`` (seconds) or ``--model official-large``
(one 1024² tile of the bench crop, plus ``--spacenet`` a 1024² crop of the SpaceNet tile; about
a minute per recipe on one core, under ``flock /tmp/rs2sam-bigmem.lock``) builds the model once,
computes the fp32 ``z`` (the mask decoder's output, threshold 0.5), then for each recipe swaps
the recipe's ``nn.Linear`` layers for dynamically quantised ones (per-output-channel int8
weights, as ``precision="int8"``), recomputes ``z``, and restores the float layers. One
``RES`` JSON line per recipe: mask IoU and same-decision fraction against fp32 (the bar: IoU
>= 0.98 and >= 99 %), the relative RMS change of ``z``, and the share of the forward's
Linear FLOPs the recipe quantises (from the layer shapes and token counts of the fp32 pass).

Recipes are groups joined by ``+`` (``--recipes hiera_s3_mlp+hiera_s4_mlp,beit3``); the groups
are those of :func:`groups` (``hiera_s<k>`` by Hiera stage, ``_mlp`` / ``_attn`` its blocks'
MLP / attention Linears, ``hiera_global`` the global-attention blocks, ``adapters``,
``beit3``, ``heads``, ``decoder``; ``all_encoders`` is the pre-2026-12-08 ``int8``) plus
``model`` (what ``precision="int8"`` quantises now).

Scaling (random weights give ``z`` far below 0.5): the reduced model's last hypernetwork layer
is scaled ×30 as in ``tests/backend/model/test_precision.py``; ``official-large``'s ``z`` is
scaled as :func:`bench.cpu_speed.fidelity` does (fp32 covers half of its positive ``z``, at
most 30 %), per input.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SPACENET = ROOT / "demo_data" / "SpaceNet_AOI_2_Las_Vegas-056155973080_01_P001-WV03-RGB.tif"
TILED = ROOT / "demo_data" / "test_tiled.tif"


def reduced_official() -> nn.Module:
    """The published layout at test size (Hiera-T at 256 px, 4-layer BEiT-3), widened ×30."""
    from backend.model.configs import get_model_config
    from backend.model.official.model import build_official_model

    cfg = replace(
        get_model_config("official-tiny"),
        name="official-reduced",
        sam2_yaml="sam2:configs/sam2.1/sam2.1_hiera_t.yaml",
        image_size=256,
        beit3_image_size=112,
        beit3_layers=4,
        beit3_width=256,
        beit3_heads=4,
        beit3_ffn=1024,
    )
    model = build_official_model(cfg, seed=0)
    last = model.sam_mask_decoder.output_hypernetworks_mlps[0].layers[-1]
    with torch.no_grad():
        last.weight.mul_(30.0)
        last.bias.mul_(30.0)
    return model


def _read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        return np.moveaxis(ds.read([1, 2, 3]), 0, -1)


def groups(model: nn.Module) -> dict[str, list[str]]:
    """Names of the exact ``nn.Linear`` layers of each part of a published-layout model."""
    trunk = model.image_encoder.trunk
    ends = list(trunk.stage_ends)
    global_blocks = set(getattr(trunk, "global_att_blocks", ()))
    out: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        if type(module) is not nn.Linear:
            continue
        keys = []
        if name.startswith("union."):
            keys = ["beit3", "all_encoders"] + (["beit3_ffn"] if ".ffn." in name else [])
        elif name.startswith("image_encoder.trunk.blocks."):
            block = int(name.split(".")[3])
            stage = sum(block > e for e in ends) + 1
            if "Adapter" in name:
                keys = ["adapters"]
            else:
                keys = [f"hiera_s{stage}", "all_encoders"]
                keys += [f"hiera_s{stage}_mlp"] if ".mlp." in name else []
                keys += [f"hiera_s{stage}_attn"] if ".attn." in name else []
                keys += ["hiera_global"] if block in global_blocks else []
        elif name.startswith(("sam_mask_decoder.", "sam_prompt_encoder.")):
            keys = ["decoder"]
        else:
            keys = ["heads"]
        for key in keys:
            out.setdefault(key, []).append(name)
    from backend.model.precision import int8_layer_names

    out["model"] = int8_layer_names(model)
    return out


@contextlib.contextmanager
def quantised(model: nn.Module, names: list[str]) -> Iterator[None]:
    """Quantise the named Linear layers in place for the block; restore the float ones."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    saved = {n: model.get_submodule(n) for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(model, dict.fromkeys(names, per_channel_dynamic_qconfig), inplace=True)
    try:
        yield
    finally:
        for name, module in saved.items():
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent), leaf, module)
        for module in model.modules():  # a left-over qconfig would be quantised again
            if hasattr(module, "qconfig"):
                del module.qconfig


def z_maps(model: nn.Module, images: list[np.ndarray], texts: list[str]) -> list[np.ndarray]:
    """The mask decoder's ``z`` ``(S, S)`` for every image × text."""
    out = []
    with torch.inference_mode():
        for image in images:
            for text in texts:
                logits = model(model.prepare_inputs(image[None], [text])).logits
                out.append(((logits[0, 0] + 1.0) / 2.0).numpy().copy())
    return out


def z_scale(z: np.ndarray) -> float:
    """Scale of ``z`` so that the fp32 mask is worth comparing (``bench.cpu_speed.fidelity``)."""
    if 0.05 <= float((z > 0.5).mean()) <= 0.95:
        return 1.0
    positive = float((z > 0).mean())
    q = float(np.quantile(z, 1.0 - min(0.3, 0.5 * positive)))
    return 0.5 / q if q > 0 else 1.0


def compare(ref: list[np.ndarray], got: list[np.ndarray], scales: list[float]) -> dict:
    """Per-input mask IoU, same-decision fraction and relative RMS change of ``z``."""
    ious, agrees, rel = [], [], []
    for a, b, s in zip(ref, got, scales, strict=True):
        ma, mb = a * s > 0.5, b * s > 0.5
        ious.append(round(float((ma & mb).sum() / max((ma | mb).sum(), 1)), 4))
        agrees.append(round(float((ma == mb).mean()), 5))
        rel.append(float(np.sqrt(((a - b) ** 2).mean() / (a**2).mean())))
    return {"iou": ious, "agree": agrees, "z_rel": round(float(np.mean(rel)), 5)}


def linear_flops(model: nn.Module, run: object) -> dict[str, float]:
    """FLOPs of each exact ``nn.Linear`` during ``run()`` (2 · tokens · in · out)."""
    flops: dict[str, float] = {}

    def hook(name: str) -> object:
        def count(mod: nn.Linear, inp: tuple, _out: object) -> None:
            flops[name] = flops.get(name, 0.0) + 2.0 * inp[0].numel() * mod.out_features

        return count

    handles = [
        m.register_forward_hook(hook(n)) for n, m in model.named_modules() if type(m) is nn.Linear
    ]
    try:
        run()  # type: ignore[operator]
    finally:
        for h in handles:
            h.remove()
    return flops


def main(argv: list[str] | None = None) -> int:
    """Run the recipes; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench.int8_parts", description=__doc__)
    parser.add_argument("--model", default="reduced", help="reduced | official-large")
    parser.add_argument("--recipes", default="model,all_encoders")
    parser.add_argument("--spacenet", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from bench.cpu_speed import _crop, bigmem_lock

    with contextlib.ExitStack() as stack:
        if args.model == "reduced":
            model = reduced_official()
            tiles, spacenet = _read(TILED), _read(SPACENET)
            images = [c for im in (tiles, spacenet) for c in (im[:400, :400], im[-400:, -400:])]
            images = [np.ascontiguousarray(c) for c in images]
            texts = ["the buildings", "the river"]
        else:
            from backend.model.architectures import architecture_of
            from backend.model.configs import get_model_config

            cfg = get_model_config(args.model)
            stack.enter_context(bigmem_lock(cfg.name))
            model = architecture_of(cfg).build(cfg, device="cpu", seed=0)
            images, texts = [_crop(cfg.image_size)], ["the buildings"]
            if args.spacenet:
                s = cfg.image_size
                images.append(np.ascontiguousarray(_read(SPACENET)[:s, :s]))
        parts = groups(model)
        ref: list[np.ndarray] = []
        t0 = time.perf_counter()
        flops = linear_flops(model, lambda: ref.extend(z_maps(model, images, texts)))
        fp32_s = time.perf_counter() - t0
        scales = [1.0 if args.model == "reduced" else z_scale(z) for z in ref]
        total = sum(flops.values())
        print(
            "FP32 "
            + json.dumps(
                {
                    "model": args.model,
                    "s": round(fp32_s, 2),
                    "linear_gflop_per_forward": round(total / 1e9 / len(ref), 1),
                    "cover": [
                        round(float((z * s > 0.5).mean()), 3)
                        for z, s in zip(ref, scales, strict=True)
                    ],
                    "scales": [round(s, 3) for s in scales],
                }
            ),
            flush=True,
        )
        for recipe in args.recipes.split(","):
            names = sorted({n for key in recipe.split("+") for n in parts[key]})
            with quantised(model, names):
                t0 = time.perf_counter()
                got = z_maps(model, images, texts)
                seconds = time.perf_counter() - t0
            share = sum(flops.get(n, 0.0) for n in names) / total
            res = {"recipe": recipe, "layers": len(names), "flop_share": round(share, 4)}
            res |= {"s": round(seconds, 2), "fp32_s": round(fp32_s, 2)}
            print("RES " + json.dumps(res | compare(ref, got, scales)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rows of the CPU precision case of ``python -m bench`` (cases: :mod:`bench.cpu_speed`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

AUTO_TARGET = 3.0
FRACTION_TARGET = 0.60
LOAD_TARGET = 1.3
IOU_TARGET, AGREE_TARGET = 0.98, 0.99


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _stages(stage: dict[str, float]) -> str:
    names = ("pre", "union", "image_encoder", "decoder", "heads", "post")
    return ", ".join(f"{n.replace('_', ' ')} {stage.get(n, 0.0):.2f}" for n in names)


def bench_cpu_speed(
    configs: list[str], tiles: int, out: Path, report: dict[str, Any], rows: list[str]
) -> None:
    """Measure every precision mode of each config on this CPU and add the table rows."""
    import torch

    from backend.model.precision import cpu_support, resolve_precision
    from bench.cpu_speed import measure

    support = cpu_support()
    modes = ["fp32", "int8"] + (["bf16"] if support.bf16 else [])
    for config in configs:
        res = measure(config, modes, tiles, out / "cpu_speed")
        report["cases"][f"cpu_speed_{config}"] = res
        auto = resolve_precision("auto", torch.device("cpu"), config)
        _mode_rows(config, res, auto, support.describe(), report, rows)
        _load_rows(config, res["load"], report, rows)


def _mode_rows(
    config: str, res: dict[str, Any], auto: str, cpu: str, report: dict, rows: list
) -> None:
    ref = res["modes"].get("fp32", {})
    if "tile_s" not in ref:
        rows.append(_row(f"CPU {config}", "", f"fp32 failed: {ref.get('error', '?')}", ""))
        return
    limits = ref["gemm_gflops"]
    flops = ref["flops"]
    rows.append(
        _row(
            f"CPU GEMM limit ({config}'s fp32 process)",
            f"{cpu}, {ref['threads']} threads",
            f"fp32 {limits['fp32']:.0f}, bf16 {limits['bf16']:.1f}, dynamic int8 "
            f"{limits['int8']:.0f} GFLOP/s",
            "plain 2048³ matmul; int8: a quantised 4096×2048×2048 Linear",
        )
    )
    stage_tf = ", ".join(
        f"{k.replace('_', ' ')} {v / 1e9:.1f}" for k, v in ref["stage_flops"].items()
    )
    for mode, case in res["modes"].items():
        if "tile_s" not in case:
            rows.append(_row(f"CPU {config}, {mode}", "", f"failed: {case.get('error')}", ""))
            continue
        gflops = flops / case["tile_s"] / 1e9
        limit = case["gemm_gflops"]["fp32" if mode == "fp32" else mode]
        speedup = ref["tile_s"] / case["tile_s"]
        fid = res["fidelity"].get(mode)
        check = (
            f"IoU {fid['iou']:.4f}, agree {100 * fid['agree']:.2f} % vs fp32 (cover "
            f"{100 * res['fidelity']['fp32_cover']:.0f} %): "
            + ("OK" if fid["iou"] >= IOU_TARGET and fid["agree"] >= AGREE_TARGET else "FAILS")
            if fid
            else f"{flops / 1e9:.1f} GFLOP per tile ({stage_tf})"
        )
        frac = gflops / limit
        report["summary"][f"CPU {config} {mode} s/tile"] = case["tile_s"]
        report["summary"][f"CPU {config} {mode} fraction of GEMM limit"] = frac
        rows.append(
            _row(
                f"CPU {config}, {mode}" + (" (= auto)" if mode == auto else ""),
                f"{case['image_px']}² tile, {case['threads']} threads",
                f"{case['tile_s']:.2f} s/tile ({speedup:.2f}× fp32); {gflops:.0f} GFLOP/s = "
                f"{100 * frac:.0f} % of the {mode} GEMM limit; stages s: "
                f"{_stages(case['stage_s'])}; peak RSS {case['peak_rss_mib']:.0f} MiB; "
                f"build {case['build_s']:.1f} s, preparation {case['prepare_s']:.1f} s",
                check
                + f"; target ≥ {100 * FRACTION_TARGET:.0f} % of limit: "
                + ("met" if frac >= FRACTION_TARGET else "missed"),
            )
        )
    if auto in res["modes"] and "tile_s" in res["modes"][auto]:
        speedup = ref["tile_s"] / res["modes"][auto]["tile_s"]
        report["summary"][f"CPU {config} auto speed-up"] = speedup
        rows.append(
            _row(
                f"CPU {config}, auto → {auto}",
                "same run",
                f"{speedup:.2f}× faster than fp32",
                f"target ≥ {AUTO_TARGET:.0f}×: " + ("met" if speedup >= AUTO_TARGET else "missed"),
            )
        )


def _load_rows(config: str, load: dict[str, Any], report: dict, rows: list) -> None:
    for kind, case in load.items():
        ratio = case["peak_rss_mib"] / case["file_mib"]
        weights_ratio = case["peak_rss_mib"] / case["weights_mib"]
        report["summary"][f"load {config} {kind} peak/file"] = ratio
        target = (
            f"target ≤ {LOAD_TARGET}× file: " + ("met" if ratio <= LOAD_TARGET else "missed")
            if kind == "fp32"
            else f"{weights_ratio:.2f}× the float32 weights it becomes"
        )
        rows.append(
            _row(
                f"load {config}, {kind} file",
                f"{case['file_mib']:.0f} MiB file",
                f"peak RSS {case['peak_rss_mib']:.0f} MiB ({ratio:.2f}× file; "
                f"{case['before_mib']:.0f} MiB before loading, growth "
                f"{(case['peak_rss_mib'] - case['before_mib']) / case['file_mib']:.2f}× file), "
                f"{case['load_s']:.1f} s",
                target,
            )
        )

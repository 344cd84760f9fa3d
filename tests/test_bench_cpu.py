"""The CPU precision case of ``make bench`` at test size: its numbers are consistent."""

from __future__ import annotations

import numpy as np
import pytest

from bench import cpu_report, cpu_speed


@pytest.fixture(scope="module")
def tiny_case(tmp_path_factory) -> dict:
    z = tmp_path_factory.mktemp("z") / "z.npy"
    res = cpu_speed.run(
        "mode", "--config", "test-tiny", "--precision", "int8", "--tiles", "1", "--threads", "1",
        "--flops", "--z-out", str(z),
    )  # fmt: skip
    res["z"] = np.load(z)
    return res


def test_mode_case_reports_flops_stages_limits_and_rss(tiny_case) -> None:
    assert tiny_case["precision"] == "int8" and tiny_case["threads"] == 1
    assert tiny_case["flops"] > 1e6
    assert tiny_case["flops"] == pytest.approx(sum(tiny_case["stage_flops"].values()))
    assert tiny_case["stage_flops"]["image_encoder"] > 0 and tiny_case["stage_flops"]["union"] > 0
    stages = tiny_case["stage_s"]
    parts = sum(v for k, v in stages.items() if k != "total")
    assert parts == pytest.approx(stages["total"], rel=1e-6)
    assert all(v > 0 for v in tiny_case["gemm_gflops"].values())
    assert tiny_case["peak_rss_mib"] > 100
    assert tiny_case["z"].shape == (128, 128)


def test_fidelity_scales_an_empty_fp32_mask_and_compares(tmp_path) -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0.0, 0.01, (64, 64)).astype(np.float32)  # all far below 0.5
    np.save(tmp_path / "z_m_fp32.npy", ref)
    np.save(tmp_path / "z_m_int8.npy", ref)
    np.save(tmp_path / "z_m_bad.npy", -ref)
    res = cpu_speed.fidelity(tmp_path, "m", ["fp32", "int8", "bad"])
    assert 0.2 <= res["fp32_cover"] <= 0.3  # half the positive z (50 %), at most 30 %
    assert res["int8"] == {"iou": 1.0, "agree": 1.0}
    assert res["bad"]["iou"] < 0.1


def test_report_rows_judge_the_targets() -> None:
    def case(tile_s: float, limit: float) -> dict:
        return {
            "tile_s": tile_s, "threads": 2, "image_px": 1024, "peak_rss_mib": 5000.0,
            "build_s": 1.0, "prepare_s": 2.0, "stage_s": {"pre": 0.1},
            "gemm_gflops": {"fp32": limit, "bf16": 0.5, "int8": limit},
        }  # fmt: skip

    res = {
        "modes": {"fp32": {**case(20.0, 150.0), "flops": 2e12, "stage_flops": {"union": 2e12}},
                  "int8": case(5.0, 600.0)},
        "fidelity": {"fp32_cover": 0.3, "int8": {"iou": 0.99, "agree": 0.995}},
    }  # fmt: skip
    rows: list[str] = []
    report: dict = {"summary": {}}
    cpu_report._mode_rows("m", res, "int8", "AVX2", report, rows)
    text = "\n".join(rows)
    assert "4.00× faster than fp32" in text and "target ≥ 3×: met" in text
    assert "100 GFLOP/s = 67 % of the fp32 GEMM limit" in text  # 2 TFLOP / 20 s vs 150
    assert "IoU 0.9900, agree 99.50 %" in text and ": OK" in text
    assert report["summary"]["CPU m auto speed-up"] == pytest.approx(4.0)
    rows.clear()
    load = {"fp32": {"file_mib": 1000.0, "weights_mib": 1000.0, "before_mib": 300.0,
                     "peak_rss_mib": 1250.0, "load_s": 1.0}}  # fmt: skip
    cpu_report._load_rows("m", load, report, rows)
    assert "1.25× file" in rows[0] and "target ≤ 1.3× file: met" in rows[0]

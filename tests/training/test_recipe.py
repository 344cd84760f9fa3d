"""The GPU recipe (nano_gpu.yaml) and the trainer features it uses: time-aware LR decay,
explicit schedule length, exports at sample milestones, inference metadata, bounded text weight."""

from __future__ import annotations

import math

import pytest
from conftest import SMOKE, read_csv

from backend.errors import ConfigError
from backend.model.checkpoint import read_checkpoint
from training.cli import main
from training.config import CONFIG_DIR, load_train_config
from training.loop import lr_factor
from training.refer.dubai import CLASS_ORDER
from training.refer.nwpu import CLASS_KEYS

GPU = CONFIG_DIR / "nano_gpu.yaml"
CPU = CONFIG_DIR / "nano_default_2h.yaml"


def test_gpu_config_parses_to_the_documented_recipe():
    cfg, cpu = load_train_config(GPU), load_train_config(CPU)
    assert (cfg.model, cfg.batch_size, cfg.precision, cfg.device) == ("nano", 256, "bf16", "cuda")
    assert [(s.format, s.root, s.tag, s.repeat) for s in cfg.data.sets] == [
        ("packed", "data_gen/packed/nwpu", "nwpu", 4), ("packed", "data_gen/packed/dubai",
                                                         "dubai", 4)]
    assert cfg.data.num_workers == 14 and cfg.data.pin_memory
    # square-root rule from the CPU run (batch 8), taken 0.7x: between the CPU LR and the rule
    sqrt_rule = cpu.optim.lr_new * math.sqrt(cfg.batch_size / cpu.batch_size)
    assert cfg.optim.lr_new == cfg.optim.lr_base == pytest.approx(0.7 * sqrt_rule, rel=0.02)
    assert cfg.optim.schedule == "cosine" and cfg.optim.warmup_steps == 100
    assert cfg.optim.total_steps == cfg.max_steps == 1400
    assert cfg.optim.schedule_time_s == cfg.time_limit_s == 270
    assert cfg.save_at_samples == [64000] and 64000 % cfg.batch_size == 0
    assert cfg.loss.text_weight_range == [0.5, 1.5]
    assert cfg.augment.zoom_range == [0.5, 2.0] and cfg.augment.hue_deg == 15
    # a working resolution for every concept the generated sets train
    assert set(cfg.inference.gsd_m_by_concept) == set(CLASS_KEYS.values()) | set(CLASS_ORDER)
    assert cfg.inference.gsd_m_by_concept["vehicle"] == 0.25 and cfg.inference.gsd_m == 1.0
    assert [(c.start_epoch, c.types) for c in cfg.curriculum] == [(0, ["class", "unique"]),
                                                                  (2, [])]


def test_time_fraction_ends_the_decay_early():
    cfg = load_train_config(GPU, ["optim.warmup_steps=0"])
    cosine_at_10pct = 0.05 + 0.95 * 0.5 * (1 + math.cos(0.1 * math.pi))
    assert lr_factor(cfg, 0, 100, 1000) == pytest.approx(cosine_at_10pct)
    assert lr_factor(cfg, 0, 100, 1000, time_fraction=0.5) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_factor(cfg, 0, 100, 1000, time_fraction=1.7) == pytest.approx(0.05)
    assert lr_factor(cfg, 0, 900, 1000, time_fraction=0.5) == pytest.approx(
        lr_factor(cfg, 0, 900, 1000))  # the step fraction leads


def test_recipe_fields_are_checked():
    for override, key in [("inference.gsd_m_by_concept={vehicle: 0}", "gsd_m_by_concept"),
                          ("optim.total_steps=-1", "total_steps"),
                          ("augment.zoom_range=[2.0, 0.5]", "zoom_range"),
                          ("augment.hue_deg=200", "hue_deg"),
                          ("data.prefetch_factor=0", "prefetch_factor"),
                          ("loss.text_weight_range=[1.0]", "text_weight_range")]:
        with pytest.raises(ConfigError, match=key):
            load_train_config(GPU, [override])


def test_milestone_export_inference_metadata_and_bounded_weight_log(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--config", str(SMOKE), f"out_dir={out}", "progress=false",
            "save_at_samples=[8, 12]", "optim.schedule=linear", "optim.total_steps=8",
            "loss.text_weight_range=[0.5, 1.5]",
            "inference.gsd_m=0.7", "inference.gsd_m_by_concept={vehicle: 0.25, water: 1.0}"]
    assert main(args) == 0
    for n, step in ((8, 2), (12, 3)):
        _, config, meta, _ = read_checkpoint(out / f"samples_{n}.safetensors")
        assert meta["training"]["samples_seen"] == n and meta["training"]["global_step"] == step
        assert meta["metrics"] == {}
        assert meta["inference"] == {"gsd_m": 0.7,
                                     "gsd_m_by_concept": {"vehicle": 0.25, "water": 1.0}}
        assert config.gsd_m == 0.7
    _, config, meta, _ = read_checkpoint(out / "final.safetensors")
    assert meta["inference"]["gsd_m_by_concept"]["vehicle"] == 0.25 and config.gsd_m == 0.7
    rows = read_csv(out / "train_log.csv")
    assert [int(r["samples"]) for r in rows] == [4, 8, 12, 16]
    assert all(0.5 <= float(r["text_weight"]) <= 1.5 for r in rows)
    # the linear decay spans total_steps=8, not the 2 epochs x 2 steps: 1 - 3/8 at step 4
    assert float(rows[-1]["lr_new"]) == pytest.approx(1e-2 * (1 - 3 / 8))

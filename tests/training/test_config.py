from __future__ import annotations

import pytest

from backend.errors import ConfigError
from training.config import CONFIG_DIR, load_train_config
from training.loop import curriculum_types, lr_factor, start_due_stages

SYN = ["data.sets=[{format: synthetic}]"]


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_bundled_configs_load(path):
    cfg = load_train_config(path)
    assert cfg.data.sets and cfg.epochs >= 1


def test_paper_recipes():
    rr = load_train_config(CONFIG_DIR / "rrsisd_large.yaml")
    rs = load_train_config(CONFIG_DIR / "refsegrs_large.yaml")
    for cfg in (rr, rs):
        assert cfg.model == "large" and cfg.batch_size == 1 and cfg.precision == "auto"
        assert (cfg.optim.lr_base, cfg.optim.lr_new, cfg.optim.weight_decay) == (5e-5, 1e-4, 0.01)
        assert (cfg.loss.bce_weight, cfg.loss.dice_weight, cfg.loss.boundary_weight) == \
            (0.9, 0.1, 0.2)
        assert cfg.seed == 2401 and cfg.optim.grad_clip_norm == 0
    assert rr.epochs == 40 and rr.optim.schedule == "constant"
    assert rr.augment.cutout_fraction == 0.2 and rr.augment.hflip == 0
    assert rs.epochs == 60 and rs.optim.schedule == "step" and rs.optim.step_epochs == [50]
    # RefSegRS: x0.1 from epoch index 50 (the 51st epoch) on; constant before
    assert lr_factor(rs, 49, 0, 100) == 1.0 and lr_factor(rs, 50, 0, 100) == pytest.approx(0.1)
    assert lr_factor(rr, 39, 10**6, 100) == 1.0


def test_lgce_paper_recipes():
    """The official RRSIS recipe: AdamW 5e-5 everywhere, poly 0.9, 40 epochs, batch 8, 480²,
    class-weighted CE only, first 10 BERT layers trained."""
    from backend.model.configs import get_model_config

    for name in ("refsegrs_lgce.yaml", "rrsisd_lgce.yaml"):
        cfg = load_train_config(CONFIG_DIR / name)
        mcfg = get_model_config(cfg.model)
        assert mcfg.architecture == "lgce" and mcfg.image_size == 480
        assert mcfg.window_size == 12 and mcfg.text_trainable_layers == 10
        assert (cfg.optim.lr_base, cfg.optim.lr_new, cfg.optim.weight_decay) == (5e-5, 5e-5, 0.01)
        assert cfg.optim.schedule == "poly" and cfg.epochs == 40 and cfg.batch_size == 8
        assert (cfg.loss.bce_weight, cfg.loss.dice_weight, cfg.loss.boundary_weight,
                cfg.loss.prompt_weight) == (1.0, 0.0, 0.0, 0.0)
        assert cfg.loss.class_weights == [0.9, 1.1]
        assert lr_factor(cfg, 0, 0, 100) == 1.0
        assert lr_factor(cfg, 0, 50, 100) == pytest.approx(0.5**0.9)
        assert lr_factor(cfg, 0, 100, 100) == 0.0


def test_schedules_and_curriculum():
    cfg = load_train_config(None, [*SYN, "optim.schedule=cosine", "optim.warmup_steps=10",
                                   "optim.min_lr_ratio=0.1"])
    assert lr_factor(cfg, 0, 0, 100) == pytest.approx(0.1)  # warm-up step 1 of 10
    assert lr_factor(cfg, 0, 50, 100) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(cfg, 0, 100, 100) == pytest.approx(0.1)
    cfg = load_train_config(None, [*SYN, "curriculum=[{start_epoch: 0, types: [class]}, "
                                   "{start_epoch: 2, types: []}]"])
    assert curriculum_types(cfg, 1) == ["class"] and curriculum_types(cfg, 2) == []


def test_overrides_are_type_checked():
    cfg = load_train_config(None, [*SYN, "data.sets.0.synthetic_samples=5",
                                   "model_overrides.image_size=64", "optim.betas=[0.8,0.9]"])
    assert cfg.data.sets[0].synthetic_samples == 5 and cfg.model_overrides == {"image_size": 64}
    with pytest.raises(ConfigError, match=r"'lrr'.*optim\.lrr"):
        load_train_config(None, [*SYN, "optim.lrr=1"])
    with pytest.raises(ConfigError, match="epochs"):
        load_train_config(None, [*SYN, "epochs=ten"])
    with pytest.raises(ConfigError, match="key=value"):
        load_train_config(None, [*SYN, "epochs"])
    names = "valid names: base, large, lgce-nano.*official-tiny, test-tiny"
    with pytest.raises(ConfigError, match=names):
        load_train_config(None, [*SYN, "model=huge"])
    with pytest.raises(ConfigError, match="schedule"):
        load_train_config(None, [*SYN, "optim.schedule=exp"])
    with pytest.raises(ConfigError, match="needs a root"):
        load_train_config(None, ["data.sets=[{format: refsegrs}]"])
    with pytest.raises(ConfigError, match="data.sets is empty"):
        load_train_config(None, [])
    with pytest.raises(ConfigError, match=r"not found.*smoke\.yaml"):
        load_train_config("nope.yaml")


def test_val_types_restrict_the_validation_samples(refsegrs_root):
    """data.sets.N.val_types: validate on those expression types only; unset = every sample."""
    from training.config import load_train_config
    from training.loop import build_val_sets

    rows = ['{"id": 21, "type": "class"}', '{"id": 22, "type": "position"}']
    (refsegrs_root / "refer_val.jsonl").write_text("\n".join(rows) + "\n")
    base = [f"data.sets=[{{format: refsegrs, root: {refsegrs_root}}}]", "model=test-tiny"]
    every = build_val_sets(load_train_config(None, base), 64)[0]
    assert [every[k]["text"] for k in range(len(every))] == ["low vegetation", "building"]
    only = build_val_sets(load_train_config(None, [*base, "data.sets.0.val_types=[position]"]),
                          64)[0]
    assert [only[k]["text"] for k in range(len(only))] == ["building"]
    assert only[0]["type"] == "position"
    with pytest.raises(ConfigError, match=r"no val samples of types \['size'\]"):
        build_val_sets(load_train_config(None, [*base, "data.sets.0.val_types=[size]"]), 64)


def test_time_based_curriculum_stages():
    """Stages with start_fraction begin at the first epoch after that share of the budget."""
    stages = ("curriculum=[{start_fraction: 0.0, types: [class]}, "
              "{start_fraction: 0.25, types: []}]")
    cfg = load_train_config(None, [*SYN, stages, "optim.schedule_time_s=100"])
    started: list[int] = []
    assert start_due_stages(cfg, started, 0, 0.0) and started == [0]
    assert not start_due_stages(cfg, started, 3, 0.2) and started == [0]
    assert curriculum_types(cfg, 3, started) == ["class"]
    assert start_due_stages(cfg, started, 4, 0.26) and started == [0, 4]
    assert curriculum_types(cfg, 3, started) == ["class"]  # a started stage keeps its epoch
    assert curriculum_types(cfg, 4, started) == [] and curriculum_types(cfg, 9, started) == []
    assert curriculum_types(cfg, 0, []) == []  # nothing started yet: all types
    with pytest.raises(ConfigError, match="schedule_time_s"):
        load_train_config(None, [*SYN, stages])
    with pytest.raises(ConfigError, match="every stage"):
        load_train_config(None, [*SYN, "optim.schedule_time_s=100", "curriculum=[{start_epoch: "
                                 "0, types: [class]}, {start_fraction: 0.5, types: []}]"])
    with pytest.raises(ConfigError, match="must increase"):
        load_train_config(None, [*SYN, "optim.schedule_time_s=100", "curriculum=[{start_fraction"
                                 ": 0.5, types: [class]}, {start_fraction: 0.1, types: []}]"])


def test_base_key_layers_configs(tmp_path):
    """``base: other.yaml`` loads the other file first (relative to this file's folder); this
    file overrides it key by key; missing bases and cycles are clear errors."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "root.yaml").write_text(
        "model: nano\ndata:\n  sets: [{format: synthetic}]\noptim:\n  lr_base: 1.0e-3\n"
        "  lr_new: 2.0e-3\nseed: 7\n")
    (tmp_path / "sub" / "mid.yaml").write_text("base: ../root.yaml\noptim:\n  lr_new: 5.0e-4\n")
    (tmp_path / "sub" / "leaf.yaml").write_text("base: mid.yaml\nseed: 9\n")
    cfg = load_train_config(tmp_path / "sub" / "leaf.yaml")
    assert (cfg.model, cfg.seed) == ("nano", 9)
    assert (cfg.optim.lr_base, cfg.optim.lr_new) == (1.0e-3, 5.0e-4)
    assert [s.format for s in cfg.data.sets] == ["synthetic"]

    (tmp_path / "lost.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_train_config(tmp_path / "lost.yaml")
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_train_config(tmp_path / "a.yaml")


def test_bundled_configs_with_a_base_match_what_was_run():
    """The derived configs equal their base plus the fields the runs changed."""
    ft = load_train_config(CONFIG_DIR / "nano_default_ft.yaml")
    ft2 = load_train_config(CONFIG_DIR / "nano_default_ft2.yaml")
    assert ft2.init_checkpoint == "runs/nano_default_ft/final.safetensors"
    assert (ft2.optim.lr_base, ft2.seed) == (1.25e-4, 2403)
    assert ft2.augment == ft.augment and ft2.loss == ft.loss and ft2.inference == ft.inference
    nano = load_train_config(CONFIG_DIR / "compare60_nano.yaml")
    lgce = load_train_config(CONFIG_DIR / "compare60_lgce_nano.yaml")
    assert lgce.model == "lgce-nano" and lgce.out_dir == "runs/compare60_lgce_nano"
    assert (lgce.optim, lgce.curriculum, lgce.augment) == (nano.optim, nano.curriculum,
                                                            nano.augment)

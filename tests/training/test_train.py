"""Trainer behaviour on the tiny model: learning, overfitting, exact resume, DDP, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, SMOKE, read_csv

from backend.model.checkpoint import load_checkpoint, read_checkpoint
from training.cli import main

LOSS_KEYS = ("loss", "bce", "dice", "boundary")


def _sha(path):
    return read_checkpoint(path)[3]


def test_smoke_training_lowers_the_loss_and_writes_the_run(smoke_run):
    rows = read_csv(smoke_run / "train_log.csv")
    assert [int(r["global_step"]) for r in rows] == [1, 2, 3, 4]
    losses = [float(r["loss"]) for r in rows]
    assert losses[-1] < losses[0] - 0.05, losses
    val = read_csv(smoke_run / "val_log.csv")
    assert {r["group"] for r in val} == {"all", "class", "position"}
    assert (smoke_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ck = load_checkpoint(smoke_run / "best.safetensors")
    meta = ck.metadata
    assert meta["training"]["data"][0]["tag"] == "synthetic"
    assert meta["training"]["config"]["model"] == "test-tiny"
    assert set(meta["metrics"]["synthetic"]["all"]) >= {"oIoU", "mIoU", "Pr@0.5", "n"}
    result = json.loads((smoke_run / "metrics.json").read_text())
    assert result["epochs"] == 2 and result["global_step"] == 4


def test_resume_continues_exactly(smoke_run, tmp_path):
    """Stop mid-epoch (max_steps=3), resume: same losses and bit-identical final weights."""
    out = tmp_path / "resumed"
    base = ["train", "--config", str(SMOKE), f"out_dir={out}", "progress=false"]
    assert main([*base, "max_steps=3"]) == 0
    assert len(read_csv(out / "train_log.csv")) == 3
    assert main(base) == 2  # refuses to overwrite a run without resume=auto
    assert main([*base, "resume=auto"]) == 0
    ref, got = read_csv(smoke_run / "train_log.csv"), read_csv(out / "train_log.csv")
    assert [{k: r[k] for k in LOSS_KEYS} for r in got] == [{k: r[k] for k in LOSS_KEYS}
                                                          for r in ref]
    assert _sha(out / "final.safetensors") == _sha(smoke_run / "final.safetensors")
    assert read_csv(out / "val_log.csv") == read_csv(smoke_run / "val_log.csv")


def test_overfits_four_samples(tmp_path):
    out = tmp_path / "overfit"
    args = ["train", "--config", str(SMOKE), f"out_dir={out}", "progress=false",
            "data.sets.0.synthetic_samples=4", "data.sets.0.val_split=train", "epochs=200",
            "eval_every=10", "checkpoint_every=1000", "stop_at_miou=90", "log_every=10",
            "optim.lr_base=2e-2", "optim.lr_new=2e-2"]
    assert main(args) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result["metrics"]["synthetic"]["all"]["mIoU"] >= 90.0, result
    assert result["epochs"] < 200  # stopped early once reached


@pytest.mark.ddp
def test_two_process_gloo_matches_one_process(smoke_run, tmp_path):
    """torchrun 2 x batch 2 (gloo, CPU) = 1 x batch 4: same losses, same val metrics."""
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "training", "train", "--config", str(SMOKE), f"out_dir={out}",
         "progress=false", "batch_size=2", "threads=1", "eval_batch_size=3"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref, got = read_csv(smoke_run / "train_log.csv"), read_csv(out / "train_log.csv")
    assert len(ref) == len(got) == 4
    for a, b in zip(ref, got, strict=True):
        for k in LOSS_KEYS:
            assert float(b[k]) == pytest.approx(float(a[k]), rel=1e-4, abs=1e-6), (k, a, b)
    vref, vgot = read_csv(smoke_run / "val_log.csv"), read_csv(out / "val_log.csv")
    assert [(r["epoch"], r["group"], r["n"]) for r in vgot] == \
        [(r["epoch"], r["group"], r["n"]) for r in vref]  # sharded eval counts every sample once
    for a, b in zip(vref, vgot, strict=True):
        for k in ("oIoU", "mIoU", "Pr@0.5", "Pr@0.9"):
            assert float(b[k]) == pytest.approx(float(a[k]), abs=1e-3), (k, a, b)


def test_export_cli_matches_final_checkpoint(smoke_run, tmp_path):
    out = tmp_path / "exported.safetensors"
    assert main(["export", "--checkpoint", str(smoke_run / "last.pt"), "--out", str(out)]) == 0
    assert _sha(out) == _sha(smoke_run / "final.safetensors")
    assert main(["export", "--checkpoint", str(smoke_run / "last.pt"), "--out", str(out)]) == 2
    import backend

    seg = backend.load_segmenter(out, device="cpu")
    assert seg.name == "test-tiny" and seg.checkpoint_sha256 == _sha(out)
    prob = seg.predict(torch.zeros(40, 50, 3, dtype=torch.uint8).numpy(), "the red square")
    assert prob.shape == (40, 50)


def test_gradient_accumulation_matches_the_full_batch(smoke_run, tmp_path):
    """batch 2 x 2 accumulation steps = batch 4: same per-step losses, samples and val metrics."""
    out = tmp_path / "accum"
    assert main(["train", "--config", str(SMOKE), f"out_dir={out}", "progress=false",
                 "batch_size=2", "grad_accum_steps=2"]) == 0
    ref, got = read_csv(smoke_run / "train_log.csv"), read_csv(out / "train_log.csv")
    assert [(r["global_step"], r["samples"]) for r in got] == \
        [(r["global_step"], r["samples"]) for r in ref]
    for a, b in zip(ref, got, strict=True):
        for k in LOSS_KEYS:
            assert float(b[k]) == pytest.approx(float(a[k]), rel=1e-4, abs=1e-6), (k, a, b)
    for a, b in zip(read_csv(smoke_run / "val_log.csv"), read_csv(out / "val_log.csv"),
                    strict=True):
        for k in ("oIoU", "mIoU", "Pr@0.5", "Pr@0.9"):
            assert float(b[k]) == pytest.approx(float(a[k]), abs=1e-3), (k, a, b)


def test_lgce_trains_resumes_exports_and_evaluates_with_the_same_trainer(tmp_path):
    """The second architecture through the same configs: train, exact resume, export, eval."""
    from backend.model.lgce.model import LGCE

    base = ["train", "--config", str(SMOKE), "model=lgce-tiny", "model_overrides={}",
            "progress=false"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert main([*base, f"out_dir={full}"]) == 0
    rows = read_csv(full / "train_log.csv")
    assert [float(r["boundary"]) for r in rows] == [0.0] * 4  # LGCE supplies no TBL input
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert main([*base, f"out_dir={resumed}", "max_steps=3"]) == 0
    assert main([*base, f"out_dir={resumed}", "resume=auto"]) == 0
    assert _sha(resumed / "final.safetensors") == _sha(full / "final.safetensors")
    ck = torch.load(full / "last.pt", map_location="cpu", weights_only=True)
    assert ck["architecture"] == "lgce"
    out = tmp_path / "exported.safetensors"
    assert main(["export", "--checkpoint", str(full / "last.pt"), "--out", str(out)]) == 0
    assert _sha(out) == _sha(full / "final.safetensors")
    loaded = load_checkpoint(out)
    assert isinstance(loaded.model, LGCE) and loaded.metadata["training"]["config"]["model"] == (
        "lgce-tiny")
    for path in (out, full / "last.pt"):
        assert main(["eval", "--checkpoint", str(path), "--dataset", "synthetic", "--root", "-",
                     "--split", "val", "--threads", "1"]) == 0


@pytest.mark.parametrize(("budget_s", "starts"), [(1e6, [0]), (1e-9, [0, 0])])
def test_time_based_curriculum_is_recorded_and_kept_on_resume(tmp_path, budget_s, starts):
    """A wall-clock curriculum stage starts once its share of the budget has passed; the epoch
    it started with is saved in last.pt and a resumed run keeps it."""
    from training.checkpoints import load_training_checkpoint

    out = tmp_path / "timed"
    base = ["train", "--config", str(SMOKE), f"out_dir={out}", "progress=false",
            f"optim.schedule_time_s={budget_s}", "curriculum=[{start_fraction: 0.0, types: "
            "[class]}, {start_fraction: 0.5, types: []}]"]
    assert main([*base, "max_steps=3"]) == 0
    assert load_training_checkpoint(out / "last.pt")["state"]["curriculum_starts"] == starts
    assert main([*base, "resume=auto"]) == 0
    assert load_training_checkpoint(out / "last.pt")["state"]["curriculum_starts"] == starts
    ref = tmp_path / "uninterrupted"
    assert main([*base[:3], f"out_dir={ref}", *base[4:]]) == 0
    assert load_training_checkpoint(ref / "last.pt")["state"]["curriculum_starts"] == starts
    steps = [json.loads((d / "metrics.json").read_text())["global_step"] for d in (out, ref)]
    assert steps[0] == steps[1] == (4 if starts == [0, 0] else 2)  # class-only epochs: 1 step
    assert _sha(out / "final.safetensors") == _sha(ref / "final.safetensors")

"""Simulated clicks (SAM's protocol), training with them, and the click curve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SMOKE

from backend.errors import ConfigError, InputError
from backend.model.checkpoint import load_checkpoint
from training.cli import main
from training.click_eval import evaluate_clicks, parse_clicks
from training.clicks import add_clicks, component_labels, next_clicks
from training.data.datasets import EvalSet, Source
from training.data.synthetic import SyntheticDataset


def test_component_labels_are_8_connected():
    m = torch.zeros(1, 6, 6, dtype=torch.bool)
    m[0, 0, 0] = m[0, 1, 1] = True  # diagonal neighbours: one region
    m[0, 4:6, 4:6] = True
    labels = component_labels(m)
    assert labels[0, 0, 0] == labels[0, 1, 1] != labels[0, 4, 4]
    assert len(labels.unique()) == 3  # background + two regions


def test_next_click_goes_to_the_largest_error_with_its_sign():
    gt = torch.zeros(2, 16, 16, dtype=torch.bool)
    pred = torch.zeros_like(gt)
    gt[0, 2:10, 2:10] = True  # image 0: 64 px missed, 4 px wrongly included
    pred[0, 12:14, 12:14] = True
    pred[1, 0:8, 8:16] = True  # image 1: 64 px wrongly included
    gt[1, 0:2, 0:2] = True  # and 4 px missed
    points, labels = next_clicks(pred, gt)
    assert labels.tolist() == [1, 0]
    cx, cy = (points[0] * 16).tolist()
    assert 2 <= cx < 10 and 2 <= cy < 10  # inside the missed square, near its centre
    assert abs(cx - 6) <= 1.5 and abs(cy - 6) <= 1.5
    cx, cy = (points[1] * 16).tolist()
    assert 8 <= cx < 16 and 0 <= cy < 8
    exact, lab = next_clicks(gt, gt)
    assert lab.tolist() == [-1, -1]  # nothing to correct: a padding point
    rng = np.random.default_rng(0)
    for _ in range(5):  # training: uniformly inside the same region
        p, lab = next_clicks(pred, gt, rng)
        x, y = (p[0] * 16).tolist()
        assert lab[0] == 1 and 2 <= x < 10 and 2 <= y < 10


def test_parse_clicks_and_models_without_a_prompt_encoder():
    assert parse_clicks("5,0,3,3") == [0, 3, 5]
    for bad in ("", "a", "-1", "21"):
        with pytest.raises(InputError):
            parse_clicks(bad)
    with pytest.raises(ConfigError, match="takes no clicks"):
        evaluate_clicks(torch.nn.Linear(1, 1), None, [0])  # type: ignore[arg-type]


def test_clicks_training_teaches_test_tiny_to_follow_clicks(tmp_path):
    """A few hundred steps with clicks: one click must beat the text alone by far.

    Fails when the clicks are ignored anywhere between the prompts and the loss (the curve
    would be flat).
    """
    out = tmp_path / "clicks"
    args = ["train", "--config", str(SMOKE), f"out_dir={out}", "progress=false", "epochs=1000",
            "max_steps=240", "eval_every=1000", "checkpoint_every=1000", "log_every=40",
            "data.sets.0.synthetic_samples=64", "optim.lr_base=3e-3", "optim.lr_new=3e-3",
            "clicks.prob=1.0", "clicks.max_clicks=2"]
    assert main(args) == 0
    model = load_checkpoint(out / "final.safetensors").model
    ds = SyntheticDataset(32, 64, split="val")
    eval_set = EvalSet(Source("syn", ds), model.image_size, list(range(32)))
    curve = evaluate_clicks(model, eval_set, [0, 1, 3], noc_max=5)
    miou = {k: v["all"]["mIoU"] for k, v in curve["clicks"].items()}
    assert miou["1"] > miou["0"] + 15, miou
    assert miou["3"] > miou["0"] + 15, miou
    assert curve["NoC@85"]["all"] <= 5
    # a positive click on the target raises the target's probability (mean over 8 samples)
    gains = []
    for k in range(8):
        sample = ds[k]
        gt = torch.as_tensor(sample.mask).bool()[None]
        with torch.inference_mode():
            enc = model.encode(model.prepare_inputs(sample.image[None], [sample.text]))
            before = torch.sigmoid(model.decode(enc).logits)[0, 0]
            points, labels = next_clicks(torch.zeros_like(gt), gt)
            after = torch.sigmoid(model.decode(enc, add_clicks(None, points, labels)).logits)
        gains.append(float(after[0, 0][gt[0]].mean() - before[gt[0]].mean()))
    assert np.mean(gains) > 0.05, gains

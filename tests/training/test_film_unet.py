"""The FiLM U-Net ablation baseline: trainer API, text conditioning, gradients, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.errors import ConfigError
from training.baselines.film_unet import FilmUNetConfig, build_film_unet
from training.losses import LossConfig, ReferringLoss


@pytest.fixture
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    a[10:25, 15:40] = (220, 30, 30)
    return np.stack([a, a[::-1].copy()])


def test_about_three_million_parameters_and_output_shapes(images):
    model = build_film_unet()
    n = model.parameter_counts()
    assert 2.5e6 <= n["total"] <= 3.5e6 and n["trainable"] == n["total"] and n["adapters"] == 0
    small = build_film_unet(image_size=64)
    with torch.inference_mode():
        out = small(small.prepare_inputs(images, ["the red box", "the largest building"]))
        big = small(small.prepare_inputs(images, ["a", "b"]), output_size=(40, 56))
    assert out.logits.shape == (2, 1, 64, 64) and out.logits.dtype == torch.float32
    assert big.logits.shape == (2, 1, 40, 56)
    assert out.boundary_weight.shape == (2,) and out.pseudo_mask.shape == (2, 1, 4, 4)
    assert out.text_feat.shape[0] == 2 and out.text_feat.shape[-1] == 256


def test_words_hash_stably_and_pad():
    model = build_film_unet(image_size=64)
    words, pad = model.tokenize(["The road", "the  road on the left!"])
    assert words.shape == (2, 5) and pad.tolist()[0] == [False, False, True, True, True]
    assert words[0, 0] == words[1, 0] == words[1, 3]  # "the"
    assert words[0, 1] == words[1, 1] and words[0, 0] != words[0, 1]
    assert int(words.max()) < model.config.vocab_buckets and int(words[~pad].min()) >= 1


def test_text_conditions_the_output_once_film_is_trained(images):
    model = build_film_unet(image_size=64)
    with torch.no_grad():  # FiLM starts at zero (unconditioned); open it as training would
        for lin in model.films:
            lin.weight.normal_(0, 0.1)
    with torch.inference_mode():
        a = model(model.prepare_inputs(images[:1], ["the road"])).logits
        b = model(model.prepare_inputs(images[:1], ["the vehicle on the left"])).logits
        c = model(model.prepare_inputs(images[:1], ["the road"])).logits
    assert (a - b).abs().max() > 1e-4
    torch.testing.assert_close(a, c, rtol=0, atol=0)  # deterministic


def test_padding_and_batching_do_not_change_the_output(images):
    model = build_film_unet(image_size=64)
    with torch.no_grad():
        for lin in model.films:
            lin.weight.normal_(0, 0.1)
    texts = ["the road", "the second storage tank from the top"]
    with torch.inference_mode():
        batch = model(model.prepare_inputs(images, texts)).logits
        for i in range(2):
            one = model(model.prepare_inputs(images[i : i + 1], texts[i : i + 1])).logits
            torch.testing.assert_close(batch[i : i + 1], one, atol=1e-5, rtol=1e-4)


def test_every_parameter_gets_a_gradient_from_the_trainer_loss(images):
    model = build_film_unet(image_size=64)
    model.train()
    inputs = model.prepare_inputs(images, ["the red box", "noise"])
    out = model(inputs)
    masks = torch.zeros((2, 64, 64), dtype=torch.bool)
    masks[:, 16:40, 16:48] = True
    loss = ReferringLoss(LossConfig())(out.logits, masks, out.boundary_weight)["loss"]
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
    groups = model.param_groups()
    assert len(groups["new"]) == len(list(model.parameters())) and groups["base"] == []


def test_a_few_steps_fit_one_sample(images):
    torch.manual_seed(0)
    model = build_film_unet(image_size=32, widths=(8, 8, 16, 16))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    mask = torch.zeros((1, 32, 32), dtype=torch.bool)
    mask[:, 8:20, 10:28] = True
    crit = ReferringLoss(LossConfig())
    losses = []
    for _ in range(40):
        out = model(model.prepare_inputs(images[:1], ["the red box"]))
        loss = crit(out.logits, mask, out.boundary_weight)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    iou = ((out.logits[0, 0] > 0) & mask[0]).sum() / ((out.logits[0, 0] > 0) | mask[0]).sum()
    assert iou > 0.7


def test_config_round_trip_and_bad_values():
    cfg = FilmUNetConfig(image_size=128)
    assert FilmUNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="multiple of 16"):
        FilmUNetConfig(image_size=100)
    with pytest.raises(ConfigError, match="unknown fields"):
        FilmUNetConfig.from_dict({"nope": 1})
    with pytest.raises(ConfigError, match="override"):
        build_film_unet(not_a_field=3)


def test_trainer_trains_exports_and_evaluates_the_baseline_by_name(tmp_path, capsys):
    """`model: film-unet` goes through the same trainer, export and eval CLI."""
    import json

    from conftest import SMOKE

    from training.baselines import is_baseline_file, load_baseline
    from training.cli import main

    out = tmp_path / "run"
    args = ["train", "--config", str(SMOKE), f"out_dir={out}", "progress=false",
            "model=film-unet", "model_overrides={image_size: 64, widths: [8, 8, 16, 16]}"]
    assert main(args) == 0
    best = out / "best.safetensors"
    assert is_baseline_file(best) and not is_baseline_file(tmp_path / "missing.safetensors")
    model = load_baseline(best)
    assert model.config.image_size == 64 and model.config.widths == (8, 8, 16, 16)
    metrics = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    for ck in (best, out / "last.pt"):
        assert main(["eval", "--checkpoint", str(ck), "--dataset", "synthetic", "--root",
                     str(tmp_path), "--split", "val"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert lines[0]["mIoU"] == lines[1]["mIoU"]
    assert metrics["best_score"] is not None

from __future__ import annotations

import math

import pytest
import torch

from backend.errors import ConfigError
from training.losses import (
    LossConfig,
    ReferringLoss,
    boundary_map,
    dice_loss,
    text_guided_boundary_loss,
    weighted_bce,
)

LN3 = math.log(3.0)


def _pair():
    # p = sigmoid(z) = [0.5, 0.75]; target [fg, bg]
    z = torch.tensor([[[[0.0, LN3]]]])
    y = torch.tensor([[[1.0, 0.0]]])
    return z, y


def test_weighted_bce_hand_computed():
    z, y = _pair()
    # fg pixel: -log 0.5 = ln2 with weight 1.1; bg pixel: -log(1 - 0.75) = ln4 with weight 0.9
    expected = (1.1 * math.log(2) + 0.9 * math.log(4)) / (1.1 + 0.9)
    assert weighted_bce(z, y).item() == pytest.approx(expected, rel=1e-6)
    # equal weights: plain BCE mean
    assert weighted_bce(z, y, (1.0, 1.0)).item() == pytest.approx(
        (math.log(2) + math.log(4)) / 2, rel=1e-6
    )


def test_weighted_bce_is_normalised_per_sample():
    """Batch loss = mean of per-sample losses, so splitting a batch over ranks changes nothing."""
    torch.manual_seed(0)
    z = torch.randn(4, 1, 8, 8)
    y = (torch.rand(4, 8, 8) > 0.8).float()
    whole = weighted_bce(z, y)
    halves = (weighted_bce(z[:2], y[:2]) + weighted_bce(z[2:], y[2:])) / 2
    assert whole.item() == pytest.approx(halves.item(), rel=1e-6)


def test_dice_hand_computed():
    z, y = _pair()
    fg = 1 - 2 * 0.5 / (1.25 + 1)  # p=[.5,.75], t=[1,0]
    bg = 1 - 2 * 0.25 / (0.75 + 1)  # 1-p=[.5,.25], 1-t=[0,1]
    assert dice_loss(z, y, "both", smooth=0).item() == pytest.approx(fg + bg, rel=1e-6)
    assert dice_loss(z, y, "fg", smooth=0).item() == pytest.approx(fg, rel=1e-6)
    with pytest.raises(ConfigError, match="dice classes"):
        dice_loss(z, y, "bg")


def test_boundary_map_hand_computed():
    m = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    torch.testing.assert_close(boundary_map(m), torch.tensor([[[0.0, 1.0], [1.0, 0.0]]]))
    m = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]])
    expected = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(boundary_map(m), expected)


def test_tbl_hard_hand_computed_and_gradient_only_reaches_weight():
    z = torch.tensor([[[[3.0, 3.0], [-2.0, 1.0]]]], requires_grad=True)  # hard mask [[1,1],[0,1]]
    y = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    w = torch.tensor([2.0], requires_grad=True)
    # g(mhat) = [[0,0],[1,1]], g(y) = [[0,1],[1,0]] -> diff^2 = [0,1,0,1], mean 0.5
    loss = text_guided_boundary_loss(z, y, w, mode="hard")
    assert loss.item() == pytest.approx(4 * 0.5)
    loss.backward()
    assert z.grad is None or torch.count_nonzero(z.grad) == 0
    assert w.grad.item() == pytest.approx(2 * 2.0 * 0.5)  # d/dw mean(w^2 d^2) = 2 w mean(d^2)


def test_tbl_soft_hand_computed():
    # sigmoid(z) = [[.5, .75], [.25, .5]] -> g = [[0, .25], [.25, .5]]
    z = torch.tensor([[[[0.0, LN3], [-LN3, 0.0]]]])
    y = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])  # g(y) = [[0, 1], [1, 0]]
    w = torch.tensor([3.0])
    expected = 9 * (0 + 0.75**2 + 0.75**2 + 0.5**2) / 4
    assert text_guided_boundary_loss(z, y, w).item() == pytest.approx(expected, rel=1e-6)
    # a constant map has no boundary at all: the loss is w^2 * mean(g(y)^2)
    assert text_guided_boundary_loss(torch.zeros(1, 1, 2, 2), y, w).item() == pytest.approx(4.5)


def test_tbl_weights_are_per_sample_not_broadcast_across_the_batch():
    """The reference's (B,1,H,W)*(B,H,W) broadcast mixes samples; ours must not."""
    torch.manual_seed(1)
    z = torch.randn(3, 1, 6, 6)
    y = (torch.rand(3, 6, 6) > 0.5).float()
    w = torch.tensor([0.5, -1.0, 2.0])
    batch = text_guided_boundary_loss(z, y, w)
    singles = torch.stack(
        [text_guided_boundary_loss(z[i : i + 1], y[i : i + 1], w[i : i + 1]) for i in range(3)]
    )
    assert batch.item() == pytest.approx(singles.mean().item(), rel=1e-6)


@pytest.mark.parametrize("fn", ["bce", "dice", "tbl"])
def test_gradcheck_double(fn):
    torch.manual_seed(2)
    z = torch.randn(2, 1, 5, 4, dtype=torch.float64, requires_grad=True)
    y = (torch.rand(2, 5, 4) > 0.5).double()
    w = torch.randn(2, dtype=torch.float64, requires_grad=True)
    if fn == "bce":
        assert torch.autograd.gradcheck(lambda a: weighted_bce(a, y), (z,))
    elif fn == "dice":
        assert torch.autograd.gradcheck(lambda a: dice_loss(a, y), (z,))
    else:
        assert torch.autograd.gradcheck(
            lambda a, b: text_guided_boundary_loss(a, y, b, "soft"), (z, w)
        )


def test_referring_loss_combines_with_configured_weights():
    z, y = _pair()
    w = torch.tensor([1.5])
    cfg = LossConfig(bce_weight=0.9, dice_weight=0.1, boundary_weight=0.2)
    out = ReferringLoss(cfg)(z, y, w)
    expected = (
        0.9 * weighted_bce(z, y) + 0.1 * dice_loss(z, y) + 0.2 * text_guided_boundary_loss(z, y, w)
    )
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(out) == {"loss", "bce", "dice", "boundary", "prompt", "text_weight"}
    no_tbl = ReferringLoss(LossConfig(boundary_weight=0.0))(z, y, w)
    assert no_tbl["boundary"].item() == 0.0
    with pytest.raises(ConfigError, match="boundary_mode"):
        LossConfig(boundary_mode="sharp")


def test_pseudo_mask_loss_uses_area_fraction_targets() -> None:
    from training.losses import pseudo_mask_loss

    target = torch.zeros(1, 64, 64)
    target[0, :32, :16] = 1  # 2x2 grid: cell (0,0) is half covered, the rest empty
    soft = torch.tensor([[[[0.5, 0.0], [0.0, 0.0]]]]).clamp(1e-6, 1 - 1e-6)
    wrong = torch.tensor([[[[0.0, 0.5], [0.0, 0.0]]]]).clamp(1e-6, 1 - 1e-6)
    good, bad = pseudo_mask_loss(soft, target), pseudo_mask_loss(wrong, target)
    # at the soft target, BCE is the entropy of 0.5 over one cell of four; Dice = 2*.25/(.5+.5)
    expected = torch.log(torch.tensor(2.0)) / 4 + (1 - 0.5)
    assert good.item() == pytest.approx(expected.item(), rel=1e-3)
    assert bad.item() > good.item() + 1.0


def test_prompt_weight_adds_the_pseudo_mask_term_only_when_given() -> None:
    from training.losses import pseudo_mask_loss

    torch.manual_seed(0)
    logits = torch.randn(2, 1, 32, 32)
    target = (torch.rand(2, 32, 32) > 0.7).float()
    pm = torch.rand(2, 1, 8, 8)
    base = ReferringLoss(LossConfig())(logits, target, None, pm)
    aux = ReferringLoss(LossConfig(prompt_weight=0.5))(logits, target, None, pm)
    assert base["prompt"].item() == 0.0
    assert aux["loss"].item() == pytest.approx(
        base["loss"].item() + 0.5 * pseudo_mask_loss(pm, target).item(), rel=1e-5)
    no_pm = ReferringLoss(LossConfig(prompt_weight=0.5))(logits, target, None, None)
    assert no_pm["loss"].item() == pytest.approx(base["loss"].item(), rel=1e-6)
    with pytest.raises(ConfigError, match="prompt_weight"):
        LossConfig(prompt_weight=-1.0)


def test_bounded_text_weight_stays_in_range_and_passes_gradients() -> None:
    from training.losses import bounded_text_weight

    raw = torch.tensor([-50.0, -1.0, 0.0, 1.0, 50.0], requires_grad=True)
    w = bounded_text_weight(raw, 0.5, 1.5)
    assert w[0].item() == pytest.approx(0.5) and w[-1].item() == pytest.approx(1.5)
    assert w[2].item() == pytest.approx(1.0)
    assert ((w >= 0.5) & (w <= 1.5)).all()
    w.sum().backward()
    assert raw.grad[2].item() == pytest.approx(0.25)  # (hi - lo) * sigmoid'(0)


def test_referring_loss_uses_the_bounded_weight_when_configured() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 16, 16)
    target = (torch.rand(2, 16, 16) > 0.5).float()
    raw = torch.tensor([-30.0, -30.0])  # the collapsed weight of the shipped run, and below
    plain = ReferringLoss(LossConfig(boundary_weight=1.0))(logits, target, raw)
    bounded = ReferringLoss(LossConfig(boundary_weight=1.0, text_weight_range=[0.5, 1.5]))(
        logits, target, raw)
    expected = text_guided_boundary_loss(logits, target, torch.full((2,), 0.5))
    assert bounded["boundary"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert bounded["text_weight"].item() == pytest.approx(0.5)
    assert plain["boundary"].item() == pytest.approx(
        text_guided_boundary_loss(logits, target, raw).item(), rel=1e-5)
    assert plain["text_weight"].item() == pytest.approx(-30.0)
    for bad in ([1.5, 0.5], [0.5], [-1.0, 1.0]):
        with pytest.raises(ConfigError, match="text_weight_range"):
            LossConfig(text_weight_range=bad)

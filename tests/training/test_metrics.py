from __future__ import annotations

import numpy as np
import pytest
import torch

from training.metrics import GroupedIoU, IoUAccumulator, predictions, round_metrics


def _mask(rows, cols, shape=(4, 4)):
    m = torch.zeros(shape, dtype=torch.bool)
    m[rows, cols] = True
    return m


def test_hand_computed_metrics_and_empty_union_is_zero():
    acc = IoUAccumulator()
    acc.update(_mask(slice(0, 2), slice(0, 2)), _mask(slice(0, 2), slice(0, 2)))  # IoU 1 (4/4)
    acc.update(_mask(slice(0, 2), slice(0, 2)), _mask(slice(0, 2), slice(0, 1)))  # IoU 0.5 (2/4)
    acc.update(torch.zeros(4, 4, dtype=torch.bool), torch.zeros(4, 4, dtype=torch.bool))  # U=0
    acc.update(_mask(0, 0), _mask(3, 3))  # IoU 0 (0/2)
    m = acc.compute()
    assert m["n"] == 4
    assert m["mIoU"] == pytest.approx(100 * 1.5 / 4)
    assert m["oIoU"] == pytest.approx(100 * (4 + 2 + 0 + 0) / (4 + 4 + 0 + 2))
    assert m["Pr@0.5"] == pytest.approx(50.0)  # IoU >= 0.5 counts (the 0.5 sample)
    assert m["Pr@0.6"] == m["Pr@0.9"] == pytest.approx(25.0)
    assert round_metrics(m)["mIoU"] == 37.5


def test_merge_equals_single_accumulator():
    rng = np.random.default_rng(0)
    preds = torch.as_tensor(rng.random((6, 8, 8)) > 0.5)
    gts = torch.as_tensor(rng.random((6, 8, 8)) > 0.6)
    one = IoUAccumulator()
    one.update(preds, gts)
    a, b = IoUAccumulator(), IoUAccumulator()
    a.update(preds[:2], gts[:2])
    b.update(preds[2:], gts[2:])
    a.merge(b)
    assert a.compute() == pytest.approx(one.compute(), rel=1e-12)


def test_paper_and_native_modes():
    # logits 4x4: positive on the left half; GT at 8x8 native: left 3 columns
    logits = torch.full((1, 1, 4, 4), -5.0)
    logits[..., :2] = 5.0
    gt = np.zeros((8, 8), bool)
    gt[:, :3] = True
    (pred_p, gt_p), = predictions(logits, [gt], "paper")
    assert pred_p.shape == (4, 4) and gt_p.shape == (4, 4)
    # nearest at pixel centres (PIL's rule): column j reads source column floor((j + .5) * 2)
    assert gt_p[:, 0].all() and not gt_p[:, 1:].any()
    (pred_n, gt_n), = predictions(logits, [gt], "native")
    assert pred_n.shape == (8, 8)
    assert pred_n[:, :4].all() and not pred_n[:, 4:].any()  # bilinear crosses zero at the middle
    acc = IoUAccumulator()
    acc.update(pred_n, gt_n)
    assert acc.compute()["mIoU"] == pytest.approx(75.0)


def test_grouped():
    g = GroupedIoU()
    full = torch.ones(2, 2, dtype=torch.bool)
    g.update(full, full, ["class", "nwpu"])
    g.update(full, ~full, ["position", "nwpu"])
    out = g.compute()
    assert out["all"]["mIoU"] == 50.0 and out["class"]["mIoU"] == 100.0
    assert out["position"]["mIoU"] == 0.0 and out["nwpu"]["n"] == 2

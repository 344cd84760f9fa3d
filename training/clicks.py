"""Simulated clicks (SAM's protocol) for training and for the click-curve evaluation.

A click goes into the **largest error region** of the current answer: the largest connected
region (8-connected) of missed pixels (false negatives: a *positive* click) or of wrongly
included pixels (false positives: a *negative* click), whichever is larger. Training picks a
pixel of that region uniformly at random (SAM); evaluation picks its interior point farthest
from the region's edge (chessboard distance, as interactive-segmentation benchmarks do), so
the curve is deterministic.

Everything is torch on the model's device; no SciPy.

Example:
    >>> pred = torch.zeros(1, 8, 8, dtype=torch.bool)
    >>> gt = torch.zeros(1, 8, 8, dtype=torch.bool); gt[0, 2:6, 2:6] = True
    >>> next_clicks(pred, gt)                       # the centre of the missed square, positive
    (tensor([[0.4375, 0.4375]]), tensor([1]))
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backend.model.model_io import ModelInputs, ModelOutput
from backend.model.prompts import Prompts
from training.config_sections import ClickConfig

__all__ = ["add_clicks", "click_round_outputs", "component_labels", "mean_terms", "next_clicks"]

GRID_CELLS = 64  # clicks are simulated on masks of at most 64 x 64 cells (see next_clicks)
_MAX_SWEEPS = 4096  # a bound on label propagation; far above any 1024-px region's diameter


def _dilate(x: torch.Tensor) -> torch.Tensor:
    """3x3 max filter of ``(B, H, W)`` (shifted maxima: far faster than a stride-1 max pool)."""
    y = x.clone()
    y[:, 1:] = torch.maximum(y[:, 1:], x[:, :-1])
    y[:, :-1] = torch.maximum(y[:, :-1], x[:, 1:])
    z = y.clone()
    z[:, :, 1:] = torch.maximum(z[:, :, 1:], y[:, :, :-1])
    z[:, :, :-1] = torch.maximum(z[:, :, :-1], y[:, :, 1:])
    return z


def component_labels(mask: torch.Tensor) -> torch.Tensor:
    """8-connected component labels of ``(B, H, W)`` bool masks.

    Max-label propagation with pointer jumping (a pixel takes the label of the pixel its label
    names, which is in the same component), so it converges in far fewer sweeps than the
    regions' diameter.

    Returns:
        ``(B, H, W)`` int64: 0 outside the mask, otherwise the largest flat pixel index
        (+1) of the pixel's component (labels are unique per image, not consecutive).
    """
    b, h, w = mask.shape
    ids = torch.arange(1, h * w + 1, device=mask.device, dtype=torch.long).reshape(1, h, w)
    lab = torch.where(mask, ids, torch.zeros_like(ids))
    for _ in range(_MAX_SWEEPS):
        prev = lab
        lab = torch.where(mask, _dilate(lab), lab)
        flat = lab.flatten(1)
        jumped = torch.gather(flat, 1, (flat - 1).clamp(min=0))
        lab = torch.where(mask, torch.maximum(jumped.reshape(b, h, w), lab), lab)
        if torch.equal(lab, prev):
            break
    return lab


def _largest_region(err: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The largest component of each ``(B, H, W)`` error map and its size ``(B,)``."""
    labels = component_labels(err)
    b = err.shape[0]
    flat = labels.flatten(1)
    regions = torch.zeros_like(err)
    sizes = torch.zeros(b, dtype=torch.long, device=err.device)
    for i in range(b):
        ids, counts = torch.unique(flat[i][flat[i] > 0], return_counts=True)
        if len(ids):
            k = int(torch.argmax(counts))
            regions[i] = labels[i] == ids[k]
            sizes[i] = counts[k]
    return regions, sizes


def _deepest_point(region: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` (row, col) of each region's pixel farthest from its edge (image border = edge)."""
    x = F.pad(region.float(), (1, 1, 1, 1))
    depth = torch.zeros_like(x)
    while bool(x.any()):
        depth += x
        x = -_dilate(-x)  # erosion; the zero padding is outside
    depth = depth[:, 1:-1, 1:-1].flatten(1)
    w = region.shape[-1]
    idx = torch.argmax(depth, dim=1)  # first of the deepest in row-major order
    return torch.stack([idx // w, idx % w], dim=1)


def next_clicks(
    pred: torch.Tensor,
    gt: torch.Tensor,
    rng: np.random.Generator | None = None,
    *,
    grid: int = GRID_CELLS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One click per image in its largest error region.

    Args:
        pred: ``(B, H, W)`` bool current answer.
        gt: ``(B, H, W)`` bool ground truth.
        rng: Training: a uniformly random pixel of the region (SAM). None (evaluation): the
            region's deepest pixel.
        grid: Both masks are first nearest-resized so that their longer side has at most this
            many cells (region labelling costs grow with the side; a click lands on a cell
            centre).

    Returns:
        ``points`` ``(B, 2)`` float32 normalised ``(x, y)`` (pixel centres) and ``labels``
        ``(B,)`` int64: 1 (missed: positive), 0 (wrongly included: negative), -1 where the
        answer is already exact (no click; the point is a padding point).
    """
    pred, gt = pred.bool(), gt.bool()
    if max(gt.shape[-2:]) > grid:
        f = grid / max(gt.shape[-2:])
        size = (max(1, round(gt.shape[-2] * f)), max(1, round(gt.shape[-1] * f)))
        pred, gt = (F.interpolate(m[:, None].float(), size=size, mode="nearest-exact")[:, 0] > 0.5
                    for m in (pred, gt))
    b, h, w = gt.shape
    fn_region, fn_size = _largest_region(gt & ~pred)
    fp_region, fp_size = _largest_region(pred & ~gt)
    positive = fn_size >= fp_size
    region = torch.where(positive[:, None, None], fn_region, fp_region)
    if rng is None:
        rc = _deepest_point(region)
    else:
        rc = torch.zeros(b, 2, dtype=torch.long, device=gt.device)
        for i in range(b):
            pix = torch.nonzero(region[i])
            if len(pix):
                rc[i] = pix[int(rng.integers(len(pix)))]
    scale = torch.tensor([w, h], dtype=torch.float32, device=gt.device)
    points = (rc.flip(1).float() + 0.5) / scale
    labels = positive.long()
    labels[(fn_size + fp_size) == 0] = -1
    return points, labels


def add_clicks(prompts: Prompts | None, points: torch.Tensor, labels: torch.Tensor) -> Prompts:
    """``prompts`` with one more click per image (``points (B, 2)``, ``labels (B,)``)."""
    new_p, new_l = points[:, None], labels[:, None]
    if prompts is None or prompts.points is None or prompts.point_labels is None:
        return Prompts(new_p, new_l, None if prompts is None else prompts.boxes,
                       None if prompts is None else prompts.mask_input)
    return Prompts(torch.cat([prompts.points, new_p.to(prompts.points)], 1),
                   torch.cat([prompts.point_labels, new_l.to(prompts.point_labels)], 1),
                   prompts.boxes, prompts.mask_input)


def click_round_outputs(
    model: nn.Module,
    inputs: ModelInputs,
    masks: torch.Tensor,
    cfg: ClickConfig,
    rng: np.random.Generator,
) -> list[ModelOutput]:
    """A click batch: the text-only answer, then 1..``max_clicks`` simulated click rounds.

    The image and text are encoded once; the rounds before the last run the decoder without
    gradients (they only place the next click), as SAM's training does.

    Args:
        model: An architecture with ``encode`` / ``decode`` (a SAM 2 prompt encoder).
        inputs: The batch (text only).
        masks: ``(B, S, S)`` targets at the model input size.
        cfg: The click settings.
        rng: Chooses the number of clicks, the click pixels and the mask feedback.

    Returns:
        ``[text-only output, last click round's output]``; the loss averages over them.
    """
    enc = model.encode(inputs)  # type: ignore[operator]
    first = model.decode(enc)  # type: ignore[operator]
    gt = masks > 0.5
    out, prompts = first, None
    rounds = int(rng.integers(1, cfg.max_clicks + 1))
    for r in range(rounds):
        points, labels = next_clicks(out.logits.detach()[:, 0] > 0, gt, rng)
        prompts = add_clicks(prompts, points, labels)
        feed = out.low_res is not None and rng.random() < cfg.mask_input_prob
        round_prompts = prompts.with_mask_input(out.low_res.detach() if feed else None)
        with contextlib.nullcontext() if r == rounds - 1 else torch.no_grad():
            out = model.decode(enc, round_prompts)  # type: ignore[operator]
    return [first, out]


def mean_terms(terms: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Average each loss term over the rounds of a batch."""
    return {k: torch.stack([t[k] for t in terms]).mean() for k in terms[0]}

"""Referring-segmentation metrics (model_spec.md §5): oIoU, mIoU, Pr@0.5..0.9.

Per sample: ``I = sum(pred & gt)``, ``U = sum(pred | gt)``, ``IoU = I / U`` and **IoU = 0 when
U = 0** (the reference code's convention). Over a set: ``mIoU = mean(IoU)``,
``oIoU = sum(I) / sum(U)``, ``Pr@X = share of samples with IoU >= X``. Reported x100.

Accumulators hold only sums (I, U, IoU, count, hits per threshold), so merging ranks is one
``all_reduce(SUM)``. Two resolution modes:

* ``"paper"``: score at the network resolution; the ground truth is nearest-resized to it.
* ``"native"``: logits are bilinearly resized to the original image size, then thresholded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from backend.errors import ConfigError

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
MODES = ("paper", "native")
METRIC_KEYS = ("oIoU", "mIoU", *(f"Pr@{t}" for t in THRESHOLDS), "n")
_N_FIELDS = 4 + len(THRESHOLDS)  # I, U, sum IoU, n, hits


def intersection_union(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample intersection and union pixel counts.

    Args:
        pred: ``(B, H, W)`` bool.
        gt: ``(B, H, W)`` bool.

    Returns:
        ``(I, U)``, each ``(B,)`` float64.
    """
    pred, gt = pred.bool().flatten(1), gt.bool().flatten(1)
    inter = (pred & gt).sum(1, dtype=torch.float64)
    union = (pred | gt).sum(1, dtype=torch.float64)
    return inter, union


def resize_mask_nearest(mask: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Nearest-resize ``(B, H, W)`` bool masks (pixel-centre rule, as PIL/torchvision do)."""
    out = F.interpolate(mask[:, None].float(), size=size, mode="nearest-exact")
    return out[:, 0] > 0.5


def predictions(
    logits: Tensor, gt_masks: Sequence[np.ndarray | Tensor], mode: str = "paper"
) -> list[tuple[Tensor, Tensor]]:
    """Turn ``(B, 1, S, S)`` logits and original-size GT masks into (pred, gt) bool pairs.

    Args:
        logits: ``(B, 1, S, S)`` network logits (foreground prob = sigmoid).
        gt_masks: B ground-truth masks ``(H_b, W_b)`` bool at the original image size.
        mode: ``"paper"`` (GT nearest-resized to S) or ``"native"`` (logits bilinearly resized to
            ``(H_b, W_b)``).

    Returns:
        One ``(pred (h, w) bool, gt (h, w) bool)`` pair per sample.
    """
    if mode not in MODES:
        raise ConfigError(f"metric mode must be one of {MODES}, got {mode!r}")
    out = []
    logits = logits.float()
    for b, gt in enumerate(gt_masks):
        gt_t = torch.as_tensor(np.asarray(gt)).bool().to(logits.device)
        z = logits[b : b + 1]
        if mode == "paper":
            pred = z[0, 0] > 0
            if tuple(gt_t.shape) != tuple(pred.shape):
                gt_t = resize_mask_nearest(gt_t[None], tuple(pred.shape))[0]
        else:
            if tuple(gt_t.shape) != tuple(z.shape[-2:]):
                z = F.interpolate(z, size=tuple(gt_t.shape), mode="bilinear", align_corners=False)
            pred = z[0, 0] > 0
        out.append((pred, gt_t))
    return out


class IoUAccumulator:
    """Running sums for oIoU / mIoU / Pr@X; mergeable and all-reduce-safe."""

    def __init__(self) -> None:
        self.sums = torch.zeros(_N_FIELDS, dtype=torch.float64)

    def update_iu(self, inter: Tensor, union: Tensor) -> None:
        """Add samples given their ``(B,)`` intersection and union counts."""
        inter, union = inter.double().cpu(), union.double().cpu()
        iou = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
        s = self.sums
        s[0] += inter.sum()
        s[1] += union.sum()
        s[2] += iou.sum()
        s[3] += inter.numel()
        for k, t in enumerate(THRESHOLDS):
            s[4 + k] += (iou >= t - 1e-12).sum()

    def update(self, pred: Tensor, gt: Tensor) -> None:
        """Add ``(B, H, W)`` (or one ``(H, W)``) boolean predictions and ground truths."""
        if pred.dim() == 2:
            pred, gt = pred[None], gt[None]
        self.update_iu(*intersection_union(pred, gt))

    def merge(self, other: IoUAccumulator) -> None:
        """Add another accumulator's sums (what all_reduce does across ranks)."""
        self.sums += other.sums

    def all_reduce(self) -> None:
        """Sum over all ranks of the default process group (no-op without one)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            t = self.sums.clone()
            if dist.get_backend() == "nccl":
                t = t.cuda()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            self.sums = t.cpu()

    @property
    def n(self) -> int:
        """Number of samples added."""
        return int(self.sums[3].item())

    def compute(self) -> dict[str, float]:
        """Metrics x100 (``n`` as a count); all zero for an empty accumulator."""
        s = self.sums.tolist()
        n = s[3]
        out = {
            "oIoU": 100.0 * s[0] / s[1] if s[1] > 0 else 0.0,
            "mIoU": 100.0 * s[2] / n if n > 0 else 0.0,
        }
        for k, t in enumerate(THRESHOLDS):
            out[f"Pr@{t}"] = 100.0 * s[4 + k] / n if n > 0 else 0.0
        out["n"] = int(n)
        return out


class GroupedIoU:
    """An overall accumulator plus one per group (e.g. expression type or data set)."""

    def __init__(self) -> None:
        self.total = IoUAccumulator()
        self.groups: dict[str, IoUAccumulator] = {}

    def update(self, pred: Tensor, gt: Tensor, groups: Iterable[str | None] = ()) -> None:
        """Add one sample ``(H, W)`` bool pair; count it in ``total`` and in each named group."""
        inter, union = intersection_union(pred[None], gt[None])
        self.total.update_iu(inter, union)
        for g in groups:
            if g is not None:
                self.groups.setdefault(g, IoUAccumulator()).update_iu(inter, union)

    def all_reduce(self) -> None:
        """Reduce every accumulator across ranks; group names are unioned over ranks first."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        gathered: list[list[str] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, sorted(self.groups))
        names = sorted({n for names in gathered for n in (names or [])})
        for name in names:
            self.groups.setdefault(name, IoUAccumulator())
        stacked = torch.stack([self.total.sums] + [self.groups[n].sums for n in names])
        if dist.get_backend() == "nccl":
            stacked = stacked.cuda()
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        stacked = stacked.cpu()
        self.total.sums = stacked[0]
        for i, name in enumerate(names):
            self.groups[name].sums = stacked[i + 1]

    def compute(self) -> dict[str, dict[str, float]]:
        """``{"all": metrics, <group>: metrics, ...}``."""
        out = {"all": self.total.compute()}
        for name in sorted(self.groups):
            out[name] = self.groups[name].compute()
        return out


def round_metrics(metrics: dict[str, float], ndigits: int = 2) -> dict[str, float | int]:
    """Round the x100 values for printing (``n`` stays an int; NaN becomes 0)."""
    out: dict[str, float | int] = {}
    for k in METRIC_KEYS:
        v = metrics[k]
        out[k] = int(v) if k == "n" else round(0.0 if math.isnan(v) else float(v), ndigits)
    return out

"""The click curve: mIoU after k simulated clicks and the clicks needed to reach an IoU.

``python -m training eval --clicks 0,1,3,5`` scores, per sample: the text-only answer (0
clicks), then one click after another, each in the largest error region of the answer so far
(:func:`training.clicks.next_clicks`, deterministic), on the same image encoding. Reported per
k (x100, as :mod:`training.metrics`): oIoU, mIoU, Pr@X; and NoC@85, the mean number of clicks
until the IoU reaches 85 % (``noc_max`` when it never does, as interactive-segmentation
papers report it), with the share of samples that reached it.

Groups: ``all``, each expression type, and ``instance`` (position, ordinal, size and relation
expressions together, n-weighted: the "instance-level" row of the model card).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from backend.errors import ConfigError, InputError
from training.clicks import add_clicks, next_clicks
from training.data.datasets import EvalSet, collate
from training.evaluation import autocast_for
from training.metrics import GroupedIoU, intersection_union, predictions, round_metrics

__all__ = ["INSTANCE_TYPES", "evaluate_clicks", "parse_clicks"]

INSTANCE_TYPES = ("position", "ordinal", "size", "relation")


def parse_clicks(text: str) -> list[int]:
    """``"0,1,3,5"`` -> ``[0, 1, 3, 5]`` (sorted, unique, each 0..20).

    Raises:
        InputError: On anything else.
    """
    try:
        ks = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise InputError(f"--clicks must be comma-separated click counts like 0,1,3,5, got "
                         f"{text!r}") from None
    if not ks or ks[0] < 0 or ks[-1] > 20:
        raise InputError(f"--clicks needs counts between 0 and 20, got {text!r}")
    return ks


def _groups(etype: str | None) -> list[str | None]:
    return [etype, "instance" if etype in INSTANCE_TYPES else None]


@torch.no_grad()
def evaluate_clicks(
    model: nn.Module,
    eval_set: EvalSet,
    clicks: Sequence[int],
    *,
    mode: str = "paper",
    device: torch.device | None = None,
    precision: str = "fp32",
    batch_size: int = 4,
    noc_iou: float = 0.85,
    noc_max: int = 20,
    mask_input: bool = False,
) -> dict[str, Any]:
    """Score ``eval_set`` after each number of clicks in ``clicks``.

    Args:
        model: An architecture with ``encode`` / ``decode`` (a SAM 2 prompt encoder).
        eval_set: Samples.
        clicks: Click counts to report, e.g. ``[0, 1, 3, 5]``.
        mode: ``paper`` or ``native`` (see :mod:`training.metrics`).
        device: Compute device (default: the model's).
        precision: Autocast precision.
        batch_size: Samples per forward pass.
        noc_iou: IoU of the NoC measure (0.85).
        noc_max: Most clicks for NoC (0 = no NoC, only ``clicks``).
        mask_input: Feed each round's low-resolution logits back as the mask prompt.

    Returns:
        ``{"clicks": {k: {group: metrics}}, "NoC@85": {group: mean clicks},
        "reached@85": {group: share x100}, "noc_max": noc_max}``.

    Raises:
        ConfigError: If the model has no SAM 2 prompt encoder.
    """
    if not hasattr(model, "decode"):
        raise ConfigError(f"{type(model).__name__} takes no clicks (no SAM 2 prompt encoder); "
                          "--clicks works with RS2-SAM 2 and the published layout")
    device = device or next(model.parameters()).device
    model.eval()
    rounds = max(max(clicks), noc_max)
    accs = {k: GroupedIoU() for k in clicks}
    noc: dict[str, list[int]] = {}
    loader = DataLoader(eval_set, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for batch in loader:
        inputs = model.prepare_inputs(batch["image"], batch["text"])  # type: ignore[operator]
        gts = batch["mask"] if mode == "paper" else batch["native_mask"]
        n = len(batch["text"])
        reached = [-1] * n
        prompts = None
        with autocast_for(device, precision):
            enc = model.encode(inputs)  # type: ignore[operator]
            out = model.decode(enc)  # type: ignore[operator]
        for r in range(rounds + 1):
            pairs = predictions(out.logits, list(gts), mode)
            for i, ((pred, gt), etype) in enumerate(zip(pairs, batch["type"], strict=True)):
                if r in accs:
                    accs[r].update(pred.cpu(), gt.cpu(), _groups(etype))
                inter, union = intersection_union(pred[None], gt[None])
                iou = float(inter / union) if float(union) > 0 else 0.0
                if reached[i] < 0 and iou >= noc_iou - 1e-12:
                    reached[i] = r
            if r == rounds or (r >= max(clicks) and min(reached) >= 0):
                break
            points = torch.zeros(n, 2, device=out.logits.device)
            labels = torch.zeros(n, dtype=torch.long, device=out.logits.device)
            for i, (pred, gt) in enumerate(pairs):  # per sample: native sizes may differ
                p, lab = next_clicks(pred[None], gt[None])
                points[i], labels[i] = p[0], lab[0]
            prompts = add_clicks(prompts, points, labels)
            feed = prompts.with_mask_input(out.low_res if mask_input else None)
            with autocast_for(device, precision):
                out = model.decode(enc, feed)  # type: ignore[operator]
        for i, etype in enumerate(batch["type"]):
            for g in ["all", *_groups(etype)]:
                if g is not None:
                    noc.setdefault(g, []).append(reached[i])
    if not noc:
        raise InputError("the evaluation set is empty")
    result: dict[str, Any] = {"clicks": {}, "noc_max": noc_max}
    for k, acc in accs.items():
        result["clicks"][str(k)] = {g: round_metrics(m) for g, m in acc.compute().items()}
    if noc_max:
        tag = f"{100 * noc_iou:g}"
        result[f"NoC@{tag}"] = {g: round(sum(c if c >= 0 else noc_max for c in v) / len(v), 2)
                                for g, v in sorted(noc.items())}
        result[f"reached@{tag}"] = {g: round(100.0 * sum(c >= 0 for c in v) / len(v), 2)
                                    for g, v in sorted(noc.items())}
    return result

"""Training losses of RS2-SAM 2 (model_spec.md §3), for a single-logit mask head.

The reference code has a 2-channel head ``[1 - z, z]`` and uses

    L = 0.9 * CE(weight=[0.9, 1.1]) + 0.1 * Dice(both classes) + 0.2 * L_TBL.

Our model outputs one logit per pixel, ``p = sigmoid(logit)``. The equivalents here:

* :func:`weighted_bce`: binary cross-entropy with weight 0.9 on background pixels and 1.1 on
  foreground pixels, normalised by the sum of weights (what ``CrossEntropyLoss(weight=...)``
  with mean reduction does). It is normalised **per sample** and then averaged over the batch, so
  the loss does not depend on how a global batch is split across processes (the paper runs one
  sample per GPU, where the two agree).
* :func:`dice_loss`: ``1 - dice`` of the foreground and of the background channel, summed over the
  two classes (as the fastai-style loss does), averaged over the batch (the paper sums over a
  batch of 1).
* :func:`text_guided_boundary_loss`: ``mean((w * g(m) - w * g(y))**2)`` with ``g`` the
  forward-difference boundary map and ``w`` one text-derived scalar per sample. ``mode="soft"``
  (default) uses ``m = sigmoid(logit)`` so the mask receives a gradient; ``mode="hard"`` is the
  reference code's ``m = 1[sigmoid(logit) > 0.5]``, where only ``w`` gets a gradient. Unlike the
  reference code, ``w`` is broadcast per sample (no ``(B, B, H, W)`` mix-up for B > 1).
  The reference's ``w`` is an unbounded linear head, and the cheapest way to lower the term is
  ``w -> 0`` (our nano run: 0.007-0.03 after 8,000 steps, the term dead). With
  ``LossConfig.text_weight_range = [lo, hi]`` the loss uses :func:`bounded_text_weight`,
  ``lo + (hi - lo) * sigmoid(w)``, so the term keeps at least ``lo**2`` of its strength.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from backend.errors import ConfigError

BOUNDARY_MODES = ("soft", "hard")
DICE_CLASSES = ("both", "fg")


def _as_bhw(x: Tensor, name: str) -> Tensor:
    if x.dim() == 4 and x.shape[1] == 1:
        return x[:, 0]
    if x.dim() == 3:
        return x
    raise ValueError(f"{name} must be (B, 1, H, W) or (B, H, W), got {tuple(x.shape)}")


def weighted_bce(
    logits: Tensor, target: Tensor, class_weights: tuple[float, float] = (0.9, 1.1)
) -> Tensor:
    """Class-weighted binary cross-entropy, normalised per sample, mean over the batch.

    Args:
        logits: ``(B, 1, H, W)`` or ``(B, H, W)`` float logits.
        target: ``(B, H, W)`` (or ``(B, 1, H, W)``) in {0, 1}, any dtype.
        class_weights: ``(background, foreground)`` pixel weights.

    Returns:
        Scalar loss: ``mean_b( sum_px w_y * bce / sum_px w_y )``.
    """
    z = _as_bhw(logits, "logits")
    y = _as_bhw(target, "target").to(z.dtype)
    w_bg, w_fg = class_weights
    w = w_bg + (w_fg - w_bg) * y
    bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    per_sample = (w * bce).flatten(1).sum(1) / w.flatten(1).sum(1)
    return per_sample.mean()


def dice_loss(
    logits: Tensor, target: Tensor, classes: str = "both", smooth: float = 1e-6
) -> Tensor:
    """Soft Dice loss on ``sigmoid(logits)``.

    Args:
        logits: ``(B, 1, H, W)`` or ``(B, H, W)`` float logits.
        target: ``(B, H, W)`` in {0, 1}.
        classes: ``"both"`` sums ``1 - dice`` over foreground and background (the reference);
            ``"fg"`` uses the foreground only.
        smooth: Added to numerator and denominator.

    Returns:
        Scalar: per sample ``sum_c (1 - (2 sum p t + s) / (sum p + sum t + s))``, mean over B.
    """
    if classes not in DICE_CLASSES:
        raise ConfigError(f"dice classes must be one of {DICE_CLASSES}, got {classes!r}")
    p = torch.sigmoid(_as_bhw(logits, "logits")).flatten(1)
    t = _as_bhw(target, "target").to(p.dtype).flatten(1)

    def one(pc: Tensor, tc: Tensor) -> Tensor:
        return 1 - (2 * (pc * tc).sum(1) + smooth) / (pc.sum(1) + tc.sum(1) + smooth)

    loss = one(p, t)
    if classes == "both":
        loss = loss + one(1 - p, 1 - t)
    return loss.mean()


def boundary_map(m: Tensor) -> Tensor:
    """Forward-difference boundary magnitude of the reference code.

    ``g[i, j] = |m[i, j] - m[i-1, j]| + |m[i, j] - m[i, j-1]|``, where a difference that would
    reach outside the image (first row / first column) is 0.

    Args:
        m: ``(B, H, W)`` float.

    Returns:
        ``(B, H, W)``, in [0, 2] for m in [0, 1].
    """
    dy = F.pad((m[:, 1:, :] - m[:, :-1, :]).abs(), (0, 0, 1, 0))
    dx = F.pad((m[:, :, 1:] - m[:, :, :-1]).abs(), (1, 0, 0, 0))
    return dy + dx


def text_guided_boundary_loss(
    logits: Tensor, target: Tensor, text_weight: Tensor, mode: str = "soft"
) -> Tensor:
    """Text-guided boundary loss (TBL).

    Args:
        logits: ``(B, 1, H, W)`` or ``(B, H, W)`` float logits.
        target: ``(B, H, W)`` in {0, 1}.
        text_weight: ``(B,)`` (or ``(B, 1)``) one scalar per sample from the text features.
        mode: ``"soft"`` (``sigmoid(logits)``, differentiable) or ``"hard"`` (the reference's
            ``sigmoid(logits) > 0.5``; no gradient reaches the logits).

    Returns:
        Scalar ``mean((w g(m) - w g(y))**2)`` over all B*H*W elements.
    """
    if mode not in BOUNDARY_MODES:
        raise ConfigError(f"boundary mode must be one of {BOUNDARY_MODES}, got {mode!r}")
    z = _as_bhw(logits, "logits")
    y = _as_bhw(target, "target").to(z.dtype)
    m = torch.sigmoid(z) if mode == "soft" else (torch.sigmoid(z) > 0.5).to(z.dtype)
    w = text_weight.reshape(-1, 1, 1).to(z.dtype)
    if w.shape[0] != z.shape[0]:
        raise ValueError(f"text_weight has {w.shape[0]} values for a batch of {z.shape[0]}")
    return F.mse_loss(w * boundary_map(m), w * boundary_map(y))


def bounded_text_weight(raw: Tensor, lo: float, hi: float) -> Tensor:
    """Map the model's raw text weight into ``(lo, hi)``: ``lo + (hi - lo) * sigmoid(raw)``.

    Args:
        raw: ``(B,)`` raw weights (the model's ``boundary_weight``).
        lo: Floor (> 0 keeps the boundary term alive).
        hi: Ceiling.

    Returns:
        ``(B,)`` weights; ``raw = 0`` gives the midpoint.
    """
    return lo + (hi - lo) * torch.sigmoid(raw)


def pseudo_mask_loss(pseudo_mask: Tensor, target: Tensor, eps: float = 1e-6) -> Tensor:
    """Deep supervision of the MPG pseudo-mask: BCE + foreground Dice against the area fraction.

    The target is reduced to the pseudo-mask grid by area averaging, so a grid cell that is 30 %
    covered has the soft target 0.3. Not in the paper (its pseudo-mask trains only through the
    final mask); it gives the union encoder a short gradient path, which a from-scratch model
    needs (docs/model_card.md).

    Args:
        pseudo_mask: ``(B, 1, g1, g2)`` probabilities in ``(0, 1)``.
        target: ``(B, H, W)`` (or ``(B, 1, H, W)``) in {0, 1} with ``H, W`` multiples of ``g``
            (other sizes are area-resized).
        eps: Clamp of the probabilities, and Dice smoothing.

    Returns:
        Scalar: ``mean_b(BCE) + mean_b(1 - Dice_fg)``.
    """
    p = pseudo_mask.float().clamp(eps, 1 - eps)
    y = _as_bhw(target, "target").float().unsqueeze(1)
    y = F.adaptive_avg_pool2d(y, p.shape[-2:])
    bce = F.binary_cross_entropy(p, y, reduction="none").flatten(1).mean(1)
    inter = (p * y).flatten(1).sum(1)
    dice = (2 * inter + eps) / (p.flatten(1).sum(1) + y.flatten(1).sum(1) + eps)
    return bce.mean() + (1 - dice).mean()


@dataclass
class LossConfig:
    """Weights and variants of the total loss (defaults: the paper's)."""

    bce_weight: float = 0.9
    dice_weight: float = 0.1
    boundary_weight: float = 0.2
    class_weights: list[float] = field(default_factory=lambda: [0.9, 1.1])
    boundary_mode: str = "soft"
    dice_classes: str = "both"
    prompt_weight: float = 0.0
    text_weight_range: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        twr = self.text_weight_range
        if twr and not (len(twr) == 2 and 0 <= twr[0] < twr[1]):
            raise ConfigError(
                f"loss.text_weight_range must be [] (raw weight, the reference) or [lo, hi] "
                f"with 0 <= lo < hi, got {twr!r}"
            )
        if self.prompt_weight < 0:
            raise ConfigError(f"loss.prompt_weight must be >= 0, got {self.prompt_weight!r}")
        if self.boundary_mode not in BOUNDARY_MODES:
            raise ConfigError(
                f"loss.boundary_mode must be one of {BOUNDARY_MODES}, got {self.boundary_mode!r}"
            )
        if self.dice_classes not in DICE_CLASSES:
            raise ConfigError(
                f"loss.dice_classes must be one of {DICE_CLASSES}, got {self.dice_classes!r}"
            )
        if len(self.class_weights) != 2:
            raise ConfigError(f"loss.class_weights needs 2 values, got {self.class_weights!r}")


class ReferringLoss(nn.Module):
    """``bce_weight * BCE + dice_weight * Dice + boundary_weight * TBL`` (model_spec.md §3).

    ``LossConfig`` fields: ``bce_weight``, ``dice_weight``, ``boundary_weight``,
    ``class_weights``, ``boundary_mode``, ``dice_classes``, ``prompt_weight`` (MPG deep
    supervision) and ``text_weight_range`` (``[]``: the reference's raw text weight;
    ``[lo, hi]``: :func:`bounded_text_weight`).

    Args:
        cfg: Weights and variants.
    """

    def __init__(self, cfg: LossConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LossConfig()

    def forward(
        self,
        logits: Tensor,
        target: Tensor,
        text_weight: Tensor | None = None,
        pseudo_mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Compute the loss terms.

        Args:
            logits: ``(B, 1, H, W)`` float logits at the target's resolution.
            target: ``(B, H, W)`` in {0, 1}.
            text_weight: ``(B,)`` text weights for the boundary term; None skips the term.
            pseudo_mask: ``(B, 1, g, g)`` MPG probabilities; with ``prompt_weight > 0`` they are
                supervised by :func:`pseudo_mask_loss` (None skips the term).

        Returns:
            ``{"loss", "bce", "dice", "boundary", "prompt", "text_weight"}`` scalars; ``"loss"``
            is the weighted total, ``"text_weight"`` the batch mean of the weight the boundary
            term used (0 without one).
        """
        cfg = self.cfg
        logits = logits.float()  # losses in fp32 even under bf16 autocast
        w_bg, w_fg = cfg.class_weights
        bce = weighted_bce(logits, target, (w_bg, w_fg))
        dice = dice_loss(logits, target, cfg.dice_classes)
        tw_mean = logits.new_zeros(())
        if text_weight is not None and cfg.boundary_weight != 0:
            w = text_weight.float()
            if cfg.text_weight_range:
                w = bounded_text_weight(w, *cfg.text_weight_range)
            tbl = text_guided_boundary_loss(logits, target, w, cfg.boundary_mode)
            tw_mean = w.detach().mean()
        else:
            tbl = logits.new_zeros(())
        if pseudo_mask is not None and cfg.prompt_weight != 0:
            prompt = pseudo_mask_loss(pseudo_mask, target)
        else:
            prompt = logits.new_zeros(())
        total = (cfg.bce_weight * bce + cfg.dice_weight * dice + cfg.boundary_weight * tbl
                 + cfg.prompt_weight * prompt)
        return {"loss": total, "bce": bce.detach(), "dice": dice.detach(),
                "boundary": tbl.detach(), "prompt": prompt.detach(), "text_weight": tw_mean}

"""Click and box prompts next to the text: checked, normalised and embedded by SAM 2's encoder.

Points and boxes are carried in *normalised image coordinates* (``x / width``, ``y / height``
of the image the caller passed, so ``0..1`` across it) and are scaled to the prompt encoder's
``input_image_size`` only when they are embedded, so they survive the resize to the model's
input size. A label is ``1`` (positive: "this belongs to the answer"), ``0`` (negative: "this
does not") or ``-1`` (padding, for batches whose rows have different numbers of clicks).

Both architectures with a SAM 2 prompt encoder (RS2-SAM 2 and the published layout) call
:func:`embed_prompts` and put the result in front of the text's sparse prompt.

Example:
    >>> p = Prompts.from_pixels([(10.0, 20.0)], [1], image_hw=(100, 200))
    >>> p.points
    tensor([[[0.0500, 0.2000]]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

__all__ = ["CLICK_SIGMA", "Prompts", "embed_prompts", "mask_prompt_from_logits", "paint_clicks"]


@dataclass(frozen=True)
class Prompts:
    """Clicks, an optional box and an optional previous answer for one batch.

    Attributes:
        points: ``(B, N, 2)`` float32 ``(x, y)`` in normalised image coordinates, or None.
        point_labels: ``(B, N)`` int64, 1 positive / 0 negative / -1 padding (with points).
        boxes: ``(B, 4)`` float32 ``(x0, y0, x1, y1)`` normalised, or None.
        mask_input: ``(B, 1, h, w)`` float32 low-resolution logits of a previous answer
            (:attr:`ModelOutput.low_res`), fed back as the dense prompt instead of the MPG's
            pseudo-mask (SAM's iterative refinement), or None.
    """

    points: torch.Tensor | None = None
    point_labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    mask_input: torch.Tensor | None = None

    def __post_init__(self) -> None:
        """Check shapes and values (see :class:`Prompts`)."""
        p, lab = self.points, self.point_labels
        if (p is None) != (lab is None):
            raise InputError("points and point_labels go together: pass both or neither")
        if p is not None and lab is not None:
            if p.ndim != 3 or p.shape[-1] != 2 or tuple(lab.shape) != tuple(p.shape[:2]):
                raise InputError(
                    f"points must be (B, N, 2) and labels (B, N), got {tuple(p.shape)} and "
                    f"{tuple(lab.shape)}"
                )
            if not bool(torch.isin(lab, torch.tensor([-1, 0, 1], device=lab.device)).all()):
                raise InputError(
                    f"point labels must be 1 (positive), 0 (negative) or -1 (padding), got "
                    f"{sorted(set(lab.flatten().tolist()))}"
                )
            if not bool(torch.isfinite(p).all()):
                raise InputError("point coordinates must be finite numbers")
        if self.boxes is not None and (self.boxes.ndim != 2 or self.boxes.shape[-1] != 4):
            raise InputError(f"boxes must be (B, 4) x0,y0,x1,y1, got {tuple(self.boxes.shape)}")

    @property
    def empty(self) -> bool:
        """True when nothing but the text prompts the model."""
        return self.points is None and self.boxes is None and self.mask_input is None

    def to(self, device: torch.device | str) -> Prompts:
        """Copy on ``device``."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Prompts(move(self.points), move(self.point_labels), move(self.boxes),
                       move(self.mask_input))

    def with_mask_input(self, mask_input: torch.Tensor | None) -> Prompts:
        """The same clicks with another previous answer (None: the MPG's pseudo-mask)."""
        return replace(self, mask_input=mask_input)

    @classmethod
    def from_pixels(
        cls,
        points_xy: Sequence[Sequence[float]] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        *,
        image_hw: tuple[int, int],
        box_xyxy: Sequence[float] | None = None,
    ) -> Prompts:
        """One image's clicks (and box) in pixel coordinates, as a batch of one.

        Args:
            points_xy: ``(N, 2)`` ``(column, row)`` pixel coordinates in the image (0.5 is the
                centre of the first pixel's edge-to-edge span; any real value inside it).
            labels: ``N`` labels, 1 positive or 0 negative.
            image_hw: ``(H, W)`` of the image in pixels.
            box_xyxy: Optional ``(x0, y0, x1, y1)`` box in pixels.

        Raises:
            InputError: On a point or box outside the image or a bad label.
        """
        h, w = image_hw
        pts = np.asarray(points_xy, dtype=np.float64).reshape(-1, 2)
        labs = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(pts) != len(labs):
            raise InputError(f"got {len(pts)} points but {len(labs)} labels; pass one per point")
        outside = [(float(x), float(y)) for x, y in pts if not (0 <= x <= w and 0 <= y <= h)]
        if outside:
            raise InputError(
                f"point(s) {outside} lie outside the {w}x{h} px image; click inside it"
            )
        if len(labs) and not np.isin(labs, (0, 1)).all():
            raise InputError(f"point labels must be 1 (positive) or 0 (negative), got {labs}")
        scale = np.array([w, h], dtype=np.float64)
        points = labels_t = box = None
        if len(pts):
            points = torch.from_numpy((pts / scale)[None].astype(np.float32))
            labels_t = torch.from_numpy(labs[None])
        if box_xyxy is not None:
            b = np.asarray(box_xyxy, dtype=np.float64).reshape(4)
            if not (b[0] < b[2] and b[1] < b[3]):
                raise InputError(f"box {tuple(b)} must be x0 < x1 and y0 < y1")
            box = torch.from_numpy((b / np.tile(scale, 2))[None].astype(np.float32))
        return cls(points, labels_t, box)


CLICK_SIGMA = 0.04  # a click's mark on the mask prompt: Gaussian sigma, share of the image side


def paint_clicks(mask_prompt: torch.Tensor, prompts: Prompts | None,
                 sigma: float = CLICK_SIGMA) -> torch.Tensor:
    """Mark the clicks on a probability mask prompt ``(B, 1, H, W)``.

    Around a positive click the prompt is raised towards 1, around a negative one lowered
    towards 0, by a Gaussian of ``sigma`` (share of the image side): ``m = max(m, g)`` and
    ``m = m * (1 - g)``, in click order. This gives the decoder the clicks in the dense
    prompt it already relies on, besides their sparse tokens.
    """
    if prompts is None or prompts.points is None or prompts.point_labels is None:
        return mask_prompt
    b, _, h, w = mask_prompt.shape
    ys = (torch.arange(h, device=mask_prompt.device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=mask_prompt.device, dtype=torch.float32) + 0.5) / w
    m = mask_prompt.float()
    pts = prompts.points.float().to(m.device)
    labels = prompts.point_labels.to(m.device)
    for k in range(pts.shape[1]):
        dx = (xs[None, :] - pts[:, k, 0, None]) ** 2  # (B, W)
        dy = (ys[None, :] - pts[:, k, 1, None]) ** 2  # (B, H)
        g = torch.exp(-(dy[:, :, None] + dx[:, None, :]) / (2 * sigma**2))[:, None]
        lab = labels[:, k].reshape(b, 1, 1, 1)
        m = torch.where(lab == 1, torch.maximum(m, g), torch.where(lab == 0, m * (1 - g), m))
    return m.to(mask_prompt.dtype)


def mask_prompt_from_logits(mask_input: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A previous answer's logits as a mask prompt: probabilities ``(B, 1, *size)``.

    RS2-SAM 2's mask prompt is the MPG's pseudo-mask, a probability map, so the previous
    logits go in through a sigmoid to stay in the same range.
    """
    prob = torch.sigmoid(mask_input.float())
    if tuple(prob.shape[-2:]) != tuple(size):
        prob = F.interpolate(prob, size=size, mode="bilinear", align_corners=False)
    return prob


def embed_prompts(
    prompt_encoder: nn.Module,
    prompts: Prompts | None,
    mask_prompt: torch.Tensor | None,
    feat_hw: tuple[int, int],
    batch: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM 2's sparse and dense prompt embeddings of the clicks, the box and a mask prompt.

    Args:
        prompt_encoder: SAM 2's ``PromptEncoder``.
        prompts: Clicks and box (normalised), or None.
        mask_prompt: ``(B, 1, 4h, 4w)`` mask prompt (probabilities), or None for SAM's
            "no mask" embedding.
        feat_hw: ``(h, w)`` of the image embedding.
        batch: ``B``.

    Returns:
        ``sparse`` ``(B, N', C)`` (N' = 0 without clicks or box; SAM 2 appends one padding
        point when there are clicks but no box) and ``dense`` ``(B, C, h, w)``.
    """
    points = boxes = None
    size = torch.tensor(prompt_encoder.input_image_size[::-1], dtype=torch.float32)  # (W, H)
    if prompts is not None and prompts.points is not None and prompts.point_labels is not None:
        coords = prompts.points.float() * size.to(prompts.points.device) - 0.5
        points = (coords, prompts.point_labels)
    if prompts is not None and prompts.boxes is not None:
        boxes = prompts.boxes.float() * size.repeat(2).to(prompts.boxes.device) - 0.5
    if points is None and boxes is None and mask_prompt is None:
        sparse = prompt_encoder.no_mask_embed.weight.new_zeros((batch, 0, prompt_encoder.embed_dim))
    else:
        sparse, dense = prompt_encoder(points=points, boxes=boxes, masks=mask_prompt)
    if mask_prompt is None:  # SAM's "no mask" embedding, at this input's feature size
        dense = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, *feat_hw)
    return sparse, dense

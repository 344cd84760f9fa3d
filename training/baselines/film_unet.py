"""The ablation baseline of issue 7: a plain ≈3 M-parameter U-Net with FiLM text conditioning.

It exposes the API the trainer uses for ``RS2SAM2`` (``prepare_inputs``, ``forward`` ->
``ModelOutput``, ``param_groups``, ``named_param_groups``, ``parameter_counts``,
``apply_freezing``, ``config``, ``image_size``), so ``python -m training train`` trains it by
name (``model: film-unet``) with the same data, losses, schedule and metrics.

Design (all random init; no pretrained part):

* Text: lower-cased words hashed (CRC-32, stable across processes) into ``vocab_buckets``
  embeddings, a 1-layer bidirectional GRU, masked mean + max pooling -> text vector ``t``.
* Image: ImageNet-normalised RGB plus two coordinate channels (x, y in [-1, 1]), so position
  words can be grounded; a 4-level U-Net (conv-GN-ReLU x2 per stage, widths ``widths``).
* FiLM: every decoder stage and the bottleneck compute ``x * (1 + γ(t)) + β(t)`` after their
  first normalisation (γ, β from a Linear on ``t``; zero-initialised, so training starts from
  the unconditioned U-Net).
* ``boundary_weight``: Linear on ``t`` (the text weight of the boundary loss, as in RS2SAM2);
  ``pseudo_mask``: zeros (the baseline has no MPG); ``text_feat``: the GRU outputs
  ``(B, L, 2·text_dim)``.

Example:
    >>> model = build_film_unet()
    >>> out = model(model.prepare_inputs(np.zeros((1, 64, 64, 3), np.uint8), ["the road"]))
    >>> out.logits.shape
    torch.Size([1, 1, 256, 256])
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backend.errors import ConfigError
from backend.model.model_io import IMAGENET_MEAN, IMAGENET_STD, ModelOutput, _as_image_batch

__all__ = ["FilmUNet", "FilmUNetConfig", "FilmUNetInputs", "build_film_unet"]

_WORD = re.compile(r"[a-z]+|[0-9]+")


@dataclass(frozen=True)
class FilmUNetConfig:
    """Architecture of the FiLM U-Net baseline.

    Attributes:
        name: Registry-style name (``film-unet``).
        arch: Always ``"film-unet"`` (marks checkpoints of this baseline).
        image_size: Square input size in px (multiple of 16).
        widths: Channels of the 4 encoder stages (the bottleneck uses the last one).
        text_dim: Word embedding and GRU hidden width (the text vector is ``2·text_dim`` x 2).
        vocab_buckets: Hash buckets of the word embedding.
        context_length: Words kept per caption.
        groups: GroupNorm groups.
        gsd_m: Working ground resolution (m/px), for parity with ModelConfig.
    """

    name: str = "film-unet"
    arch: str = "film-unet"
    image_size: int = 256
    widths: tuple[int, ...] = (32, 64, 128, 192)
    text_dim: int = 128
    vocab_buckets: int = 2048
    context_length: int = 32
    groups: int = 8
    gsd_m: float | None = 0.3

    def __post_init__(self) -> None:
        if self.image_size < 32 or self.image_size % 16:
            raise ConfigError(f"film-unet: image_size must be a multiple of 16, got "
                              f"{self.image_size}")
        if len(self.widths) != 4 or any(w % self.groups for w in self.widths):
            raise ConfigError(f"film-unet: widths must be 4 multiples of groups={self.groups}, "
                              f"got {self.widths}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FilmUNetConfig:
        """Inverse of :meth:`to_dict` (unknown keys raise ConfigError)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"film-unet config has unknown fields {unknown}")
        data = dict(data)
        if "widths" in data:
            data["widths"] = tuple(data["widths"])
        return cls(**data)


@dataclass
class FilmUNetInputs:
    """A preprocessed FiLM U-Net batch.

    Attributes:
        images: ``(B, 3, S, S)`` float32, ImageNet-normalised.
        words: ``(B, L)`` int64 word-bucket ids (0 = padding).
        pad: ``(B, L)`` bool, True at padding.
    """

    images: torch.Tensor
    words: torch.Tensor
    pad: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        """Number of (image, caption) pairs."""
        return int(self.images.shape[0])

    def to(self, device: torch.device | str) -> FilmUNetInputs:
        """Copy of the batch on ``device``."""
        return FilmUNetInputs(self.images.to(device), self.words.to(device), self.pad.to(device))


def _block(cin: int, cout: int, groups: int) -> nn.ModuleList:
    return nn.ModuleList([
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout),
    ])


def _run_block(block: nn.ModuleList, x: torch.Tensor,
               film: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    conv1, gn1, conv2, gn2 = block
    x = gn1(conv1(x))
    if film is not None:
        gamma, beta = film
        x = x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
    x = F.relu(x)
    return F.relu(gn2(conv2(x)))


class FilmUNet(nn.Module):
    """U-Net with FiLM text conditioning on the bottleneck and every decoder stage."""

    def __init__(self, config: FilmUNetConfig) -> None:
        super().__init__()
        self.config = config
        c1, c2, c3, c4 = config.widths
        g, td = config.groups, config.text_dim
        self.embed = nn.Embedding(config.vocab_buckets, td, padding_idx=0)
        self.gru = nn.GRU(td, td, batch_first=True, bidirectional=True)
        tvec = 4 * td  # mean and max of the 2·td GRU outputs
        self.text_mlp = nn.Sequential(nn.Linear(tvec, 256), nn.ReLU())
        self.enc = nn.ModuleList([_block(5, c1, g), _block(c1, c2, g), _block(c2, c3, g),
                                  _block(c3, c4, g)])
        self.mid = _block(c4, c4, g)
        # decoder: up to /8 (+ skip c4), /4 (+ c3), /2 (+ c2), full (+ c1)
        self.dec = nn.ModuleList([_block(c4 + c4, c3, g), _block(c3 + c3, c2, g),
                                  _block(c2 + c2, c1, g), _block(c1 + c1, c1, g)])
        film_dims = [c4, c3, c2, c1, c1]  # bottleneck, then the decoder stages
        self.films = nn.ModuleList([nn.Linear(256, 2 * c) for c in film_dims])
        for lin in self.films:
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.head = nn.Conv2d(c1, 1, 1)
        self.boundary_head = nn.Linear(256, 1)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1),
                             persistent=False)

    # -------------------------------------------------------------- trainer API
    @property
    def image_size(self) -> int:
        """Square input size in px."""
        return self.config.image_size

    def apply_freezing(self) -> None:
        """Everything trains (no pretrained part)."""
        for p in self.parameters():
            p.requires_grad_(True)

    def named_param_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """All parameters in the ``new`` group (``lr_new``); ``base`` is empty."""
        return {"new": [(n, p) for n, p in self.named_parameters() if p.requires_grad],
                "base": []}

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"new": [...], "base": []}``."""
        return {k: [p for _, p in v] for k, v in self.named_param_groups().items()}

    def loss_inputs(self, output: ModelOutput) -> dict[str, torch.Tensor | None]:
        """Extra loss inputs: the boundary term's text weight (there is no MPG pseudo-mask)."""
        return {"text_weight": output.boundary_weight, "pseudo_mask": None}

    def parameter_counts(self) -> dict[str, int]:
        """``{"total", "trainable", "adapters"}`` (adapters = 0)."""
        ps = list(self.parameters())
        return {"total": sum(p.numel() for p in ps),
                "trainable": sum(p.numel() for p in ps if p.requires_grad), "adapters": 0}

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hash words into bucket ids 1..vocab_buckets-1; returns ``(words, pad)`` (B, L)."""
        ids = []
        for text in texts:
            words = _WORD.findall(str(text).lower())[: self.config.context_length] or ["<empty>"]
            ids.append([1 + zlib.crc32(w.encode()) % (self.config.vocab_buckets - 1)
                        for w in words])
        length = max(len(i) for i in ids)
        words = torch.zeros((len(ids), length), dtype=torch.long)
        for row, i in enumerate(ids):
            words[row, : len(i)] = torch.tensor(i)
        return words, words == 0

    def prepare_inputs(self, images: torch.Tensor | np.ndarray,
                       texts: Sequence[str]) -> FilmUNetInputs:
        """``(B,H,W,3)`` uint8 RGB + ``B`` captions -> :class:`FilmUNetInputs` on the device."""
        x = _as_image_batch(images)
        words, pad = self.tokenize(texts)
        device = self.mean.device
        x = x.to(device).permute(0, 3, 1, 2).float().div_(255.0)
        s = self.image_size
        if tuple(x.shape[-2:]) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False,
                              antialias=True)
        return FilmUNetInputs((x - self.mean) / self.std, words.to(device), pad.to(device))

    def forward(self, inputs: FilmUNetInputs, *,
                output_size: tuple[int, int] | None = None) -> ModelOutput:
        """Logits ``(B,1,S,S)`` (or ``output_size``) for what each caption refers to."""
        x = inputs.images
        b, _, h, w = x.shape
        keep = (~inputs.pad).unsqueeze(-1).float()
        lengths = (~inputs.pad).sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(inputs.words), lengths,
                                                   batch_first=True, enforce_sorted=False)
        seq, _ = self.gru(packed)  # padding is skipped in both directions
        seq, _ = nn.utils.rnn.pad_packed_sequence(seq, batch_first=True,
                                                  total_length=inputs.words.shape[1])
        mean = (seq * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        mx = seq.masked_fill(inputs.pad.unsqueeze(-1), -1e4).amax(1)
        t = self.text_mlp(torch.cat([mean, mx], dim=-1))  # (B, 256)
        films = [lin(t).chunk(2, dim=-1) for lin in self.films]

        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        x = torch.cat([x, gx.expand(b, 1, h, w), gy.expand(b, 1, h, w)], dim=1)
        skips = []
        for i, block in enumerate(self.enc):
            x = _run_block(block, x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = _run_block(self.mid, F.max_pool2d(x, 2), films[0])
        for i, block in enumerate(self.dec):
            skip = skips[-1 - i]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = _run_block(block, torch.cat([x, skip], dim=1), films[i + 1])
        logits = self.head(x)
        size = output_size or (h, w)
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        text_feat = seq  # (B, L, 2·text_dim)
        boundary_weight = self.boundary_head(t).squeeze(-1).float()
        g = max(1, h // 16)
        pseudo = logits.new_zeros((b, 1, g, g))
        return ModelOutput(logits.float(), pseudo, boundary_weight, text_feat)


def build_film_unet(config: FilmUNetConfig | None = None, *, device: str | torch.device = "cpu",
                    seed: int | None = 0, **overrides: Any) -> FilmUNet:
    """Random-init FiLM U-Net in eval mode (seeded; the global RNG is restored)."""
    cfg = config or FilmUNetConfig()
    if overrides:
        try:
            cfg = dataclasses.replace(cfg, **overrides)
        except TypeError as err:
            raise ConfigError(f"bad film-unet override: {err}") from None
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = FilmUNet(cfg)
    return model.to(device).eval()

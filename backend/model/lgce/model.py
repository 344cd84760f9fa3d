"""LGCE (RRSIS paper, TGRS 2024) on timm's Swin and a BERT-style text encoder.

Data flow of :meth:`LGCE.forward` (B = batch, S = input size, L = tokens, D = text width,
C = ``embed_dim``; stage ``i`` has width ``C·2^i`` at ``S / 2^(i+2)``)::

    tokens (B,L), pad --BertStyleEncoder--> words (B,L,D)
    images (B,3,S,S) --Swin patch embed--> (B,S/4,S/4,C)
    for each Swin stage i (timm: downsample, then blocks):
        x --blocks--> x;  m_i = PWAM_i(x, words)           (pixel-word attention)
        x = x + gate_i(m_i) * m_i   (language gate; x goes on to stage i+1)
        F_i = LayerNorm_i(m_i) as NCHW                      (multimodal features of stage i)
    F_1 = LGCE(F_1, F_4, words)                             (cross-scale enhancement)
    [F_1..F_4] --LAVT decoder--> (B,1,S/4,S/4) --bilinear--> logits (B,1,S,S)

Example:
    >>> model = build_lgce("lgce-tiny")
    >>> out = model(model.prepare_inputs(np.zeros((1, 90, 120, 3), np.uint8), ["the roofs"]))
    >>> out.logits.shape
    torch.Size([1, 1, 64, 64])
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, InputError
from ..meta_init import params_on_meta
from ..model_io import IMAGENET_MEAN, IMAGENET_STD, _channel_stat, _resize, _unit_batch
from .config import LGCEConfig
from .decoder import LavtDecoder
from .fusion import CrossScaleEnhancement, LanguageGate, PixelWordAttention
from .text import BertStyleEncoder, _check_text, make_tokenizer

__all__ = ["LGCE", "LGCEInputs", "LGCEOutput", "build_lgce"]


@dataclass
class LGCEInputs:
    """A preprocessed batch (see :meth:`LGCE.prepare_inputs`).

    Attributes:
        images: ``(B, 3, S, S)`` float32, ImageNet-normalised.
        tokens: ``(B, L)`` int64 token ids, trimmed to the batch's longest caption.
        text_pad: ``(B, L)`` bool, True after each caption's end token.
    """

    images: torch.Tensor
    tokens: torch.Tensor
    text_pad: torch.Tensor

    @property
    def batch_size(self) -> int:
        """Number of (image, caption) pairs."""
        return int(self.images.shape[0])

    def to(self, device: torch.device | str) -> LGCEInputs:
        """Copy of the batch on ``device``."""
        return LGCEInputs(self.images.to(device), self.tokens.to(device), self.text_pad.to(device))


@dataclass
class LGCEOutput:
    """Result of :meth:`LGCE.forward`.

    Attributes:
        logits: ``(B, 1, S, S)`` float32 mask logits (or at ``output_size``).
        text_feat: ``(B, L, D)`` word features of the text encoder.
    """

    logits: torch.Tensor
    text_feat: torch.Tensor


class LGCE(nn.Module):
    """Swin + PWAM/gates at every stage + the LGCE module + the LAVT decoder.

    Build with :func:`build_lgce`. Sub-modules: ``swin`` (timm ``SwinTransformer``, its final
    norm and head removed), ``text`` (:class:`BertStyleEncoder`), ``pwam``, ``gates``,
    ``stage_norms``, ``lgce`` (absent with ``use_lgce=False``) and ``decoder``.

    Args:
        config: The architecture.
    """

    def __init__(self, config: LGCEConfig) -> None:
        super().__init__()
        from timm.models.swin_transformer import SwinTransformer

        self.config = config
        self.swin = SwinTransformer(
            img_size=config.image_size,
            patch_size=config.patch_size,
            num_classes=0,
            global_pool="",
            embed_dim=config.embed_dim,
            depths=tuple(config.depths),
            num_heads=tuple(config.num_heads),
            window_size=config.window_size,
            mlp_ratio=config.mlp_ratio,
            drop_path_rate=config.drop_path_rate,
        )
        self.swin.norm = nn.Identity()  # LAVT normalises every stage output instead
        self.text = BertStyleEncoder(config)
        dims = config.stage_dims
        d = config.text_width
        self.pwam = nn.ModuleList(PixelWordAttention(c, d, config.pwam_heads) for c in dims)
        self.gates = nn.ModuleList(LanguageGate(c) for c in dims)
        self.stage_norms = nn.ModuleList(nn.LayerNorm(c) for c in dims)
        self.lgce = (
            CrossScaleEnhancement(dims[0], dims[3], d, config.lgce_dim, config.lgce_heads)
            if config.use_lgce
            else None
        )
        self.decoder = LavtDecoder(dims, config.decoder_dim)
        rows = config.vocab_size if config.tokenizer == "wordpiece" else 0
        self.register_buffer(
            "vocab_table", torch.zeros((rows, config.vocab_token_bytes), dtype=torch.uint8)
        )
        self.register_buffer("mean", _channel_stat(IMAGENET_MEAN), persistent=False)
        self.register_buffer("std", _channel_stat(IMAGENET_STD), persistent=False)
        self._tokenizer: object | None = None
        self.apply_freezing()

    # ------------------------------------------------------------------ properties
    @property
    def image_size(self) -> int:
        """Square input size ``S`` in pixels."""
        return self.config.image_size

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.mean.device

    @property
    def tokenizer(self) -> object:
        """The tokeniser (WordPiece reads the vocabulary stored in the weights)."""
        if self._tokenizer is None:
            self._tokenizer = make_tokenizer(self.config, self.vocab_table)
        return self._tokenizer

    def reset_tokenizer(self) -> None:
        """Forget the cached tokeniser (after the vocabulary table changed)."""
        self._tokenizer = None

    def _load_from_state_dict(self, *args: object, **kwargs: object) -> None:
        self._tokenizer = None  # a new vocabulary may come with the weights
        super()._load_from_state_dict(*args, **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ freezing and groups
    def apply_freezing(self) -> None:
        """Set ``requires_grad`` from the config (called at build and after loading).

        Everything trains, except (``text_trainable_layers = k >= 0``) the text embeddings and
        the text layers from ``k`` on (the official recipe optimises BERT layers 0-9 only).
        """
        for param in self.parameters():
            param.requires_grad_(True)
        k = self.config.text_trainable_layers
        if k >= 0:
            frozen = [
                self.text.tok_embed,
                self.text.pos_embed,
                self.text.type_embed,
                self.text.embed_norm,
                *list(self.text.layers)[k:],
            ]
            for module in frozen:
                for param in module.parameters():
                    param.requires_grad_(False)

    def named_param_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Trainable parameters by learning-rate group, with names.

        ``base``: Swin and the text encoder; ``new``: PWAMs, gates, stage norms, the LGCE
        module and the decoder. Frozen parameters are in neither.
        """
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"new": [], "base": []}
        for name, param in self.named_parameters():
            if param.requires_grad:
                groups["base" if name.startswith(("swin.", "text.")) else "new"].append(
                    (name, param)
                )
        return groups

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"new": [...], "base": [...]}`` (see :meth:`named_param_groups`)."""
        return {k: [p for _, p in v] for k, v in self.named_param_groups().items()}

    def describe_encoders(self) -> str:
        """One line for reports: the image and text encoders."""
        cfg = self.config
        return (f"Swin C={cfg.embed_dim} {tuple(cfg.depths)} w{cfg.window_size} + text "
                f"{cfg.text_layers}x{cfg.text_width} {cfg.tokenizer}")

    def parameter_counts(self) -> dict[str, int]:
        """``{"total", "trainable", "swin", "text"}`` parameter counts."""
        params = list(self.parameters())
        return {
            "total": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad),
            "swin": sum(p.numel() for p in self.swin.parameters()),
            "text": sum(p.numel() for p in self.text.parameters()),
        }

    def loss_inputs(self, output: LGCEOutput) -> dict[str, torch.Tensor | None]:
        """Extra inputs of the training loss: none (the paper's loss is the weighted CE)."""
        return {}

    # ------------------------------------------------------------------ preprocessing
    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens`` ``(N, L)`` int64 and ``pad`` ``(N, L)`` bool on the CPU.

        Raises:
            InputError: A caption that is not a string or is empty.
        """
        texts = [_check_text(text) for text in texts]  # cleaned: backend.text.normalize
        return self.tokenizer(texts)  # type: ignore[operator]

    def prepare_inputs(self, images: torch.Tensor | np.ndarray, texts: Sequence[str]) -> LGCEInputs:
        """Preprocess a batch.

        Args:
            images: ``(B, H, W, 3)`` uint8 RGB, any ``H, W >= 32``; resized (bilinear, aspect
                not kept) to ``image_size`` and ImageNet-normalised.
            texts: ``B`` captions.

        Raises:
            InputError: On a bad image batch or caption.
        """
        dev = self.mean.device
        x = _unit_batch(images, texts, dev)
        tokens, pad = self.tokenize(texts)
        x = (_resize(x, self.image_size) - self.mean) / self.std
        return LGCEInputs(x, tokens.to(dev), pad.to(dev))

    # ------------------------------------------------------------------ forward
    def encode(self, inputs: LGCEInputs) -> dict[str, object]:
        """Every intermediate of the forward pass (for inspection and tests).

        Returns:
            ``{"words": (B, L, D), "stages": [F_1..F_4] NCHW (before the LGCE module),
            "enhanced": F_1 after it (or F_1 itself), "low_res": (B, 1, S/4, S/4)}``.
        """
        if inputs.tokens.shape[1] > self.config.context_length:
            raise InputError(
                f"{inputs.tokens.shape[1]} tokens exceed the context length "
                f"{self.config.context_length}"
            )
        pad = inputs.text_pad
        words = self.text(inputs.tokens, pad)
        x = self.swin.patch_embed(inputs.images)  # (B, H, W, C)
        stages = []
        for stage, pwam, gate, norm in zip(
            self.swin.layers, self.pwam, self.gates, self.stage_norms, strict=True
        ):
            x = stage(x)
            b, h, w, c = x.shape
            flat = x.reshape(b, h * w, c)
            mm = pwam(flat, words, pad)
            x = gate(flat, mm).reshape(b, h, w, c)
            stages.append(norm(mm).reshape(b, h, w, c).permute(0, 3, 1, 2))
        enhanced = stages[0] if self.lgce is None else self.lgce(stages[0], stages[3], words, pad)
        low_res = self.decoder([enhanced, *stages[1:]])
        return {"words": words, "stages": stages, "enhanced": enhanced, "low_res": low_res}

    def forward(
        self, inputs: LGCEInputs, *, output_size: tuple[int, int] | None = None
    ) -> LGCEOutput:
        """Segment what each caption refers to.

        Args:
            inputs: From :meth:`prepare_inputs`.
            output_size: ``(H, W)`` of the logits; default the input size.
        """
        parts = self.encode(inputs)
        size = output_size or tuple(inputs.images.shape[-2:])
        logits = F.interpolate(
            parts["low_res"].float(),
            size=size,  # type: ignore[union-attr]
            mode="bilinear",
            align_corners=False,
        )
        return LGCEOutput(logits, parts["words"])  # type: ignore[arg-type]

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` with a token the weights know nothing about.

        A token is unknown when its embedding row is all zeros (a row-pruned export keeps only
        the rows of tokens seen in training) or, for WordPiece, when it is ``[UNK]``.
        """
        ids_of = getattr(self.tokenizer, "ids", None)
        if ids_of is None:
            return []
        table = self.text.tok_embed.weight.detach()
        zero = (table == 0).all(dim=1).cpu()
        unk = getattr(self.tokenizer, "unk_id", None)
        if not bool(zero.any()) and unk is None:
            return []
        words = dict.fromkeys(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower()))
        return [w for w in words if any(bool(zero[i]) or i == unk for i in ids_of(w))]


def build_lgce(
    config: str | LGCEConfig, *, device: str | torch.device = "cpu", seed: int | None = 0
) -> LGCE:
    """Build a random-init LGCE in eval mode.

    Args:
        config: Registry name (``lgce-tiny``, ``lgce-nano``, ``lgce-paper``) or an
            :class:`LGCEConfig`.
        device: Where to put it; ``"meta"`` allocates no parameter memory.
        seed: Seed of the random init (the global RNG is restored); None uses the global RNG.

    Raises:
        ConfigError: Unknown name, or a config of another architecture.
    """
    from ..configs import get_model_config

    cfg = get_model_config(config) if isinstance(config, str) else config
    if not isinstance(cfg, LGCEConfig):
        raise ConfigError(
            f"build_lgce needs an LGCE config, got {type(cfg).__name__} "
            f"{getattr(cfg, 'name', '')!r}"
        )
    dev = torch.device(device)
    with contextlib.ExitStack() as stack:
        if seed is not None:
            stack.enter_context(torch.random.fork_rng(devices=[]))
            torch.manual_seed(seed)
        if dev.type == "meta":
            stack.enter_context(params_on_meta())
        model = LGCE(cfg)
    if dev.type == "meta":
        _materialise_swin_masks(model)
    else:
        model.to(dev)
    return model.eval()


def _materialise_swin_masks(model: LGCE) -> None:
    """Recompute the shifted-window attention masks on the CPU after a meta build.

    timm derives each block's non-persistent ``attn_mask`` on the device of its parameters, so
    under :func:`params_on_meta` the masks are meta tensors, which no checkpoint restores.
    """
    from timm.models.swin_transformer import SwinTransformerBlock

    for block in model.swin.modules():
        mask = getattr(block, "attn_mask", None)
        if isinstance(block, SwinTransformerBlock) and mask is not None and mask.is_meta:
            fresh = block.get_attn_mask(device=torch.device("cpu"), dtype=torch.float32)
            block.register_buffer("attn_mask", fresh, persistent=False)

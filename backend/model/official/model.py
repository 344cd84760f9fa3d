"""The published RS2-SAM 2 forward, on ``torchscale`` BEiT-3 and unforked ``sam2`` 1.1.0.

Data flow of :meth:`OfficialRS2SAM2.forward` (model_spec §1; the published ``EvfSamModel``)::

    beit3_images (B,3,224,224), ids (B,L), pad = ids == <unk>
        --BEiT-3--> cls (B,1,d), vis (B,14,14,d), txt (B,L,d)
    cls, vis --mpg (× MHA, gate, sigmoid)--> pseudo-mask P (B,1,14,14)
    cls --sparse_proj--> sparse prompt (B,1,C);  txt --text_proj--> text_feat (B,L,C)
    sam_images (B,3,1024,1024) --Hiera-L + published adapters (text state = text_feat)--> FPN
        --> image_embed (B,C,64,64) + no_mem_embed, high-res (B,C/8,256,256), (B,C/4,128,128)
    image_embed --text_fusion (× MHA, query + dense PE, keys text_feat, no mask)--> decoder input
    P --bilinear, antialias--> (B,1,256,256) --prompt encoder--> dense prompt
    mask decoder (single mask, token 0) --> z (B,1,256,256) --bilinear--> (B,1,S,S)
    logits = 2z - 1

The published prediction is ``argmax([1 - z, z])``, i.e. ``z > 0.5``, and its training loss is a
softmax over ``[1 - z, z]``, so the foreground probability is ``σ(2z - 1)``: returning
``2z - 1`` as the logits makes ``sigmoid(logits) > 0.5`` exactly the published decision and the
probability the one the model was trained to give.

Preprocessing (the published ``get_transform`` / ``get_transform_evf``): PIL bilinear resize of
the uint8 image to ``S×S`` and to ``224×224`` (aspect not kept, no padding), scaling to [0, 1],
ImageNet mean/std for both views.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, InputError
from ..bhfm import TextFusion, TextState
from ..model_io import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Encoding,
    ModelInputs,
    ModelOutput,
    _as_image_batch,
    _channel_stat,
    _check_text,
)
from ..mpg import MaskPromptGenerator
from ..prompt_decode import decode_prompts
from ..prompts import Prompts
from ..rs2sam import _params_on_meta, sam_image_features
from ..sam2_build import _build_sam2
from .adapters import add_official_adapters
from .beit3 import BEiT3Union
from .config import OfficialConfig
from .parts import OfficialParts
from .preprocess import pil_resize
from .tokenizer import XLMRTokenizer, train_toy_model

logger = logging.getLogger(__name__)

__all__ = ["OfficialRS2SAM2", "build_official_model", "pil_resize"]


class OfficialRS2SAM2(OfficialParts, nn.Module):
    """RS2-SAM 2 in the published module layout (architecture ``"rs2sam2-official"``).

    Sub-modules: ``union.beit3`` (torchscale BEiT-3), ``image_encoder`` (Hiera + FPN, blocks
    with ``Space_Adapter`` / ``MLP_Adapter``), ``sam_prompt_encoder``, ``sam_mask_decoder``,
    ``no_mem_embed``, ``mpg``, ``sparse_proj``, ``text_proj``, ``text_fusion``,
    ``boundary_head``; buffer ``tokenizer_model`` (the sentencepiece model, uint8). The release's
    names map onto these by :mod:`backend.model.official.keymap`.

    Args:
        config: The architecture (``tokenizer_bytes`` sizes the tokeniser buffer).
        sam: A random-init sam2 ``SAM2Base`` of ``config.sam2_yaml`` (memory modules dropped).
        tokenizer_model: The sentencepiece model; None leaves the buffer zero (to be loaded).
    """

    def __init__(
        self, config: OfficialConfig, sam: nn.Module, tokenizer_model: bytes | None = None
    ) -> None:
        super().__init__()
        if not sam.use_high_res_features_in_sam:
            raise ConfigError(
                f"{config.name}: the SAM 2 description must use high-res features in SAM"
            )
        self.config = config
        self.image_encoder = sam.image_encoder
        self.sam_prompt_encoder = sam.sam_prompt_encoder
        self.sam_mask_decoder = sam.sam_mask_decoder
        self.no_mem_embed = sam.no_mem_embed
        self.directly_add_no_mem_embed = bool(sam.directly_add_no_mem_embed)
        prompt_dim = int(sam.hidden_dim)
        self.prompt_dim = prompt_dim
        if prompt_dim % config.text_fusion_heads:
            raise ConfigError(
                f"{config.name}: text_fusion_heads {config.text_fusion_heads} must divide the "
                f"prompt width {prompt_dim}"
            )

        self.text_state = TextState()
        self.paint_clicks = True  # clicks also mark the dense mask prompt (prompts.paint_clicks)
        add_official_adapters(
            self.image_encoder.trunk,
            self.text_state,
            text_dim=prompt_dim,
            ratio=config.adapter_ratio,
            heads=config.adapter_heads,
            alpha=config.text_update_alpha,
            mlp_scale=config.mlp_adapter_scale,
        )
        self.union = BEiT3Union(config)
        d = self.union.dim
        self.mpg = MaskPromptGenerator(d, config.mpg_heads)
        self.sparse_proj = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, prompt_dim))
        self.text_proj = nn.Linear(d, prompt_dim)
        self.text_fusion = TextFusion(prompt_dim, config.text_fusion_heads)
        self.boundary_head = nn.Linear(prompt_dim, 1)

        data = torch.zeros(config.tokenizer_bytes, dtype=torch.uint8)
        if tokenizer_model is not None:
            if len(tokenizer_model) != config.tokenizer_bytes:
                raise ConfigError(
                    f"{config.name}: tokenizer_bytes={config.tokenizer_bytes} but the "
                    f"tokeniser model has {len(tokenizer_model)} bytes"
                )
            data = torch.frombuffer(bytearray(tokenizer_model), dtype=torch.uint8)
        self.register_buffer("tokenizer_model", data)
        self._tokenizer: XLMRTokenizer | None = None
        # per-query constants, kept between the tiles of a query (cleared on load_state_dict)
        self._token_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._pe_cache: dict[tuple[int, int, torch.dtype, torch.device], torch.Tensor] = {}
        self.register_load_state_dict_post_hook(_forget_tokenizer)

        self.register_buffer("sam_mean", _channel_stat(IMAGENET_MEAN), persistent=False)
        self.register_buffer("sam_std", _channel_stat(IMAGENET_STD), persistent=False)
        self.apply_freezing()

    # ------------------------------------------------------------------ properties
    @property
    def image_size(self) -> int:
        """Square SAM input size ``S`` in pixels."""
        return self.config.image_size

    @property
    def grid_size(self) -> int:
        """Side ``g`` of the pseudo-mask grid (BEiT-3 patches per side)."""
        return self.union.grid

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.no_mem_embed.device

    @property
    def tokenizer(self) -> XLMRTokenizer:
        """The tokeniser, built from the ``tokenizer_model`` buffer on first use."""
        if self._tokenizer is None:
            raw = self.tokenizer_model.detach().cpu().numpy().tobytes()
            try:
                self._tokenizer = XLMRTokenizer(raw, max_tokens=self.config.max_text_tokens)
            except InputError as err:
                raise InputError(
                    f"{self.config.name}: this model carries no usable tokeniser ({err}); "
                    "import the release again with python -m backend import-official"
                ) from None
        return self._tokenizer

    # ------------------------------------------------------------------ preprocessing
    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids ``(N, L)`` and padding mask ``(N, L)`` (see :class:`XLMRTokenizer`).

        The tiles of one query repeat one caption: its tokens are made once and kept (the
        last 32 caption lists).
        """
        texts = [_check_text(text) for text in texts]  # cleaned: backend.text.normalize
        key = "\0".join(texts)
        if key not in self._token_cache:
            if len(self._token_cache) >= 32:
                self._token_cache.pop(next(iter(self._token_cache)))
            self._token_cache[key] = self.tokenizer(list(texts))
        ids, pad = self._token_cache[key]
        return ids.clone(), pad.clone()

    def dense_pe(self, h: int, w: int, dtype: torch.dtype) -> torch.Tensor:
        """The prompt encoder's dense positional encoding ``(1, C, h, w)``, made once per size."""
        if torch.is_grad_enabled():  # training: no tensor is carried between steps
            return self.sam_prompt_encoder.pe_layer((h, w)).unsqueeze(0).to(dtype)
        key = (h, w, dtype, self.device)
        if key not in self._pe_cache:
            self._pe_cache[key] = self.sam_prompt_encoder.pe_layer((h, w)).unsqueeze(0).to(dtype)
        return self._pe_cache[key]

    def prepare_inputs(
        self,
        images: torch.Tensor | np.ndarray,
        texts: Sequence[str],
        prompts: Prompts | None = None,
    ) -> ModelInputs:
        """Preprocess as the published test path does (clicks are passed through).

        Args:
            images: ``(B, H, W, 3)`` uint8 RGB, any ``H, W >= 32``.
            texts: ``B`` captions.
            prompts: Clicks / box in normalised image coordinates (see :class:`Prompts`).

        Returns:
            :class:`ModelInputs`: the SAM view (PIL bilinear to ``S×S``) and the BEiT-3 view
            (PIL bilinear to ``224×224``, in ``clip_images``), both ImageNet-normalised; ids
            and their padding mask.

        Raises:
            InputError: On a bad image batch or caption.
        """
        x = _as_image_batch(images, texts)
        tokens, pad = self.tokenize(texts)
        arr = x.cpu().numpy()
        device = self.sam_mean.device
        sam = (pil_resize(arr, self.image_size).to(device) - self.sam_mean) / self.sam_std
        beit = pil_resize(arr, self.config.beit3_image_size).to(device)
        beit = (beit - self.sam_mean) / self.sam_std
        moved = None if prompts is None else prompts.to(device)
        return ModelInputs(sam, beit, tokens.to(device), pad.to(device), moved)

    # ------------------------------------------------------------------ forward
    def encode_image(
        self, images: torch.Tensor, text_feat: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Hiera + published adapters (text state starts at ``text_feat``) + FPN.

        Returns:
            ``image_embed`` ``(B, C, S/16, S/16)`` and ``[(B, C/8, S/4, ·), (B, C/4, S/8, ·)]``.
        """
        self.text_state.set(text_feat, None)
        try:
            return sam_image_features(self, images)
        finally:
            self.text_state.clear()

    def forward(
        self, inputs: ModelInputs, *, output_size: tuple[int, int] | None = None
    ) -> ModelOutput:
        """Segment what each caption refers to (published order; see the module docstring).

        Args:
            inputs: From :meth:`prepare_inputs`; ``inputs.prompts`` adds clicks to the text.
            output_size: ``(H, W)`` of the returned logits; default the model input size.

        Returns:
            :class:`ModelOutput` with ``logits = 2z - 1`` ``(B, 1, H, W)`` float32.
        """
        return self.decode(self.encode(inputs), inputs.prompts, output_size=output_size)

    def encode(self, inputs: ModelInputs) -> Encoding:
        """Everything that depends on the image and the text only (one per click session)."""
        union = self.union(inputs.clip_images, inputs.tokens, inputs.text_pad)
        pseudo_mask = self.mpg(union.cls, union.vis).float()  # (B, 1, g, g)
        sparse = self.sparse_proj(union.cls)  # (B, 1, C)
        text_feat = self.text_proj(union.txt)  # (B, L, C)
        boundary_weight = self.boundary_head(text_feat[:, 0]).squeeze(-1).float()

        image_embed, high_res = self.encode_image(inputs.sam_images, text_feat)
        h, w = image_embed.shape[-2:]
        image_pe = self.dense_pe(h, w, image_embed.dtype)
        image_embed = self.text_fusion(image_embed, image_pe, text_feat, None)
        return Encoding(
            image_embed,
            image_pe,
            high_res,
            sparse,
            pseudo_mask,
            boundary_weight,
            text_feat,
            tuple(inputs.sam_images.shape[-2:]),
        )

    def decode(
        self,
        enc: Encoding,
        prompts: Prompts | None = None,
        *,
        output_size: tuple[int, int] | None = None,
    ) -> ModelOutput:
        """SAM 2's decoder with the text's prompts and the clicks' (see ``prompt_decode``).

        The published head reads ``z`` as a probability; ``low_res`` is returned as the
        logits ``2z - 1`` so that a refinement can feed it back like RS2-SAM 2's.
        """
        z = decode_prompts(self, enc, prompts).float()
        size = output_size or enc.input_hw
        up = F.interpolate(z, size=size, mode="bilinear", align_corners=False)
        return ModelOutput(
            2.0 * up - 1.0, enc.pseudo_mask, enc.boundary_weight, enc.text_feat, 2.0 * z - 1.0
        )


def _forget_tokenizer(module: nn.Module, _keys: object) -> None:
    module._tokenizer = None  # the buffer may hold a new model now
    module._token_cache.clear()
    module._pe_cache.clear()  # the prompt encoder's random Fourier matrix may be new


def build_official_model(
    config: str | OfficialConfig,
    *,
    device: str | torch.device = "cpu",
    seed: int | None = 0,
    tokenizer_model: bytes | None = None,
) -> OfficialRS2SAM2:
    """Build a random-init published-layout model in eval mode.

    Args:
        config: Registry name (``"official-large"``, ``"official-tiny"``) or a config.
        device: Where to put it; ``"meta"`` allocates no parameter memory (counting, loading).
        seed: Seed of the random init (the global RNG is restored); None uses the global RNG.
        tokenizer_model: A sentencepiece model to carry. Without one, a config with
            ``tokenizer_bytes=0`` gets a toy tokeniser (random-init models only) and its
            ``tokenizer_bytes`` set accordingly; otherwise the buffer is left zero (to be
            filled by loading a checkpoint).

    Raises:
        ConfigError: Unknown name or an inconsistent config.
        ResourceError: The parameters (+ 1 GiB for a forward pass) would not fit in the
            device's free memory (checked on the meta device first, so it fails in about a
            second instead of being killed).
    """
    from ...resources import check_fits, tensor_bytes
    from ..configs import get_model_config

    cfg = get_model_config(config) if isinstance(config, str) else config
    if not isinstance(cfg, OfficialConfig):
        raise ConfigError(
            f"build_official_model needs an OfficialConfig, got {type(cfg).__name__} "
            f"{getattr(cfg, 'name', '')!r}"
        )
    if tokenizer_model is None and cfg.tokenizer_bytes == 0:
        tokenizer_model = train_toy_model()
    if tokenizer_model is not None and len(tokenizer_model) != cfg.tokenizer_bytes:
        from dataclasses import replace

        cfg = replace(cfg, tokenizer_bytes=len(tokenizer_model))
    dev = torch.device(device)
    on_meta = dev.type == "meta"
    if not on_meta:
        plan = build_official_model(cfg, device="meta", seed=None, tokenizer_model=tokenizer_model)
        check_fits(tensor_bytes(plan) + 1024**3, dev, what=f"building {cfg.name}")
        del plan
    with contextlib.ExitStack() as stack:
        if seed is not None:
            stack.enter_context(torch.random.fork_rng(devices=[]))
            torch.manual_seed(seed)
        if on_meta:
            stack.enter_context(_params_on_meta())
        sam = _build_sam2(cfg)
        model = OfficialRS2SAM2(cfg, sam, tokenizer_model)
    if not on_meta:
        model.to(dev)
    return model.eval()

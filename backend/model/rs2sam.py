"""RS2-SAM 2 on unforked ``sam2`` 1.1.0 and our CLIP towers (``clip_towers``, open_clip's layout).

Data flow of :meth:`RS2SAM2.forward` (model_spec §1; B = batch, L = text tokens, S = model input
size, R = CLIP input size, g = CLIP patch grid, C = SAM 2 prompt width, 256 for real models)::

    clip_images (B,3,R,R), tokens (B,L) --union--> cls (B,1,d), vis (B,g,g,d), txt (B,L,d)
    cls --sparse_proj--> sparse prompt (B,1,C);  txt --text_proj--> text_feat (B,L,C)
    cls, vis --mpg--> pseudo_mask (B,1,g,g) --resize--> dense mask prompt (B,1,S/4,S/4)
    sam_images (B,3,S,S) --Hiera + BHFM adapters (text state = text_feat)--> FPN
        --> image_embed (B,C,S/16,S/16) (+ no_mem_embed), high-res (B,C/8,S/4,·), (B,C/4,S/8,·)
    image_embed --text_fusion (× MHA over text_feat)--> sam_mask_decoder (single mask)
        --> low-res logits (B,1,S/4,S/4) --bilinear--> logits (B,1,S,S)
    text_feat[:,0] --boundary_head--> boundary_weight (B,)

Every feature size is read from the backbone output, so any input size that is a multiple of
32 works (sam2's image predictor hard-codes 1024).

Example:
    >>> model = build_model("test-tiny")
    >>> inputs = model.prepare_inputs(np.zeros((1, 100, 140, 3), np.uint8), ["the red roofs"])
    >>> out = model(inputs)
    >>> out.logits.shape
    torch.Size([1, 1, 128, 128])
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..text.normalize import quote_text
from .bhfm import AdaptedBlock, TextFusion, TextState, add_adapters
from .clip_towers import ClipTowers
from .configs import ModelConfig, get_model_config
from .meta_init import params_on_meta as _params_on_meta
from .model_io import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MIN_IMAGE_PX,
    Encoding,
    ModelInputs,
    ModelOutput,
    _channel_stat,
    _check_text,
    _resize,
    _unit_batch,
)
from .mpg import MaskPromptGenerator
from .prompt_decode import decode_prompts
from .prompts import Prompts
from .rs2sam_params import ParamPolicy
from .sam2_build import _build_sam2, load_sam2_yaml
from .sam2_features import sam_image_features
from .union import build_clip, build_union_encoder, get_tokenizer

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MIN_IMAGE_PX",
    "RS2SAM2",
    "ModelInputs",
    "ModelOutput",
    "build_model",
    "load_sam2_yaml",
    "sam_image_features",
]


class RS2SAM2(ParamPolicy):
    """RS2-SAM 2: a union encoder prompting SAM 2 through BHFM adapters and the MPG.

    Build with :func:`build_model`. Sub-modules keep SAM 2's names at the top level
    (``image_encoder``, ``sam_prompt_encoder``, ``sam_mask_decoder``, ``no_mem_embed``), so
    official SAM 2 weights load key-for-key; the CLIP towers (open_clip's names) are
    ``union.visual`` and ``union.text``.

    Args:
        config: The architecture.
        sam: A random-init sam2 ``SAM2Base`` built from ``config.sam2_yaml`` (its memory
            modules are dropped).
        clip: The CLIP towers for ``config.clip_model`` (:func:`~.union.build_clip`).
    """

    def __init__(self, config: ModelConfig, sam: nn.Module, clip: ClipTowers) -> None:
        super().__init__()
        if not sam.use_high_res_features_in_sam:
            raise ConfigError(
                f"{config.name}: the SAM 2 YAML must set use_high_res_features_in_sam: true"
            )
        self.config = config
        self.image_encoder = sam.image_encoder
        self.sam_prompt_encoder = sam.sam_prompt_encoder
        self.sam_mask_decoder = sam.sam_mask_decoder
        self.no_mem_embed = sam.no_mem_embed
        self.directly_add_no_mem_embed = bool(sam.directly_add_no_mem_embed)
        prompt_dim = int(sam.hidden_dim)
        self.prompt_dim = prompt_dim

        self.text_state = TextState()
        self.paint_clicks = True  # clicks also mark the dense mask prompt (prompts.paint_clicks)
        if config.use_bhfm:
            add_adapters(
                self.image_encoder.trunk,
                self.text_state,
                text_dim=prompt_dim,
                ratio=config.adapter_ratio,
                heads=config.adapter_heads,
                alpha=config.text_update_alpha,
                mlp_scale=config.mlp_adapter_scale,
            )
        self.union = build_union_encoder(config, clip)
        d = self.union.dim
        if d % config.mpg_heads or prompt_dim % config.text_fusion_heads:
            raise ConfigError(
                f"{config.name}: mpg_heads {config.mpg_heads} must divide the union width {d} "
                f"and text_fusion_heads {config.text_fusion_heads} the prompt width {prompt_dim}"
            )
        self.sparse_proj = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, prompt_dim))
        self.text_proj = nn.Linear(d, prompt_dim)
        self.boundary_head = nn.Linear(prompt_dim, 1)
        # ablation use_mpg_dense=False: no MPG; SAM's no_mask_embed is the dense prompt
        self.mpg = MaskPromptGenerator(d, config.mpg_heads) if config.use_mpg_dense else None
        self.text_fusion = TextFusion(prompt_dim, config.text_fusion_heads)

        clip_mean, clip_std = clip.visual.image_mean, clip.visual.image_std
        self.register_buffer("sam_mean", _channel_stat(IMAGENET_MEAN), persistent=False)
        self.register_buffer("sam_std", _channel_stat(IMAGENET_STD), persistent=False)
        self.register_buffer("clip_mean", _channel_stat(clip_mean), persistent=False)
        self.register_buffer("clip_std", _channel_stat(clip_std), persistent=False)
        self.tokenizer = get_tokenizer(config)
        self.apply_freezing()

    # ------------------------------------------------------------------ properties
    @property
    def image_size(self) -> int:
        """Square SAM input size ``S`` in pixels."""
        return self.config.image_size

    @property
    def clip_image_size(self) -> int:
        """Square CLIP input size ``R`` in pixels."""
        return self.config.clip_image_size

    @property
    def grid_size(self) -> int:
        """Side ``g`` of the pseudo-mask grid (CLIP patches per side)."""
        return self.union.grid

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.no_mem_embed.device

    def describe_encoders(self) -> str:
        """One line for reports: the union encoder."""
        cfg = self.config
        return f"{cfg.union_encoder}, {cfg.clip_model} @{cfg.clip_image_size} (g={self.grid_size})"

    # ------------------------------------------------------------------ preprocessing
    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenise captions with the CLIP BPE tokeniser (open_clip's ids).

        Captions longer than ``context_length`` tokens are truncated (EOT kept) with a
        logged warning. The batch is trimmed to its longest caption.

        Returns:
            ``tokens`` ``(N, L)`` int64 and ``pad`` ``(N, L)`` bool (True after EOT), on CPU.

        Raises:
            InputError: If a caption is not a string or is empty/whitespace.
        """
        texts = [_check_text(text) for text in texts]  # cleaned: backend.text.normalize
        ctx = self.config.context_length
        encode = getattr(self.tokenizer, "encode", None)
        if encode is not None:
            for text in texts:
                n = len(encode(text)) + 2  # + SOT and EOT
                if n > ctx and text != getattr(self, "_warned_text", None):  # once per text
                    self._warned_text = text
                    logger.warning(
                        "text has %d tokens, more than the model's context of %d; truncated: %s",
                        n,
                        ctx,
                        quote_text(text),
                    )
        tokens = self.tokenizer(list(texts)).long()
        eot = tokens.argmax(dim=-1)  # EOT has the highest id of the BPE vocabulary
        length = int(eot.max()) + 1
        tokens = tokens[:, :length]
        pad = torch.arange(length)[None, :] > eot[:, None]
        return tokens, pad

    def prepare_inputs(
        self,
        images: torch.Tensor | np.ndarray,
        texts: Sequence[str],
        prompts: Prompts | None = None,
    ) -> ModelInputs:
        """Preprocess a batch: two image views and the tokens (and clicks, passed through).

        Args:
            images: ``(B, H, W, 3)`` uint8 RGB (torch or numpy), any ``H, W >= 32``.
            texts: ``B`` captions.
            prompts: Clicks / box in normalised image coordinates (see :class:`Prompts`).

        Returns:
            :class:`ModelInputs` on the model's device: the SAM view resized (bilinear,
            aspect not kept) to ``image_size`` with ImageNet normalisation, the CLIP view at
            ``clip_image_size`` with CLIP's mean/std, and the tokens with their pad mask.

        Raises:
            InputError: On a bad image batch or caption.
        """
        device = self.sam_mean.device
        x = _unit_batch(images, texts, device)
        tokens, pad = self.tokenize(texts)
        sam = (_resize(x, self.image_size) - self.sam_mean) / self.sam_std
        clip = (_resize(x, self.clip_image_size) - self.clip_mean) / self.clip_std
        moved = None if prompts is None else prompts.to(device)
        return ModelInputs(sam, clip, tokens.to(device), pad.to(device), moved)

    # ------------------------------------------------------------------ forward
    def encode_image(
        self, images: torch.Tensor, text_feat: torch.Tensor, text_pad: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Hiera + BHFM adapters + FPN, prepared as ``SAM2ImagePredictor.set_image`` does.

        Args:
            images: ``(B, 3, S, S)`` ImageNet-normalised.
            text_feat: ``(B, L, C)`` initial text state for the adapters.
            text_pad: ``(B, L)`` bool.

        Returns:
            ``image_embed`` ``(B, C, S/16, S/16)`` (with ``no_mem_embed`` added) and the
            high-res features ``[(B, C/8, S/4, S/4), (B, C/4, S/8, S/8)]``.
        """
        self.text_state.set(text_feat, text_pad)
        try:
            return sam_image_features(self, images)
        finally:
            self.text_state.clear()

    def forward(
        self, inputs: ModelInputs, *, output_size: tuple[int, int] | None = None
    ) -> ModelOutput:
        """Segment what each caption refers to (and its clicks, box, previous answer).

        Args:
            inputs: From :meth:`prepare_inputs`; ``inputs.prompts`` adds clicks to the text.
            output_size: ``(H, W)`` of the returned logits; default the model input size.

        Returns:
            :class:`ModelOutput`.
        """
        return self.decode(self.encode(inputs), inputs.prompts, output_size=output_size)

    def encode(self, inputs: ModelInputs) -> Encoding:
        """Everything that depends on the image and the text only (the expensive part).

        Clicks change only :meth:`decode`, so one encoding serves every round of clicks.
        """
        union = self.union(inputs.clip_images, inputs.tokens, inputs.text_pad)
        pad = inputs.text_pad
        sparse = self.sparse_proj(union.cls)  # (B, 1, C)
        text_feat = self.text_proj(union.txt)  # (B, L, C)
        boundary_weight = self.boundary_head(text_feat[:, 0]).squeeze(-1).float()
        if self.mpg is not None:
            pseudo_mask = self.mpg(union.cls, union.vis).float()  # (B, 1, g, g)
        else:  # ablation: no pseudo-mask (reported as zeros)
            b, g1, g2, _ = union.vis.shape
            pseudo_mask = union.vis.new_zeros((b, 1, g1, g2), dtype=torch.float32)

        image_embed, high_res = self.encode_image(inputs.sam_images, text_feat, pad)
        h, w = image_embed.shape[-2:]
        image_pe = self.sam_prompt_encoder.pe_layer((h, w)).unsqueeze(0).to(image_embed.dtype)
        image_embed = self.text_fusion(image_embed, image_pe, text_feat, pad)
        return Encoding(image_embed, image_pe, high_res, sparse, pseudo_mask, boundary_weight,
                        text_feat, tuple(inputs.sam_images.shape[-2:]))

    def decode(
        self,
        enc: Encoding,
        prompts: Prompts | None = None,
        *,
        output_size: tuple[int, int] | None = None,
    ) -> ModelOutput:
        """The mask decoder on an :meth:`encode` result, with the text's and the clicks' prompts.

        The clicks' (and box's) sparse embeddings go in front of the text's; a previous
        answer (``prompts.mask_input``) replaces the MPG's pseudo-mask as the dense prompt.
        """
        low_res = decode_prompts(self, enc, prompts, use_pseudo_mask=self.mpg is not None)
        size = output_size or enc.input_hw
        logits = F.interpolate(low_res.float(), size=size, mode="bilinear", align_corners=False)
        return ModelOutput(logits, enc.pseudo_mask, enc.boundary_weight, enc.text_feat, low_res)

    def loss_inputs(self, output: ModelOutput) -> dict[str, torch.Tensor | None]:
        """Extra inputs of the training loss.

        The boundary term's text weight and, when the MPG exists, its pseudo-mask (None in the
        ``use_mpg_dense=False`` ablation).
        """
        return {
            "text_weight": output.boundary_weight,
            "pseudo_mask": output.pseudo_mask if self.mpg is not None else None,
        }

    def unknown_words(self, text: str) -> list[str]:
        """Words of ``text`` that carry no meaning for these weights.

        A checkpoint exported with a row-pruned token table (``save_checkpoint(...,
        keep_rows=...)``, as the bundled default weights are) keeps only the embedding rows of
        the BPE tokens seen in training; the others load as zeros. A word with such a token is
        reported here, so callers can tell the user instead of silently ignoring the word.
        Weights with a full token table (random init, unpruned checkpoints) report nothing.

        Args:
            text: The referring expression.

        Returns:
            The unknown words in order of first appearance (lower-cased, without duplicates).
        """
        encode = getattr(self.tokenizer, "encode", None)
        if encode is None:
            return []
        table = self.union.text.token_embedding.weight
        zero = (table.detach() == 0).all(dim=1).cpu()  # (V,) bool; a few ms for 49,408 rows
        if not bool(zero.any()):
            return []
        words = dict.fromkeys(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower()))
        return [w for w in words if any(bool(zero[i]) for i in encode(w))]

    def adapted_blocks(self) -> list[AdaptedBlock]:
        """The Hiera blocks, each wrapped with its adapters (empty when ``use_bhfm`` is False)."""
        return [b for b in self.image_encoder.trunk.blocks if isinstance(b, AdaptedBlock)]


def build_model(
    config: str | ModelConfig,
    *,
    device: str | torch.device = "cpu",
    seed: int | None = 0,
) -> RS2SAM2:
    """Build a random-init RS2-SAM 2 in eval mode with the config's freezing policy.

    Args:
        config: Registry name (see ``list_models()``) or a :class:`ModelConfig`.
        device: Where to put the model. ``"meta"`` builds parameters without memory (for
            counting parameters of big configs; the model cannot run).
        seed: Seed for the random init (the global RNG is restored afterwards), so the same
            config always gives the same weights; None uses the global RNG.

    Raises:
        ConfigError: If ``config`` is not a registered name or is inconsistent.
    """
    cfg = get_model_config(config) if isinstance(config, str) else config
    if not isinstance(cfg, ModelConfig):
        raise ConfigError(f"config must be a name or a ModelConfig, got {type(config).__name__}")
    dev = torch.device(device)
    on_meta = dev.type == "meta"
    with contextlib.ExitStack() as stack:
        if seed is not None:
            stack.enter_context(torch.random.fork_rng(devices=[]))
            torch.manual_seed(seed)
        if on_meta:
            stack.enter_context(_params_on_meta())
        sam = _build_sam2(cfg)
        clip = build_clip(cfg, device="meta" if on_meta else "cpu")
        model = RS2SAM2(cfg, sam, clip)
    if not on_meta:
        model.to(dev)
    return model.eval()

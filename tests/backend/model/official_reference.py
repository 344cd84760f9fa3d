"""An independent reference of the published RS2-SAM 2 test-path forward (for parity tests).

Written from the facts of the published code (``lib/evf_sam.py``, ``lib/referformer.py``,
``test.py``, ``models/sam2/modeling/backbones/hieradet.py``, ``.../sam/mask_decoder.py``,
``.../sam/prompt_encoder.py``), not from our model classes: it reads a release-layout state dict
(published key names) directly, runs torchscale's BEiT-3 and the sam2 package's sub-modules,
and does the published steps in the published order with sequence-first attention calls.
Preprocessing is torchvision's ``resize`` on a PIL image + ``to_tensor`` + ``normalize`` (the
published ``transforms.Resize``/``ToTensor``/``Normalize``).

Returns ``z``, the published mask logit at ``S×S``; the published decision is ``z > 0.5``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _sub(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _mha(q, k, v, w: dict[str, torch.Tensor], heads: int) -> torch.Tensor:
    """``nn.MultiheadAttention`` (sequence-first, no masks) from its state-dict entries."""
    return F.multi_head_attention_forward(
        q,
        k,
        v,
        q.shape[-1],
        heads,
        w["in_proj_weight"],
        w["in_proj_bias"],
        None,
        None,
        False,
        0.0,
        w["out_proj.weight"],
        w["out_proj.bias"],
        training=False,
        need_weights=False,
    )[0]


def _lin(x: torch.Tensor, w: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.linear(x, w[f"{name}.weight"], w[f"{name}.bias"])


def tokens(spm_bytes: bytes, text: str) -> torch.Tensor:
    """``XLMRobertaTokenizer(text).input_ids`` for a model of ``spm_bytes``: (1, L)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    ids = [0]
    for piece in sp.encode(text, out_type=str):
        k = sp.piece_to_id(piece)
        ids.append(k + 1 if k else 3)
    ids.append(2)
    return torch.tensor([ids])


def preprocess(image: np.ndarray, size: int) -> torch.Tensor:
    pil = Image.fromarray(image, mode="RGB")
    return TF.normalize(TF.to_tensor(TF.resize(pil, [size, size])), MEAN, STD)[None]


def _block(blk, w: dict[str, torch.Tensor], x: torch.Tensor, text: torch.Tensor):
    """Published ``MultiScaleBlock.forward(x, text)`` with ``Adapter_cross`` and ``Adapter``."""
    from sam2.modeling.backbones.hieradet import do_pool
    from sam2.modeling.backbones.utils import window_partition, window_unpartition

    shortcut = x
    x = blk.norm1(x)
    if blk.dim != blk.dim_out:
        shortcut = do_pool(blk.proj(x), blk.pool)
    window = blk.window_size
    if window > 0:
        H, W = x.shape[1], x.shape[2]
        x, pad_hw = window_partition(x, window)
    x = blk.attn(x)
    if blk.q_stride:
        window = blk.window_size // blk.q_stride[0]
        H, W = shortcut.shape[1:3]
        pad_hw = (H + (window - H % window) % window, W + (window - W % window) % window)
    if blk.window_size > 0:
        x = window_unpartition(x, window, pad_hw, (H, W))
    # Space_Adapter (Adapter_cross, skip_connect=True)
    sa = _sub(w, "Space_Adapter.")
    xs = F.gelu(_lin(x, sa, "D_fc1"))
    b, h, ww, c = xs.shape
    xs = xs.reshape(b, h * ww, c).permute(1, 0, 2)  # '(h w) b c'
    text_init = text
    t = _lin(text, sa, "text_in_linear")
    xs = xs + _mha(xs, t, t, _sub(sa, "vlfusion_module.multihead_attn."), 4)
    t = t + _mha(t, xs, xs, _sub(sa, "lvfusion_module.multihead_attn."), 4)
    t = _lin(t, sa, "text_out_linear")
    text = 0.8 * text_init + 0.2 * t
    xs = xs.permute(1, 0, 2).reshape(b, h, ww, c)
    x = x + _lin(xs, sa, "D_fc2")
    x = shortcut + x
    # MLP + 0.5 * MLP_Adapter (skip_connect=False)
    ma = _sub(w, "MLP_Adapter.")
    y = blk.norm2(x)
    return x + blk.mlp(y) + 0.5 * _lin(F.gelu(_lin(y, ma, "D_fc1")), ma, "D_fc2"), text


@torch.no_grad()
def reference_z(
    state: dict[str, torch.Tensor],
    spm_bytes: bytes,
    *,
    sam2_yaml: str,
    image_size: int,
    beit3: dict[str, int],
    image: np.ndarray,
    text: str,
) -> torch.Tensor:
    """The published test-path mask logit ``z`` (1, 1, S, S) for one image and caption.

    Args:
        state: Release-layout state dict (published key names).
        spm_bytes: ``sentencepiece.bpe.model``.
        sam2_yaml: Registered SAM 2 description of the release.
        image_size: SAM input size ``S``.
        beit3: ``img_size, patch_size, vocab_size, width, heads, ffn, layers, positions``.
        image: ``(H, W, 3)`` uint8.
        text: The caption.
    """
    from torchscale.architecture.config import EncoderConfig
    from torchscale.model.BEiT3 import BEiT3

    from backend.model.sam2_build import build_from_node, sam2_description

    # ---- BEiT-3 (EvfSamModel.mm_extractor.beit3), _get_large_config settings
    cfg = EncoderConfig(
        img_size=beit3["img_size"],
        patch_size=beit3["patch_size"],
        vocab_size=beit3["vocab_size"],
        multiway=True,
        layernorm_embedding=False,
        normalize_output=True,
        no_output_layer=True,
        drop_path_rate=0,
        encoder_embed_dim=beit3["width"],
        encoder_attention_heads=beit3["heads"],
        encoder_ffn_embed_dim=beit3["ffn"],
        encoder_layers=beit3["layers"],
        max_source_positions=beit3["positions"],
    )
    encoder = BEiT3(cfg).eval()
    encoder.load_state_dict(_sub(state, "mm_extractor.beit3."), strict=True)

    # ---- SAM 2 (visual_model), image path and heads from the sam2 package
    node = sam2_description(sam2_yaml)
    node["image_size"] = image_size
    sam = build_from_node(node).eval()
    vm = _sub(state, "visual_model.")
    image_path = ("image_encoder.", "sam_prompt_encoder.", "sam_mask_decoder.", "no_mem_embed")
    plain = {
        k: v
        for k, v in vm.items()
        if k.startswith(image_path) and "_Adapter." not in k and "vlfusion_module" not in k
    }
    missing, unexpected = sam.load_state_dict(plain, strict=False)
    assert not [k for k in missing if k.startswith(image_path)], missing
    assert not unexpected, unexpected

    # ---- test.py / ReferFormer.forward: transforms, tokeniser, pad = unk
    imgs = preprocess(image, image_size)
    img_evfs = preprocess(image, beit3["img_size"])
    input_ids = tokens(spm_bytes, text)
    attention_masks = input_ids.ne(3)

    # ---- EvfSamModel.forward
    out = encoder(
        visual_tokens=img_evfs, textual_tokens=input_ids, text_padding_position=~attention_masks
    )["encoder_out"]
    len_all, text_len = out.shape[1], input_ids.shape[1]
    visual_len = len_all - text_len - 1
    visual_feat = out[:, 1 : visual_len + 1]
    feat = out[:, :1]
    text_feat = out[:, len_all - text_len :]
    mask_token = out[:, :1].permute(1, 0, 2)  # 'b m c -> m b c'
    memory = visual_feat.permute(1, 0, 2)  # 'b hw c -> hw b c'
    mask_token = mask_token * _mha(
        mask_token, memory, memory, _sub(state, "vmtoken.multihead_attn."), 8
    )
    mask_token = _lin(mask_token.permute(1, 0, 2), state, "mask_linear").unsqueeze(1)
    g = int(round(visual_len**0.5))
    visual_feat = visual_feat.reshape(visual_feat.shape[0], g, g, -1)
    mask_prompt = torch.sigmoid(_lin(visual_feat * mask_token, state, "mask_product"))
    mask_prompt = mask_prompt.permute(0, 3, 1, 2)
    feat = _lin(F.relu(_lin(feat, state, "text_hidden_fcs.0.0")), state, "text_hidden_fcs.0.2")
    text_feat = _lin(text_feat, state, "text_feat_linear")

    # forward_image(images, text_feat): Hiera with the adapters, text as (L, B, C) float32
    trunk = sam.image_encoder.trunk
    x = trunk.patch_embed(imgs)
    x = x + trunk._get_pos_embed(x.shape[1:3])
    text = text_feat.float().permute(1, 0, 2)
    feats = []
    for i, blk in enumerate(trunk.blocks):
        x, text = _block(blk, _sub(vm, f"image_encoder.trunk.blocks.{i}."), x, text)
        if i == trunk.stage_ends[-1] or (i in trunk.stage_ends and trunk.return_interm_layers):
            feats.append(x.permute(0, 3, 1, 2))
    fpn, _pos = sam.image_encoder.neck(feats)
    scalp = sam.image_encoder.scalp
    fpn = fpn[:-scalp] if scalp > 0 else fpn
    fpn[0] = sam.sam_mask_decoder.conv_s0(fpn[0])
    fpn[1] = sam.sam_mask_decoder.conv_s1(fpn[1])
    levels = fpn[-sam.num_feature_levels :]
    flat = [f.flatten(2).permute(2, 0, 1) for f in levels]
    flat[-1] = flat[-1] + sam.no_mem_embed
    sizes = [(image_size // 4,) * 2, (image_size // 8,) * 2, (image_size // 16,) * 2]
    maps = [f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(flat, sizes, strict=True)]
    image_embed, high_res = maps[-1], maps[:-1]

    pe = sam.sam_prompt_encoder
    if mask_prompt.shape[-2:] != pe.mask_input_size:
        mask_prompt = F.interpolate(
            mask_prompt.float(),
            size=pe.mask_input_size,
            align_corners=False,
            mode="bilinear",
            antialias=True,
        )
    sparse, dense = pe(points=None, boxes=None, masks=mask_prompt)
    sparse = torch.cat([sparse, feat], dim=1)  # text_embeds appended

    # modified MaskDecoder.forward: multiplicative vlfusion before predict_masks
    image_pe = pe.get_dense_pe()
    _, c, h, w = image_embed.shape
    emb = image_embed.flatten(2).permute(2, 0, 1)  # '(h w) b c'
    pos = image_pe.flatten(2).permute(2, 0, 1)
    tf = text_feat.permute(1, 0, 2)
    fused = emb * _mha(
        emb + pos, tf, tf, _sub(vm, "sam_mask_decoder.vlfusion_module.multihead_attn."), 8
    )
    image_embed = fused.permute(1, 2, 0).reshape(1, c, h, w)
    low_res, _, _, _ = sam.sam_mask_decoder(
        image_embeddings=image_embed,
        image_pe=image_pe,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=False,
        repeat_image=False,
        high_res_features=high_res,
    )
    return F.interpolate(
        low_res.float(), (image_size, image_size), mode="bilinear", align_corners=False
    )

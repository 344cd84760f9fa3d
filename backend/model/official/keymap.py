"""Key map: the released ``EvfSamModel`` state dict → :class:`~.model.OfficialRS2SAM2`.

Every key of a release is either mapped by the first matching prefix of :data:`KEY_MAP`
(longest first; the rest of the key is kept) or ignored by :data:`IGNORED` with the reason. A key
that is neither is "unexpected" and the import refuses the file. Inside the mapped prefixes the
names are the release's own (BEiT-3 is torchscale's module tree; the Hiera blocks keep
``Space_Adapter`` / ``MLP_Adapter`` with ``D_fc1``, ``vlfusion_module.multihead_attn`` ...).

==========================================================  ==============================
official prefix                                             ours
==========================================================  ==============================
``mm_extractor.beit3.``                                     ``union.beit3.``
``visual_model.image_encoder.``                             ``image_encoder.``
``visual_model.sam_prompt_encoder.``                        ``sam_prompt_encoder.``
``visual_model.sam_mask_decoder.vlfusion_module.multihead_attn.``  ``text_fusion.attn.``
``visual_model.sam_mask_decoder.``                          ``sam_mask_decoder.``
``visual_model.no_mem_embed``                               ``no_mem_embed``
``text_hidden_fcs.0.``                                      ``sparse_proj.``
``text_feat_linear.``                                       ``text_proj.``
``vmtoken.multihead_attn.``                                 ``mpg.vmtoken.``
``mask_linear.``                                            ``mpg.mask_linear.``
``mask_product.``                                           ``mpg.mask_product.``
``text2one_linear.``                                        ``boundary_head.``
==========================================================  ==============================

Ours only: ``tokenizer_model`` (from the release's ``sentencepiece.bpe.model``, not its weights).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["IGNORED", "KEY_MAP", "MappedKeys", "map_keys", "to_release_key"]

KEY_MAP: tuple[tuple[str, str], ...] = (
    ("mm_extractor.beit3.", "union.beit3."),
    ("visual_model.image_encoder.", "image_encoder."),
    ("visual_model.sam_prompt_encoder.", "sam_prompt_encoder."),
    ("visual_model.sam_mask_decoder.vlfusion_module.multihead_attn.", "text_fusion.attn."),
    ("visual_model.sam_mask_decoder.", "sam_mask_decoder."),
    ("visual_model.no_mem_embed", "no_mem_embed"),
    ("text_hidden_fcs.0.", "sparse_proj."),
    ("text_feat_linear.", "text_proj."),
    ("vmtoken.multihead_attn.", "mpg.vmtoken."),
    ("mask_linear.", "mpg.mask_linear."),
    ("mask_product.", "mpg.mask_product."),
    ("text2one_linear.", "boundary_head."),
)
"""``(official prefix, our prefix)``; a key matches the longest official prefix it starts with."""

_VIDEO = "SAM 2 video memory (unused for single images)"
IGNORED: tuple[tuple[str, str], ...] = (
    ("visual_model.memory_attention.", _VIDEO),
    ("visual_model.memory_encoder.", _VIDEO),
    ("visual_model.maskmem_tpos_enc", _VIDEO),
    ("visual_model.no_mem_pos_enc", _VIDEO),
    ("visual_model.no_obj_ptr", _VIDEO),
    ("visual_model.obj_ptr_proj.", _VIDEO),
    ("visual_model.obj_ptr_tpos_proj.", _VIDEO),
    ("visual_model.mask_downsample.", _VIDEO),
    ("visual_model.no_obj_embed_spatial", _VIDEO),
    ("meo_linear.", "defined in the published model but never called by its forward"),
)
"""``(official prefix, reason)`` of keys that are read past on purpose."""

_BY_LENGTH = sorted(KEY_MAP, key=lambda pair: -len(pair[0]))


class MappedKeys:
    """Result of :func:`map_keys`.

    Attributes:
        mapped: ``{official key: our key}``.
        ignored: ``{reason: [official keys]}``.
        unexpected: Official keys that are neither mapped nor ignored.
        collisions: Our keys that two official keys map to.
    """

    def __init__(self) -> None:
        self.mapped: dict[str, str] = {}
        self.ignored: dict[str, list[str]] = {}
        self.unexpected: list[str] = []
        self.collisions: list[str] = []


def _matches(key: str, prefix: str) -> bool:
    """``key`` is ``prefix`` itself or continues it at a name boundary."""
    if prefix.endswith("."):
        return key.startswith(prefix)
    return key == prefix or key.startswith(prefix + ".")


def map_keys(keys: Iterable[str]) -> MappedKeys:
    """Sort release keys into mapped, ignored (with the reason) and unexpected."""
    result = MappedKeys()
    seen: dict[str, str] = {}
    for key in keys:
        ours = None
        for official, local in _BY_LENGTH:
            if _matches(key, official):
                ours = local + key[len(official) :]
                break
        if ours is not None:
            if ours in seen:
                result.collisions.append(ours)
            seen[ours] = key
            result.mapped[key] = ours
            continue
        reason = next((why for prefix, why in IGNORED if _matches(key, prefix)), None)
        if reason is not None:
            result.ignored.setdefault(reason, []).append(key)
        else:
            result.unexpected.append(key)
    return result


def to_release_key(ours: str) -> str:
    """Inverse of the map for one of our keys (writes release-layout fixtures; tests, docs).

    Raises:
        KeyError: For a key outside the mapped prefixes (``tokenizer_model``).
    """
    for official, local in sorted(KEY_MAP, key=lambda pair: -len(pair[1])):
        if _matches(ours, local):
            return official + ours[len(local) :]
    raise KeyError(ours)

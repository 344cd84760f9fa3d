"""The published RS2-SAM 2 (code ``rongfu-dsb/RS2-SAM2``, weights ``ReeF2025/RS2-SAM2``).

Architecture ``"rs2sam2-official"`` (:mod:`backend.model.architectures`): the union encoder is
BEiT-3 (design C, on ``torchscale``) with an XLM-R-style sentencepiece tokeniser, and SAM 2.0
Hiera-L carries the paper's adapters under the published module names, so the released state
dict maps onto it by the prefix table in :mod:`.keymap`.

Modules (importing this package loads none of them):

* ``config``: :class:`~.config.OfficialConfig` and the ``official-large`` / ``official-tiny``
  registry entries (stdlib only);
* ``tokenizer``: the XLM-R id convention over a sentencepiece model;
* ``beit3``: the BEiT-3 union encoder;
* ``adapters``: the published Hiera adapters (``MLP_Adapter``, ``Space_Adapter``);
* ``model``: :class:`~.model.OfficialRS2SAM2` and its builder;
* ``keymap``: official prefix → ours, and the keys that are ignored with the reason;
* ``release``: reading a release folder (config.json, safetensors / .bin / shards, tokeniser);
* ``derive``: the architecture of a release from its tensor shapes and ``config.json``;
* ``derive``: the architecture of a release from its tensor shapes and ``config.json``;
* ``importer``: ``import_official`` behind ``python -m backend import-official``.
"""

from __future__ import annotations

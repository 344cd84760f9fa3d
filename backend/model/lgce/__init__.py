"""LGCE, the RRSIS / RefSegRS paper's model, as a second architecture (``"lgce"``).

Modules: ``config`` (``LGCEConfig`` and the named configs, stdlib only), ``text`` (tokenisers,
BERT-style encoder), ``fusion`` (PWAM, language gates, the LGCE module), ``decoder`` (LAVT
decoder), ``model`` (``LGCE``, ``build_lgce``) and ``pretrained`` (Swin-B / BERT-base init from
local files). Importing this package loads none of them.
"""

from __future__ import annotations

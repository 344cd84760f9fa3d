"""RS2-SAM 2 on unforked ``sam2`` and ``open_clip_torch`` (QGIS-free, no rasterio).

Modules: ``configs`` (registry, stdlib only), ``clip_towers`` (CLIP towers and BPE in open_clip's
layout, without importing open_clip), ``union`` (union encoder, designs A/B),
``bhfm`` (Hiera adapters + decoder text fusion), ``mpg`` (mask prompt generator), ``rs2sam``
(``RS2SAM2``, ``build_model``), ``checkpoint`` (safetensors I/O, official-weight init) and
``segmenter`` (``load_segmenter``, ``Segmenter``). Importing this package loads none of them.
"""

from __future__ import annotations

"""The inference path imports none of open_clip, torchvision, torch._dynamo (issue 27).

open_clip's import pulls in torchvision.ops and with it ``torch._dynamo`` and timm: about 2.4 s
of a cold start. Our CLIP towers and BPE (``backend.model.clip_towers``) need none of them.
A ``key_padding_mask`` in torch's MHA imports ``torch.fx.experimental.symbolic_shapes`` and sympy
(about 0.5 s): the BHFM attentions pass the padding as an additive mask instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = (
    "open_clip",
    "torchvision",
    "torch._dynamo",
    "timm",
    "torch.fx.experimental.symbolic_shapes",
    "sympy",
)

_CHILD = """
import json, sys
import numpy as np
import backend
seg = backend.load_segmenter(device="cpu", threads=1)
prob = seg.predict(np.full((96, 80, 3), 120, np.uint8), "the red roofs")
caf = seg.predict(np.zeros((64, 64, 3), np.uint8), "les toits rouges du café & co")
res = backend.segment_raster("demo_data/test_tiled.tif", "the buildings", seg)
print(json.dumps({"shape": list(prob.shape) + list(caf.shape), "tiles": res.n_tiles,
                  "heavy": [m for m in %r if m in sys.modules]}))
"""


def test_load_predict_and_segment_raster_in_a_fresh_process_import_no_heavy_modules() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD % (HEAVY,)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shape"] == [96, 80, 64, 64] and result["tiles"] >= 1
    assert result["heavy"] == [], out.stderr[-2000:]

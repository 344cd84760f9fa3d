"""The shipped default weights (backend/weights/default.safetensors, issue 7).

* ``load_segmenter()`` with no arguments loads them; their SHA-256 (file and weights) match the
  model card; fp16 on disk, float32 in memory; size within the 25 MB budget.
* Predictions are deterministic and batch-consistent.
* Regression: on 5 fixed val crops (tests/data/regression) the IoU stays within a tolerance of
  the value recorded when the weights were shipped (tools/make_regression_set.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from backend.model.segmenter import DEFAULT_WEIGHTS, load_segmenter

REPO = Path(__file__).resolve().parents[3]
CARD = REPO / "docs" / "model_card.md"
REGRESSION = REPO / "tests" / "data" / "regression"
IOU_TOLERANCE = 0.02  # CPU float32 is deterministic; this covers other BLAS / CPUs


@pytest.fixture(scope="module")
def seg():
    return load_segmenter(device="cpu")


def _card_value(label: str) -> str:
    match = re.search(rf"{label}[^`\n]*`([0-9a-f]{{64}})`", CARD.read_text())
    assert match, f"model card has no {label} line"
    return match.group(1)


def test_default_weights_are_bundled_fp16_and_small():
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size <= 25 * 1024 * 1024
    from safetensors import safe_open

    with safe_open(str(DEFAULT_WEIGHTS), framework="pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert "F16" in dtypes and "F32" not in dtypes


def test_load_segmenter_without_arguments_loads_the_shipped_weights(seg):
    assert seg.name == "nano" and seg.image_size == 256 and seg.device == "cpu"
    assert seg.checkpoint_sha256 == _card_value("weights sha256")
    file_sha = hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()
    assert file_sha == _card_value("file sha256")
    assert all(p.dtype == torch.float32 for p in seg.model.parameters())
    assert seg.gsd_m is not None and 0.5 <= seg.gsd_m <= 3.0  # the training data's scale


def _samples():
    expected = json.loads((REGRESSION / "expected.json").read_text())
    for rec in expected["samples"]:
        image = np.asarray(Image.open(REGRESSION / f"{rec['name']}.jpg").convert("RGB"))
        mask = np.asarray(Image.open(REGRESSION / f"{rec['name']}_mask.png")) > 0
        yield rec, image, mask


def test_regression_samples_keep_their_iou(seg):
    expected = json.loads((REGRESSION / "expected.json").read_text())
    assert expected["weights_sha256"] == seg.checkpoint_sha256, "re-record after retraining"
    got = []
    for rec, image, mask in _samples():
        pred = seg.predict(image, rec["text"]) > expected["threshold"]
        union = np.logical_or(pred, mask).sum()
        iou = float(np.logical_and(pred, mask).sum() / union) if union else 0.0
        got.append(iou)
        assert abs(iou - rec["iou"]) <= IOU_TOLERANCE, (rec["name"], iou, rec["iou"])
    assert len(got) >= 3


def test_predictions_are_deterministic_and_batch_consistent(seg):
    recs = list(_samples())[:2]
    images = np.stack([image for _, image, _ in recs])
    text = recs[0][0]["text"]
    a = seg.predict(images[0], text)
    b = seg.predict(images[0], text)
    assert a.dtype == np.float32 and a.shape == images.shape[1:3]
    np.testing.assert_array_equal(a, b)
    batch = seg.predict_batch(images, text)
    np.testing.assert_allclose(batch[0], a, atol=1e-5)

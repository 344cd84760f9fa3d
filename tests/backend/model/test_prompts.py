"""Clicks next to the text in both SAM 2 layouts: prompts, encode/decode, the segmenter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.errors import InputError
from backend.model.prompts import Prompts, paint_clicks
from backend.model.rs2sam import build_model
from backend.model.segmenter import Segmenter


@pytest.fixture(scope="module")
def tiny():
    return build_model("test-tiny", seed=1)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (1, 96, 80, 3), dtype=np.uint8)


def test_prompts_from_pixels_normalise_and_refuse_bad_clicks():
    p = Prompts.from_pixels([(10.0, 20.0), (40, 0)], [1, 0], image_hw=(100, 80))
    assert torch.allclose(p.points, torch.tensor([[[0.125, 0.2], [0.5, 0.0]]]))
    assert p.point_labels.tolist() == [[1, 0]]
    with pytest.raises(InputError, match="outside the 80x100 px image"):
        Prompts.from_pixels([(81.0, 5.0)], [1], image_hw=(100, 80))
    with pytest.raises(InputError, match="labels must be 1"):
        Prompts.from_pixels([(1.0, 5.0)], [2], image_hw=(100, 80))
    with pytest.raises(InputError, match="together"):
        Prompts(points=torch.zeros(1, 1, 2))


def test_paint_clicks_marks_the_mask_prompt():
    m = torch.full((1, 1, 32, 32), 0.5)
    c1, c2 = 8.5 / 32, 24.5 / 32  # the centres of pixels 8 and 24
    p = Prompts(torch.tensor([[[c1, c1], [c2, c2]]]), torch.tensor([[1, 0]]))
    out = paint_clicks(m, p)
    assert out[0, 0, 8, 8] > 0.95 and out[0, 0, 24, 24] < 0.05
    assert out[0, 0, 8, 24] == pytest.approx(0.5, abs=1e-3)  # far from both: unchanged


def test_forward_with_prompts_is_decode_of_encode_and_clicks_change_it(tiny, image):
    with torch.inference_mode():
        inputs = tiny.prepare_inputs(image, ["the red roofs"])
        enc = tiny.encode(inputs)
        text_only = tiny.decode(enc).logits
        assert torch.equal(tiny(inputs).logits, text_only)  # no prompts: unchanged path
        clicks = Prompts.from_pixels([(40.0, 48.0)], [1], image_hw=(96, 80))
        pos = tiny.decode(enc, clicks)
        with_inputs = tiny(tiny.prepare_inputs(image, ["the red roofs"], clicks))
        assert torch.allclose(pos.logits, with_inputs.logits, atol=1e-6)
        assert not torch.allclose(pos.logits, text_only)
        assert pos.low_res is not None and pos.low_res.shape[-1] == tiny.image_size // 4
        again = tiny.decode(enc, clicks.with_mask_input(pos.low_res))
        assert not torch.allclose(again.logits, pos.logits)
        tiny.paint_clicks = False
        try:  # the sparse tokens alone still reach the decoder
            assert not torch.allclose(tiny.decode(enc, clicks).logits, text_only)
        finally:
            tiny.paint_clicks = True
    with pytest.raises(InputError, match="clicks for 2 images"):
        tiny.decode(enc, Prompts(torch.zeros(2, 1, 2), torch.ones(2, 1, dtype=torch.long)))


def test_segmenter_predict_clicks(tiny, image):
    seg = Segmenter(tiny)
    prob = seg.predict_clicks(image[0], "the red roofs", [(40.0, 48.0, True)])
    assert prob.shape == (96, 80) and prob.dtype == np.float32
    assert not np.allclose(prob, seg.predict(image[0], "the red roofs"))
    with pytest.raises(InputError, match="outside"):
        seg.predict_clicks(image[0], "the red roofs", [(-1.0, 48.0, True)])


def test_the_published_layout_accepts_clicks():
    pytest.importorskip("torchscale")
    from backend.model.official.model import build_official_model

    model = build_official_model("official-tiny", seed=3)
    img = np.random.default_rng(1).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    clicks = Prompts.from_pixels([(20.0, 30.0), (50.0, 10.0)], [1, 0], image_hw=(64, 64))
    with torch.inference_mode():
        plain = model(model.prepare_inputs(img, ["the ship"]))
        out = model(model.prepare_inputs(img, ["the ship"], clicks))
        enc = model.encode(model.prepare_inputs(img, ["the ship"]))
        fed = model.decode(enc, clicks.with_mask_input(out.low_res))
    assert out.logits.shape == plain.logits.shape
    assert not torch.allclose(out.logits, plain.logits)
    assert torch.allclose(model.decode(enc).logits, plain.logits, atol=1e-5)
    assert fed.logits.shape == plain.logits.shape
    model.enable_click_prompts()
    names = [n for n, p in model.named_parameters() if p.requires_grad and "point_emb" in n]
    assert names

from __future__ import annotations

import numpy as np
import pytest

from training.config import AugmentConfig
from training.data.datasets import Source, TrainSet
from training.data.synthetic import SyntheticDataset
from training.data.transforms import augment, flip_text, is_crop_safe, resize_pair


@pytest.mark.parametrize(("text", "axis", "expected"), [
    ("the ship on the left", "h", "the ship on the right"),
    ("the second storage tank from the left", "h", "the second storage tank from the right"),
    ("the vehicles to the left of the bridge", "h", "the vehicles to the right of the bridge"),
    ("the leftmost plane", "h", "the rightmost plane"),
    ("the vehicle in the upper right corner", "h", "the vehicle in the upper left corner"),
    ("the vehicle in the upper right corner", "v", "the vehicle in the lower right corner"),
    ("the tank nearest the top of the image", "v", "the tank nearest the bottom of the image"),
    ("the uppermost ship", "v", "the lowest ship"),
    ("the ships above the bridge", "v", "the ships below the bridge"),
    ("the largest tennis court", "v", "the largest tennis court"),
    ("the car on top of the bridge", "v", None),
])
def test_flip_text(text, axis, expected):
    assert flip_text(text, axis) == expected


def test_crop_only_for_non_spatial_expressions():
    assert is_crop_safe("the airplanes", None) and is_crop_safe("road", None)
    for text in ("the ship on the left", "the largest tank", "the second car from the top",
                 "the car closest to the bridge", "the only bridge"):
        assert not is_crop_safe(text, None), text
    assert is_crop_safe("anything", "class") and is_crop_safe("the bridge", "unique")
    assert not is_crop_safe("the planes", "position")


def _sample():
    img = np.zeros((64, 80, 3), np.uint8)
    img[:, :10] = 255
    mask = np.zeros((64, 80), bool)
    mask[20:30, 5:15] = True
    return img, mask


def test_flips_move_image_mask_and_words_together():
    img, mask = _sample()
    cfg = AugmentConfig(hflip=1.0)
    out = augment(img, mask, "the leftmost car", "position", np.random.default_rng(0), cfg)
    assert out.text == "the rightmost car"
    np.testing.assert_array_equal(out.mask, mask[:, ::-1])
    np.testing.assert_array_equal(out.image, img[:, ::-1])
    out = augment(img, mask, "the car on top of the bridge", None, np.random.default_rng(0),
                  AugmentConfig(vflip=1.0))
    assert out.text == "the car on top of the bridge"  # not flippable: left as it is
    np.testing.assert_array_equal(out.mask, mask)


def test_scale_crop_keeps_the_target_and_skips_spatial_text():
    img, mask = _sample()
    cfg = AugmentConfig(scale_crop=1.0, crop_scale=0.6, crop_keep=0.7)
    for seed in range(20):
        out = augment(img, mask, "the cars", "class", np.random.default_rng(seed), cfg)
        assert out.mask.sum() >= 0.7 * mask.sum()
        assert out.image.shape[:2] == out.mask.shape
    out = augment(img, mask, "the leftmost car", None, np.random.default_rng(0), cfg)
    assert out.mask.shape == mask.shape  # never cropped


def test_photometric_and_cutout_leave_the_mask_alone():
    img, mask = _sample()
    cfg = AugmentConfig(brightness=0.2, contrast=0.2, cutout_boxes=[3, 3], cutout_box_frac=0.1)
    a = augment(img, mask, "x", None, np.random.default_rng(1), cfg, cutout=True)
    b = augment(img, mask, "x", None, np.random.default_rng(1), cfg, cutout=True)
    np.testing.assert_array_equal(a.image, b.image)  # a pure function of the generator
    np.testing.assert_array_equal(a.mask, mask)
    assert (a.image == 0).all(axis=-1).sum() >= 64  # at least one 8x8 black box


def test_train_set_is_deterministic_per_epoch_and_index():
    ds = SyntheticDataset(6, 64, seed=0)
    cfg = AugmentConfig(hflip=0.5, vflip=0.5, cutout_fraction=0.5)
    ts = TrainSet([Source("s", ds)], 32, cfg, seed=3)
    a, b = ts[2], ts[2]
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["image"].shape == (32, 32, 3) and a["mask"].shape == (32, 32)
    k = next(i for i in range(len(ds)) if "most" in ds.records[i].text)
    texts = set()
    for epoch in range(8):  # hflip 0.5: over epochs both wordings appear, each with its mask
        ts.epoch = epoch
        item = ts[k]
        texts.add(item["text"])
        cols = np.nonzero(item["mask"].any(axis=0))[0]
        assert (cols.mean() < 16) == ("leftmost" in item["text"])
    assert len(texts) == 2
    assert 1 <= len(ts.cutout) <= 5


def test_resize_pair_nearest_mask():
    img, mask = _sample()
    im2, m2 = resize_pair(img, mask, 32)
    assert im2.shape == (32, 32, 3) and m2.dtype == bool
    assert m2.sum() == pytest.approx(mask.sum() * (32 * 32) / (64 * 80), rel=0.3)

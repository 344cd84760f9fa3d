from __future__ import annotations

import numpy as np
import pytest

from training.config import AugmentConfig
from training.data.datasets import Source, TrainSet
from training.data.synthetic import SyntheticDataset
from training.data.transforms import (
    augment,
    augment_network_view,
    flip_text,
    is_crop_safe,
    resize_pair,
)


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


def _scene():
    """A textured 96 x 120 image with one bright target square."""
    yy, xx = np.mgrid[0:96, 0:120]
    img = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8)
    mask = np.zeros((96, 120), bool)
    mask[40:56, 50:70] = True
    img[mask] = (250, 30, 30)
    return img, mask


def test_zoom_in_crops_and_zoom_out_shrinks_onto_a_canvas():
    img, mask = _scene()
    zin = AugmentConfig(zoom=1.0, zoom_range=[2.0, 2.0], crop_keep=0.7)
    out = augment(img, mask, "the cars", "class", np.random.default_rng(0), zin)
    assert out.mask.shape == (48, 60) and out.mask.sum() >= 0.7 * mask.sum()
    zout = AugmentConfig(zoom=1.0, zoom_range=[0.5, 0.5])
    out = augment(img, mask, "the cars", "class", np.random.default_rng(0), zout)
    assert out.image.shape == img.shape and out.mask.shape == mask.shape
    assert out.mask.sum() == pytest.approx(mask.sum() / 4, rel=0.15)
    # the shrunken target is still where the image's red square is; outside: the mean colour
    red = out.image[out.mask].astype(float).mean(0)
    assert red[0] > 200 and red[1] < 90, red
    ys, xs = np.nonzero(~np.any(out.image != out.image[0, 0], axis=-1))
    assert len(ys) > 0.5 * img.shape[0] * img.shape[1]  # three quarters of it is canvas
    # position words: no zoom at all
    out = augment(img, mask, "the car on the left", "position", np.random.default_rng(0), zout)
    np.testing.assert_array_equal(out.mask, mask)


def test_low_resolution_blurs_the_image_only():
    img, mask = _scene()
    cfg = AugmentConfig(lowres=1.0, lowres_max=3.0)
    out = augment_network_view(img, "the cars on the left", np.random.default_rng(3), cfg)
    assert out.shape == img.shape
    edge = np.abs(np.diff(out[:, :, 0].astype(int), axis=1)).max()
    assert edge < np.abs(np.diff(img[:, :, 0].astype(int), axis=1)).max()  # sharp edge softened


def test_colour_jitter_skips_hue_for_colour_words():
    img, mask = _scene()
    cfg = AugmentConfig(colour=1.0, hue_deg=60, saturation=0.5, channel_gain=0.2)
    changed = [augment_network_view(img, "the cars", np.random.default_rng(s), cfg)
               for s in range(4)]
    assert all(np.abs(c.astype(int) - img.astype(int)).mean() > 2 for c in changed)
    kept = augment_network_view(img, "the red car", np.random.default_rng(0), cfg)
    np.testing.assert_array_equal(kept, img)  # gamma off, the rest needs a colour-free text
    a = augment_network_view(img, "the cars", np.random.default_rng(5), cfg)
    b = augment_network_view(img, "the cars", np.random.default_rng(5), cfg)
    np.testing.assert_array_equal(a, b)
    # through the training view: the mask is untouched by colour and low resolution
    ds = SyntheticDataset(4, 64, 0, "train")
    view = TrainSet([Source("s", ds)], 64, AugmentConfig(colour=1.0, hue_deg=60, lowres=1.0), 0)
    plain = TrainSet([Source("s", ds)], 64, AugmentConfig(), 0)
    np.testing.assert_array_equal(view[0]["mask"], plain[0]["mask"])
    assert not np.array_equal(view[0]["image"], plain[0]["image"])


def test_new_augmentations_off_leave_the_random_stream_alone():
    """Configs without the new fields augment exactly as before (same draws, same output)."""
    img, mask = _scene()
    old = AugmentConfig(hflip=0.5, vflip=0.5, scale_crop=0.5, brightness=0.1, contrast=0.1)
    rng = np.random.default_rng(11)
    augment(img, mask, "the cars", "class", rng, old)
    assert rng.random() == pytest.approx(_replay_old(img, mask, 11))


def _replay_old(img, mask, seed):
    """The draws of the pre-zoom augment for `old` above, done by hand."""
    rng = np.random.default_rng(seed)
    if rng.random() < 0.5:  # scale_crop
        h, w = mask.shape
        total = int(mask.sum())
        for _ in range(10):
            s = rng.uniform(0.6, 1.0)
            ch, cw = max(32, round(h * s)), max(32, round(w * s))
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            kept = int(mask[y : y + ch, x : x + cw].sum())
            if kept > 0 and kept >= 0.7 * total:
                break
    rng.random()  # hflip
    rng.random()  # vflip
    rng.uniform(0.9, 1.1)  # contrast
    rng.uniform(0.9, 1.1)  # brightness
    return rng.random()

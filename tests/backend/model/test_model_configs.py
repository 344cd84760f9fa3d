"""backend.model.configs: the registry and config validation (stdlib only, no torch)."""

from __future__ import annotations

import json

import pytest

from backend.errors import ConfigError
from backend.model.configs import ModelConfig, get_model_config, list_models


def test_registry_names():
    assert list_models() == [
        "base",
        "large",
        "lgce-nano",
        "lgce-paper",
        "lgce-tiny",
        "nano",
        "official-large",
        "official-tiny",
        "test-tiny",
    ]


def test_unknown_name_lists_valid_names():
    names = r"'huge'.*base, large, lgce-nano, lgce-paper, lgce-tiny, nano, official-large"
    with pytest.raises(ConfigError, match=names):
        get_model_config("huge")


def test_configs_are_frozen_and_overridable():
    nano = get_model_config("nano")
    with pytest.raises(AttributeError):
        nano.image_size = 512  # type: ignore[misc]
    bigger = get_model_config("nano", image_size=320)
    assert (bigger.image_size, nano.image_size) == (320, 256)
    with pytest.raises(ConfigError, match="bad override"):
        get_model_config("nano", no_such_field=1)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("image_size", 100, "multiple of 32"),
        ("union_encoder", "beit3", "union_encoder must be one of"),
        ("context_length", 2, "context_length"),
        ("gsd_m", -1.0, "gsd_m"),
        ("text_update_alpha", 1.5, "text_update_alpha"),
    ],
)
def test_invalid_values_name_the_value(field, value, match):
    with pytest.raises(ConfigError, match=match):
        get_model_config("test-tiny", **{field: value})


def test_policy_fields():
    tiny, nano, base, large = (get_model_config(n) for n in ("test-tiny", "nano", "base", "large"))
    assert tiny.gsd_m is None and nano.gsd_m and base.gsd_m and large.gsd_m
    assert nano.freeze_trunk is False  # trained from scratch: no pretrained Hiera this small
    assert base.freeze_trunk and large.freeze_trunk  # the paper's policy
    assert (base.clip_model, large.clip_model) == ("ViT-B-16", "ViT-L-14")
    assert "hiera_l" in large.sam2_yaml and large.image_size == 1024
    assert nano.clip_image_size // 16 == 16  # 16x16 pseudo-mask grid


def test_dict_roundtrip_through_json():
    for name in list_models():
        config = get_model_config(name)
        again = type(config).from_dict(json.loads(json.dumps(config.to_dict())))
        assert again == config
        assert isinstance(config, ModelConfig) == (config.architecture == "rs2sam2")


def test_from_dict_rejects_unknown_and_missing_fields():
    data = get_model_config("nano").to_dict()
    with pytest.raises(ConfigError, match="unknown fields"):
        ModelConfig.from_dict({**data, "flux_capacitor": 1})
    del data["image_size"]
    with pytest.raises(ConfigError, match="incomplete"):
        ModelConfig.from_dict(data)

"""Tests for tfsynth.config: strict --hparams parsing into config dataclasses (CRNConfig)."""

import dataclasses

import pytest

from tfsynth.config import HParamsError, build_config, parse_hparams, to_dict
from tfsynth.models.crn import CRNConfig

pytestmark = pytest.mark.unit


def test_parse_hparams_pairs():
    assert parse_hparams("") == {}
    assert parse_hparams("a=1, b = x ,") == {"a": "1", "b": "x"}
    assert parse_hparams("a=1,a=2") == {"a": "2"}  # later keys win, like later flags
    assert parse_hparams("vgg_weights=/tmp/v.mat") == {"vgg_weights": "/tmp/v.mat"}


@pytest.mark.parametrize("text", ["foo", "max_channels=8,foo", "=5"])
def test_parse_hparams_malformed(text):
    with pytest.raises(HParamsError, match="key=value"):
        parse_hparams(text)


def test_build_config_parses_types():
    config = build_config(CRNConfig, parse_hparams(
        "image_size=64x128,learning_rate=2e-4,layer_weights=1:2:3:4:5:6,max_channels=32,"
        "loss=simple,vgg_weights=random,num_outputs=1"))
    assert isinstance(config, CRNConfig)
    assert config.image_size == (64, 128)
    assert all(isinstance(v, int) for v in config.image_size)
    assert config.learning_rate == pytest.approx(2e-4)
    assert config.layer_weights == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    assert all(isinstance(v, float) for v in config.layer_weights)
    assert config.max_channels == 32 and isinstance(config.max_channels, int)
    assert config.loss == "simple" and config.vgg_weights == "random" and config.num_outputs == 1
    # Everything not overridden keeps its default.
    assert config.beta_1 == CRNConfig().beta_1
    assert config.coarsest_height == CRNConfig().coarsest_height


def test_build_config_colon_tuple_and_base():
    config = build_config(CRNConfig, {"image_size": "32:64"}, base={"max_channels": 8})
    assert config.image_size == (32, 64) and config.max_channels == 8
    # Overrides win over base; lists in base become tuples.
    config = build_config(CRNConfig, {"max_channels": "4"},
                          base={"max_channels": 8, "image_size": [32, 64]})
    assert config.max_channels == 4 and config.image_size == (32, 64)
    assert build_config(CRNConfig) == CRNConfig()
    assert to_dict(config) == dataclasses.asdict(config)


def test_unknown_key_lists_valid_keys():
    with pytest.raises(HParamsError) as info:
        build_config(CRNConfig, {"num_filters": "3"})
    message = str(info.value)
    assert "num_filters" in message
    for field in dataclasses.fields(CRNConfig):
        assert field.name in message, field.name


@pytest.mark.parametrize("key, value", [
    ("max_channels", "abc"),
    ("learning_rate", "fast"),
    ("image_size", "64xabc"),
    ("layer_weights", "1:2:x3"),
])
def test_wrong_type_names_the_key(key, value):
    with pytest.raises(HParamsError, match=key):
        build_config(CRNConfig, {key: value})


@pytest.mark.parametrize("overrides", [
    {"image_size": "100x200"},
    {"loss": "l2"},
    {"layer_weights": "1:2:3"},
    {"num_outputs": "0"},
])
def test_values_rejected_by_the_config(overrides):
    with pytest.raises(HParamsError):
        build_config(CRNConfig, overrides)


def test_hparams_error_is_a_value_error():
    assert issubclass(HParamsError, ValueError)

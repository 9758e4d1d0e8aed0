"""Config keys of the model options (ECGAN recipe, style mechanisms, colour losses): defaults and
the range checks of pipeline/core/config_checks.py."""

from __future__ import annotations

import pytest

from pipeline.core.config import default_config, load_config
from pipeline.core.errors import ConfigError

# base.toml and the dataclasses: the ECGAN recipe on, the style mechanisms and colour losses off
ECGAN_DEFAULTS = {"loss.edge_gan": 1.0, "loss.contrastive": 1.0, "model.spectral_norm_g": True,
                  "model.init": "xavier", "model.init_gain": 0.02, "loss.refined": 2.0,
                  "model.upsample": "nearest", "loss.contrastive_temperature": 0.1,
                  "loss.contrastive_pixels": 64, "loss.contrastive_scales": 3}
STYLE_OFF = {"model.style_shuffle": 0, "model.style_modulation": False, "model.style_stats": False,
             "model.style_palette": 0.0, "model.noise": False, "loss.colour_stats": 0.0,
             "loss.colour_class": 0.0, "loss.colour_lowpass": 0.0, "loss.colour_hist": 0.0}


def _get(cfg, dotted: str):
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


@pytest.mark.parametrize("cfg", [default_config(), load_config(None)], ids=["dataclass", "base.toml"])
def test_ecgan_items_on_and_style_items_off_by_default(cfg):
    for key, value in {**ECGAN_DEFAULTS, **STYLE_OFF}.items():
        assert _get(cfg, key) == value, key


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.style_shuffle=-1", "'model.style_shuffle' must be 0 \\(off\\) or divide"),
        ("model.style_shuffle=3", "'model.style_shuffle' must be 0 \\(off\\) or divide model.encoder_size \\(256\\)"),
        ("model.style_hist_bins=17", "'model.style_hist_bins' must be in 0..16"),
        ("model.style_palette=-1", "'model.style_palette' must be >= 0"),
        ("model.init_gain=0", "'model.init_gain' must be > 0"),
        ('model.init="kaiming"', "model.init"),
        ('model.upsample="bicubic"', "model.upsample"),
        ("loss.edge_gan=-1", "'loss.edge_gan' a loss weight must be >= 0"),
        ("loss.contrastive=-0.5", "'loss.contrastive' a loss weight must be >= 0"),
        ("loss.refined=-2", "'loss.refined' a loss weight must be >= 0"),
        ("loss.colour_stats=-1", "'loss.colour_stats' a loss weight"),
        ("loss.colour_class=-1", "'loss.colour_class' a loss weight"),
        ("loss.colour_lowpass=-1", "'loss.colour_lowpass' a loss weight"),
        ("loss.colour_hist=-1", "'loss.colour_hist' a loss weight"),
        ("loss.contrastive_temperature=0", "'loss.contrastive_temperature' must be > 0"),
        ("loss.contrastive_pixels=1", "'loss.contrastive_pixels' must be >= 2"),
        ("loss.contrastive_scales=0", "'loss.contrastive_scales' must be in 1..6"),
        ("loss.contrastive_scales=7", "'loss.contrastive_scales' must be in 1..6 \\(the generator's stages"),
        ("loss.colour_hist_bins=1", "'loss.colour_hist_bins' must be in 2..32"),
        ("loss.colour_lowpass_factor=0", "'loss.colour_lowpass_factor' must be >= 1"),
        ("loss.colour_lowpass_factor=385", "'loss.colour_lowpass_factor' must be >= 1 and fit"),
    ],
)
def test_option_ranges(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize("key", ["model.style_shuffle=4", "model.style_modulation=true",
                                 "model.style_stats=true", "model.style_palette=10"])
def test_style_mechanisms_need_the_style_code(key):
    with pytest.raises(ConfigError, match="needs the style code: set model.use_vae = true"):
        load_config(None, ["model.use_vae=false", key])
    load_config(None, [key])  # with the VAE it is fine


def test_in_range_values_load():
    cfg = load_config(None, ["model.style_shuffle=4", "model.style_hist_bins=0",
                             'model.init="default"', 'model.upsample="bilinear"',
                             "loss.contrastive_scales=6", "loss.colour_lowpass_factor=384",
                             "loss.edge_gan=0", "loss.contrastive=0"])
    assert cfg.model.style_shuffle == 4 and cfg.loss.contrastive_scales == 6

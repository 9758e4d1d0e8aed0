"""Config files: every key known, typed and checked; extends, --set overrides, TOML round trip."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from pipeline.core.config import (
    CONFIG_DIR,
    Config,
    config_hash,
    config_to_dict,
    config_to_toml,
    default_config,
    load_config,
    parse_override,
)
from pipeline.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- the shipped files
def test_base_toml_lists_every_key_with_its_default():
    table = tomllib.loads((CONFIG_DIR / "base.toml").read_text())
    assert table == config_to_dict(default_config())
    assert load_config() == default_config()


def test_demo_config_extends_base():
    cfg = load_config(CONFIG_DIR / "demo.toml")
    assert (cfg.data.height, cfg.data.width) == (96, 128)
    assert cfg.train.beta2 == default_config().train.beta2  # inherited
    assert cfg.source.endswith("demo.toml")


def test_ci_config_extends_demo():
    cfg = load_config(CONFIG_DIR / "ci.toml")
    demo = load_config(CONFIG_DIR / "demo.toml")
    assert cfg.model == demo.model and cfg.data == demo.data  # inherited through demo.toml
    assert cfg.train.max_steps < demo.train.max_steps


# ---------------------------------------------------------------------------- errors
def test_unknown_key_names_file_key_and_allowed_keys(tmp_path):
    path = write(tmp_path / "exp.toml", "[train]\nbatch_sise = 4\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text and "unknown key 'train.batch_sise'" in text
    assert "batch_size" in text and "lr_g" in text  # the allowed keys of [train]


def test_unknown_section_and_top_level_key(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'trian'. Allowed here: .*train"):
        load_config(write(tmp_path / "a.toml", "[trian]\nx = 1\n"))
    with pytest.raises(ConfigError, match="unknown key 'source'"):  # a field, but not a key
        load_config(write(tmp_path / "b.toml", 'source = "x"\n'))


@pytest.mark.parametrize(
    "text,message",
    [
        ("[train]\nbatch_size = 4.0\n", "'train.batch_size' must be an integer, got 4.0"),
        ("[train]\nbatch_size = true\n", "'train.batch_size' must be an integer, got True"),
        ("[train]\nflip = 1\n", "'train.flip' must be true or false, got 1"),
        ("[loss]\ngan = \"1\"\n", "'loss.gan' must be a number, got '1'"),
        ("[data]\ndrop_list = 3\n", "'data.drop_list' must be a string, got 3"),
        ("[evaluate]\nmetrics = \"fid\"\n", "'evaluate.metrics' must be a list of a string"),
        ("[fit_segformer]\ndepths = [1, 2.5, 1, 1]\n", "'fit_segformer.depths' must be a list of an integer"),
        ("train = 3\n", "'train' must be a table"),
    ],
)
def test_wrong_types(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load_config(write(tmp_path / "c.toml", text))


def test_int_is_accepted_as_float(tmp_path):
    cfg = load_config(write(tmp_path / "c.toml", "[loss]\ngan = 2\n"))
    assert cfg.loss.gan == 2.0 and isinstance(cfg.loss.gan, float)


def test_literal_values(tmp_path):
    with pytest.raises(ConfigError, match="'model.kind' must be one of 'ecgan', 'spade', got 'pix2pix'"):
        load_config(write(tmp_path / "c.toml", '[model]\nkind = "pix2pix"\n'))
    with pytest.raises(ConfigError, match="'device' must be one of 'auto', 'cpu', 'cuda'"):
        load_config(None, ["device=gpu"])
    assert load_config(None, ["model.kind=spade"]).model.kind == "spade"


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.num_classes=30", "'model.num_classes' the competition's label maps have 29 classes"),
        ("data.height=100", "'data.height' 100 must be divisible by 2\\*\\*model.num_up = 32"),
        ("data.canny_low=300", "'data.canny_low' must satisfy"),
        ("train.ema_decay=1.0", "'train.ema_decay' must be in \\[0, 1\\)"),
        ("generate.jpeg_quality=0", "'generate.jpeg_quality' must be in 1..100"),
        ("package.expert_picks=-1", "'package.expert_picks' must be >= 0"),
        ("train.batch_size=0", "'train.batch_size' must be >= 1"),
    ],
)
def test_value_ranges(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_several_range_problems_reported_together():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["generate.jpeg_quality=101", "package.expert_picks=-2"])
    assert "generate.jpeg_quality" in str(info.value) and "package.expert_picks" in str(info.value)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*nope.toml"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(write(tmp_path / "bad.toml", "[train\n"))


# ---------------------------------------------------------------------------- extends
def test_extends_chain_later_files_win(tmp_path):
    write(tmp_path / "a.toml", 'extends = "base_copy.toml"\n[train]\nbatch_size = 2\nepochs = 7\n')
    write(tmp_path / "base_copy.toml", (CONFIG_DIR / "base.toml").read_text())
    (tmp_path / "sub").mkdir()
    path = write(tmp_path / "sub" / "b.toml", 'extends = "../a.toml"\n[train]\nbatch_size = 3\n')
    cfg = load_config(path)
    assert (cfg.train.batch_size, cfg.train.epochs) == (3, 7)
    assert cfg.train.lr_d == default_config().train.lr_d


def test_extends_cycle(tmp_path):
    write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(ConfigError, match="'extends' forms a cycle"):
        load_config(tmp_path / "a.toml")
    with pytest.raises(ConfigError, match="'extends' forms a cycle"):
        load_config(write(tmp_path / "self.toml", 'extends = "self.toml"\n'))


def test_extends_missing_or_not_a_string(tmp_path):
    with pytest.raises(ConfigError, match="config file not found: .*gone.toml"):
        load_config(write(tmp_path / "a.toml", 'extends = "gone.toml"\n'))
    with pytest.raises(ConfigError, match="'extends' must be a file name string"):
        load_config(write(tmp_path / "b.toml", "extends = 3\n"))


def test_unknown_key_in_an_extended_file_is_still_an_error(tmp_path):
    write(tmp_path / "parent.toml", "[train]\nbogus = 1\n")
    with pytest.raises(ConfigError, match="unknown key 'train.bogus'"):
        load_config(write(tmp_path / "child.toml", 'extends = "parent.toml"\n'))


# ---------------------------------------------------------------------------- --set
@pytest.mark.parametrize(
    "text,parts,value",
    [
        ("train.batch_size=4", ["train", "batch_size"], 4),
        ("loss.gan = 0.5", ["loss", "gan"], 0.5),
        ("train.flip=false", ["train", "flip"], False),
        ("evaluate.segformer=weights/my model", ["evaluate", "segformer"], "weights/my model"),
        ('evaluate.segformer="a=b"', ["evaluate", "segformer"], "a=b"),
        ("evaluate.metrics=[\"fid\"]", ["evaluate", "metrics"], ["fid"]),
        ("seed=3", ["seed"], 3),
    ],
)
def test_parse_override(text, parts, value):
    assert parse_override(text) == (parts, value)


@pytest.mark.parametrize("text", ["train.batch_size", "=4", "train..x=1", ".x=1"])
def test_parse_override_bad_shape(text):
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_override(text)


def test_overrides_apply_and_are_checked():
    cfg = load_config(None, ["train.batch_size=8", "seed=5", "evaluate.segformer=some/dir"])
    assert (cfg.train.batch_size, cfg.seed, cfg.evaluate.segformer) == (8, 5, "some/dir")
    with pytest.raises(ConfigError, match=r"\(with --set overrides\): unknown key 'train.nope'"):
        load_config(None, ["train.nope=1"])
    with pytest.raises(ConfigError, match="'seed' is not a section"):
        load_config(None, ["seed.x=1"])
    with pytest.raises(ConfigError, match="'train.batch_size' must be an integer, got 'four'"):
        load_config(None, ["train.batch_size=four"])


# ---------------------------------------------------------------------------- writing, hashing
def test_config_to_toml_round_trip(tmp_path):
    cfg = load_config(
        CONFIG_DIR / "demo.toml",
        [
            "train.lr_g=0.00002",
            "loss.gan=2",
            'evaluate.segformer="数据/模型 \\"q\\" \\\\ back"',
            "evaluate.metrics=[\"fid\", \"aesthetic\"]",
            "data.drop_list=\"tab\\there\"",
        ],
    )
    path = write(tmp_path / "resolved.toml", config_to_toml(cfg))
    again = load_config(path)
    assert again == cfg
    assert config_to_dict(again) == config_to_dict(cfg)
    assert config_hash(again) == config_hash(cfg)


def test_config_to_toml_round_trip_non_bmp_characters(tmp_path):
    # A non-BMP character (an emoji, a rare CJK ideograph) and DEL must survive the round trip.
    cfg = load_config(None, ['evaluate.cache_dir="cache/\\U0001F304/\\u007f/\\U00020000"'])
    assert cfg.evaluate.cache_dir == "cache/\U0001F304/\x7f/\U00020000"
    path = write(tmp_path / "resolved.toml", config_to_toml(cfg))
    assert load_config(path).evaluate.cache_dir == "cache/\U0001F304/\x7f/\U00020000"


def test_config_hash_of_sections():
    base = default_config()
    changed = dataclasses.replace(base, train=dataclasses.replace(base.train, batch_size=9))
    assert config_hash(base) != config_hash(changed)
    assert config_hash(base, "package", "evaluate") == config_hash(changed, "package", "evaluate")
    assert config_hash(base, "train") != config_hash(changed, "train")
    assert len(config_hash(base)) == 64


def test_source_is_not_part_of_equality_or_hash(tmp_path):
    copy = write(tmp_path / "copy.toml", (CONFIG_DIR / "base.toml").read_text())
    a, b = load_config(), load_config(copy)
    assert a.source != b.source and a == b and config_hash(a) == config_hash(b)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_config().seed = 1  # type: ignore[misc]
    assert isinstance(default_config(), Config)


def test_speed_only_keys_do_not_change_the_config_hash():
    from pipeline.core.config import config_hash, default_config
    import dataclasses

    cfg = default_config()
    faster = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, workers=7))
    assert config_hash(cfg, "data") == config_hash(faster, "data")
    other = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, height=192))
    assert config_hash(cfg, "data") != config_hash(other, "data")


def test_unknown_key_in_an_extended_file_names_that_file(tmp_path):
    write(tmp_path / "parent.toml", "[train]\nbatch_sise = 4\n")
    write(tmp_path / "child.toml", 'extends = "parent.toml"\n[train]\nbatch_size = 2\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "child.toml")
    assert "parent.toml" in str(info.value) and "train.batch_sise" in str(info.value)


def test_the_shipped_drop_list_is_read_from_beside_the_config():
    from pipeline.core.config import load_config
    from pipeline.data.layout import read_drop_list

    cfg = load_config(None)
    stems, path = read_drop_list(cfg.data.drop_list, cfg.source)
    assert path is not None and path.name == "coesak_dirty.txt" and len(stems) == 129
    assert "11353622803_0de2b7b088_b" in stems and all("." not in s for s in stems)


def test_a_run_config_without_the_newer_keys_keeps_how_it_was_trained(tmp_path):
    """A config.resolved.toml written before the ECGAN keys existed: generation rebuilds the
    network it was trained with (legacy values), not today's defaults; a newer run keeps its own."""
    from pipeline.core.config import LEGACY_VALUES, config_to_toml, load_run_config
    from pipeline.generate import RUN_CONFIG, run_config

    text = config_to_toml(load_config(CONFIG_DIR / "base.toml"))
    old = "\n".join(line for line in text.splitlines()
                    if line.split("=")[0].strip() not in {k for _, k in LEGACY_VALUES})
    (tmp_path / RUN_CONFIG).write_text(old)
    cfg = run_config(tmp_path)
    assert (cfg.model.spectral_norm_g, cfg.model.init, cfg.loss.refined, cfg.loss.edge_gan,
            cfg.loss.contrastive) == (False, "default", 1.0, 0.0, 0.0)
    assert run_config(tmp_path, overrides=["loss.refined=3"]).loss.refined == 3.0
    new = tmp_path / "new.toml"
    new.write_text(text)
    cfg = load_run_config(new)
    assert (cfg.model.spectral_norm_g, cfg.model.init, cfg.loss.edge_gan) == (True, "xavier", 1.0)

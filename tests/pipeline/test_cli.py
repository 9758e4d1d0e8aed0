"""The `landscape` group: every stage is there, user mistakes are one red line and exit 2."""

import subprocess
import sys

import pytest

from pipeline import cli

STAGES = {"sample-data", "preprocess", "train", "generate", "test", "fit-segformer", "evaluate",
          "weights", "package"}


def test_every_stage_is_a_subcommand():
    assert STAGES <= set(cli.cli.commands)


def run(*args):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_help_does_not_import_jittor_or_torch():
    code = ("import sys; from pipeline import cli; "
            "print('jittor' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["preprocess", "--data", "/no/such/folder", "--out", "OUT"], "/no/such/folder"),
        (["preprocess", "--data", ".", "--out", "OUT", "--set", "data.bogus=1"], "unknown key 'data.bogus'"),
        (["preprocess", "--data", ".", "--out", "OUT", "--set", "data.height=abc"], "'data.height' must be an integer"),
        (["preprocess", "--data", ".", "--out", "OUT", "--config", "/no/such.toml"], "config file not found"),
        (["generate", "--run", "/no/run", "--data", ".", "--split", "val", "--out", "OUT"],
         "/no/run: no config.resolved.toml, so it is not a training run"),
        (["test", "--input_path", ".", "--img_path", ".", "--output_path", "OUT", "--run", "/no/run"],
         "not a training run"),
        (["generate", "--run", "/no/run", "--config", "/no/such.toml", "--data", ".", "--split", "val",
          "--out", "OUT"], "config file not found"),
    ],
)
def test_user_mistake_is_one_line_and_exit_2(args, words, tmp_path):
    args = [a.replace("OUT", str(tmp_path / "out")) for a in args]
    out = run(*args)
    assert out.returncode == 2
    assert words in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_generate_and_its_alias_take_config_like_the_other_stages():
    from click.testing import CliRunner

    for name in ("generate", "test", "preprocess", "train"):
        res = CliRunner().invoke(cli.cli, [name, "--help"])
        assert res.exit_code == 0 and "--config" in res.output and "--set" in res.output, name
    assert "config.resolved.toml" in CliRunner().invoke(cli.cli, ["generate", "--help"]).output

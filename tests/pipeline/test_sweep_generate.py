"""The sweep with real generation (the scorer replaced by a function): its rows are what `generate`
makes with the same weights and settings, and afterwards `generate` (stage and CLI) uses the
chosen weights file and colour transfer by default, says so, and yields to --checkpoint / --set.
The averaged weights of a real run load into the model.

Slow: one tiny 2-step training run (module fixture) on the shared `sample_preprocessed` data."""

from __future__ import annotations

import json
import shutil

import pytest

from pipeline.average import AVERAGE_FILE, run_average
from pipeline.checkpoint import EMA_FILE
from pipeline.core.inputs import resolve_inputs
from pipeline.generate import RUN_CONFIG, GenerateInputs, run_config, run_generate
from pipeline.sweep import CHOICE_FILE, Scorer, run_sweep
from pipeline.train import run_train

from ..conftest import run_cli
from .model_testutil import tiny_config

pytestmark = pytest.mark.slow
# A by (weights label, transfer): the averaged weights with a half-strength transfer win
TABLE = {("ema", "none"): 0.30, ("ema", "reinhard-lab@0.5"): 0.35,
         ("average", "none"): 0.32, ("average", "reinhard-lab@0.5"): 0.40}


def _score(generated, out, config, sets, *, data, split):
    a = TABLE[tuple(generated.parent.name.split("__"))]
    return {"score": a, "terms": {"mask_accuracy": a}, "stand_in": False}


@pytest.fixture(scope="module")
def swept(sample_preprocessed, tmp_path_factory):
    """(data, run, sweep folder): a 2-step run (a checkpoint after each step), the average of
    both, and a sweep over ema/average x none/reinhard-lab@0.5 with real generation."""
    root = tmp_path_factory.mktemp("sweep")
    run = root / "run"
    run_train(tiny_config("train.max_steps=2", "train.checkpoint_every=1"), sample_preprocessed, run,
              progress=False)
    run_average(run, 2)
    run_sweep(run_config(run, use_choice=False), run, sample_preprocessed, root / "sweep",
              Scorer(run / RUN_CONFIG, (), _score), transfers=["none", "reinhard-lab@0.5"],
              weights=["ema", "average"], progress=False, log=lambda line: None)
    return sample_preprocessed, run, root / "sweep"


def _jpgs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jpg"))}


def test_generate_uses_the_choice_and_says_so(swept, tmp_path):
    data, run, sweep = swept
    choice = json.loads((run / CHOICE_FILE).read_text())
    assert choice["weights"] == AVERAGE_FILE and choice["row"] == "average__reinhard-lab@0.5"
    val = resolve_inputs(data, "val")
    result = run_generate(run_config(run), GenerateInputs(run, val), tmp_path / "out", progress=False)
    chosen = _jpgs(sweep / "average__reinhard-lab@0.5" / "generated")
    assert len(chosen) == 4 and _jpgs(tmp_path / "out") == chosen  # exactly the row that scored best
    line = result.summary[0]
    assert line.startswith(f"generate: 4 images in {tmp_path / 'out'} (4 made now; with the sweep's choice")
    assert "average.safetensors" in line and "generate.colour_transfer=reinhard-lab" in line
    assert "generate.colour_strength=0.5" in line and len(result.summary) == 1
    # without the choice: the run's own EMA weights and transfer, other images
    own = run_generate(run_config(run, use_choice=False), GenerateInputs(run, val, use_choice=False),
                       tmp_path / "own", progress=False)
    assert _jpgs(tmp_path / "own") != chosen and "sweep's choice" not in own.summary[0]


def test_cli_generate_uses_the_choice_and_yields_to_checkpoint_and_set(swept, tmp_path, capsys):
    data, run, sweep = swept
    run_cli("generate", "--run", str(run), "--data", str(data), "--split", "val", "--out",
            str(tmp_path / "a"), "--quiet")
    assert "with the sweep's choice" in capsys.readouterr().out
    assert _jpgs(tmp_path / "a") == _jpgs(sweep / "average__reinhard-lab@0.5" / "generated")
    run_cli("generate", "--run", str(run), "--data", str(data), "--split", "val", "--out",
            str(tmp_path / "b"), "--quiet", "--checkpoint", str(run / EMA_FILE),
            "--set", "generate.colour_transfer=none")
    out = capsys.readouterr().out
    assert _jpgs(tmp_path / "b") == _jpgs(sweep / "ema__none" / "generated")
    assert "average.safetensors" not in out and "colour_transfer" not in out  # neither part in effect


def test_a_changed_choice_weights_file_is_flagged(swept, tmp_path):
    data, run, _ = swept
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    run_average(copy, 1)  # the chosen file is now other weights than the sweep scored
    result = run_generate(run_config(copy), GenerateInputs(copy, resolve_inputs(data, "val")),
                          tmp_path / "out", progress=False)
    assert any(line.startswith("warning:") and "re-run the sweep" in line for line in result.summary)

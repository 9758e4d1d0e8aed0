"""`landscape sweep`: transfers and weights parsed, every row generated and scored (both replaced by
functions here), the best A chosen (the first of equals) and written into RUN/choice.json, which
`run_config` / `GenerateInputs` then honour (--set / --checkpoint still override). The colour
transfer's blend strength. Real generation: test_sweep_generate.py (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.average import AVERAGE_FILE
from pipeline.checkpoint import EMA_FILE, save_checkpoint
from pipeline.colour import colour_transfer, parse_transfer, transfer_label
from pipeline.core.config import config_to_toml
from pipeline.core.errors import ArtifactError, ConfigError
from pipeline.core.inputs import resolve_inputs
from pipeline.generate import RUN_CONFIG, GenerateInputs, run_config
from pipeline.sweep import (CHOICE_FILE, Row, Scorer, parse_transfers, read_choice, run_sweep,
                            table_lines)
from pipeline.train.scoring import BEST_FILE

from .model_testutil import tiny_config


# ---------------------------------------------------------------------------- transfers
def test_transfer_specs():
    assert parse_transfer("reinhard-lab@0.5") == ("reinhard-lab", 0.5)
    assert parse_transfer("histogram-match") == ("histogram-match", 1.0)
    assert parse_transfer(" none ") == ("none", 1.0)
    for spec in ("reinhard-lab", "reinhard-lab@0.25", "none", "histogram-match@0"):
        assert transfer_label(*parse_transfer(spec)) == spec
    assert transfer_label("reinhard-lab", 1.0) == "reinhard-lab"
    for bad in ("hsv", "reinhard-lab@1.5", "reinhard-lab@x", "none@0.5", "reinhard-lab@"):
        with pytest.raises(ValueError, match="reinhard-lab@0.5"):
            parse_transfer(bad)
    assert parse_transfers(["none", "reinhard-lab@1", "reinhard-lab", "none"]) == [
        ("none", 1.0), ("reinhard-lab", 1.0)]
    with pytest.raises(ConfigError, match="--transfers: colour transfer 'sepia'"):
        parse_transfers(["sepia"])
    with pytest.raises(ConfigError, match="at least one"):
        parse_transfers([])


def test_blend_strength_mixes_the_transferred_and_the_untransferred_image():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    ref = cv2.resize(rng.integers(100, 200, (10, 10, 3), dtype=np.uint8), (40, 30))
    full = colour_transfer(image, ref, "reinhard-lab")
    assert np.array_equal(colour_transfer(image, ref, "reinhard-lab", 1.0), full)
    assert colour_transfer(image, ref, "reinhard-lab", 0.0) is image
    half = colour_transfer(image, ref, "reinhard-lab", 0.5)
    expected = np.floor((image.astype(np.float64) + full.astype(np.float64)) / 2 + 0.5)
    assert half.dtype == np.uint8 and np.abs(half - expected).max() <= 1  # float32 rounding
    quarter = colour_transfer(image, ref, "histogram-match", 0.25).astype(float)
    hm = colour_transfer(image, ref, "histogram-match").astype(float)
    assert np.abs(quarter - (0.75 * image + 0.25 * hm)).max() <= 1
    with pytest.raises(ValueError, match=r"strength 1.5: must be in \[0, 1\]"):
        colour_transfer(image, ref, "reinhard-lab", 1.5)


# ---------------------------------------------------------------------------- a run, stubbed
def _weights(path, value):
    save_checkpoint(path, {"ema_generator.w": np.full((2, 2), value, np.float32)}, {"step": 1})


@pytest.fixture
def run(tmp_path):
    """A run folder with its config and two weights files (ema, best); no average."""
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_CONFIG).write_text(config_to_toml(tiny_config()))
    _weights(run / EMA_FILE, 1.0)
    _weights(run / BEST_FILE, 2.0)
    return run


class Stubs:
    """generate_fn and score_fn of the sweep replaced: each row's A comes from `table`
    {(weights label, transfer): mask accuracy}; calls are recorded."""

    def __init__(self, table):
        self.table, self.generated, self.scored = table, [], []

    def generate(self, cfg_row, run_dir, maps, weights, out, progress):
        self.generated.append((weights.name, cfg_row.generate.colour_transfer, cfg_row.generate.colour_strength))

    def score(self, generated, out, config, sets, *, data, split):
        label, transfer = generated.parent.name.split("__")
        self.scored.append((label, transfer, config, tuple(sets), split))
        a = self.table[(label, transfer)]
        return {"score": a, "terms": {"mask_accuracy": a, "style": 0.1, "aesthetic": 0.2, "fid": 150.0},
                "stand_in": True}


TABLE = {("ema", "none"): 0.30, ("ema", "reinhard-lab@0.5"): 0.40,
         ("best", "none"): 0.35, ("best", "reinhard-lab@0.5"): 0.45}


def _sweep(run, data, out, stubs, logs, **kw):
    scorer = Scorer(run / RUN_CONFIG, ("evaluate.batch_size=2",), stubs.score)
    return run_sweep(run_config(run, use_choice=False), run, data, out, scorer,
                     transfers=kw.pop("transfers", ["none", "reinhard-lab@0.5"]), progress=False,
                     log=logs.append, generate_fn=stubs.generate, **kw)


def test_sweep_picks_the_best_row_and_writes_the_choice(run, sample_preprocessed, tmp_path):
    stubs, logs = Stubs(TABLE), []
    result = _sweep(run, sample_preprocessed, tmp_path / "sweep", stubs, logs)
    # every weights file x every transfer, in order; `average` is absent: left out with a note
    assert stubs.generated == [("ema_generator.safetensors", "none", 1.0),
                               ("ema_generator.safetensors", "reinhard-lab", 0.5),
                               ("best.safetensors", "none", 1.0), ("best.safetensors", "reinhard-lab", 0.5)]
    assert [s[:2] for s in stubs.scored] == list(TABLE)
    assert {s[2:] for s in stubs.scored} == {(run / RUN_CONFIG, ("evaluate.batch_size=2",), "val")}
    assert any("average.safetensors" in line and "left out" in line for line in logs)
    choice = json.loads((run / CHOICE_FILE).read_text())
    assert choice["weights"] == BEST_FILE and choice["score"] == pytest.approx(0.45)
    assert choice["overrides"] == {"generate.colour_strength": 0.5, "generate.colour_transfer": "reinhard-lab"}
    assert result.manifest == choice
    marked = [line for line in result.summary if line.lstrip().startswith("*")]
    assert len(marked) == 1 and "best" in marked[0] and "reinhard-lab@0.5" in marked[0] and "0.4500" in marked[0]
    assert any(line.startswith("warning:") and "stand-in" in line for line in result.summary)
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert rows["best"] == "best__reinhard-lab@0.5" and len(rows["rows"]) == 4


def test_a_weights_file_equal_to_an_earlier_one_is_left_out(run, sample_preprocessed, tmp_path):
    _weights(run / AVERAGE_FILE, 1.0)  # the same tensors as the EMA file
    stubs, logs = Stubs(TABLE), []
    _sweep(run, sample_preprocessed, tmp_path / "sweep", stubs, logs, transfers=["none"])
    assert [g[0] for g in stubs.generated] == [EMA_FILE, BEST_FILE]
    assert any("average.safetensors holds the same weights as ema" in line for line in logs)


def test_ties_go_to_the_first_row_and_named_weights_must_exist(run, sample_preprocessed, tmp_path):
    stubs = Stubs({k: 0.5 for k in TABLE})
    _sweep(run, sample_preprocessed, tmp_path / "sweep", stubs, [], weights=["best", "ema"],
           transfers=["reinhard-lab@0.5", "none"])
    choice = json.loads((run / CHOICE_FILE).read_text())
    assert choice["weights"] == BEST_FILE and choice["overrides"]["generate.colour_transfer"] == "reinhard-lab"
    with pytest.raises(ArtifactError, match="--weights average: no .*average.safetensors.*landscape average"):
        _sweep(run, sample_preprocessed, tmp_path / "sweep", stubs, [], weights=["average"])
    # a weights file by path, inside the run
    (run / "checkpoints").mkdir()
    _weights(run / "checkpoints" / "step_00000001.safetensors", 3.0)
    stubs = Stubs({("step_00000001", "none"): 0.9})
    _sweep(run, sample_preprocessed, tmp_path / "sweep", stubs, [],
           weights=["checkpoints/step_00000001.safetensors"], transfers=["none"])
    assert json.loads((run / CHOICE_FILE).read_text())["weights"] == "checkpoints/step_00000001.safetensors"


def test_a_damaged_candidate_is_refused_before_anything_runs(run, sample_preprocessed, tmp_path):
    (run / BEST_FILE).write_bytes(b"not a checkpoint")
    stubs = Stubs(TABLE)
    with pytest.raises(ArtifactError, match="best.safetensors: not a readable checkpoint"):
        _sweep(run, sample_preprocessed, tmp_path / "sweep", stubs, [])
    assert stubs.generated == [] and not (run / CHOICE_FILE).exists()


def test_generate_honours_the_choice_and_set_checkpoint_override(run, sample_preprocessed, tmp_path):
    _sweep(run, sample_preprocessed, tmp_path / "sweep", Stubs(TABLE), [])
    val = resolve_inputs(sample_preprocessed, "val")
    cfg = run_config(run)
    assert (cfg.generate.colour_transfer, cfg.generate.colour_strength) == ("reinhard-lab", 0.5)
    assert GenerateInputs(run, val).weights == run / BEST_FILE
    # --set and --checkpoint still win; use_choice=False is the run's own
    cfg = run_config(run, None, ["generate.colour_transfer=none"])
    assert (cfg.generate.colour_transfer, cfg.generate.colour_strength) == ("none", 0.5)
    assert GenerateInputs(run, val, run / EMA_FILE).weights == run / EMA_FILE
    own = run_config(run, use_choice=False)
    assert (own.generate.colour_transfer, own.generate.colour_strength) == (tiny_config().generate.colour_transfer, 1.0)
    assert GenerateInputs(run, val, use_choice=False).weights == run / EMA_FILE
    # a choice whose weights are gone, or a damaged one, says how to fix it
    (run / BEST_FILE).unlink()
    with pytest.raises(ArtifactError, match="which is gone; re-run `landscape sweep"):
        run_config(run)
    (run / CHOICE_FILE).write_text('{"weights": "ema_generator.safetensors", "overrides": {"train.lr_g": 1}}')
    with pytest.raises(ArtifactError, match="not a sweep choice"):
        read_choice(run)


def test_table_marks_one_row():
    rows = [{"weights": w, "transfer": "none", "A": a, "A_ratio": None, "formula": "A-board",
             "terms": {"mask_accuracy": 0.9, "fid": 120.0}} for w, a in (("ema", 0.2), ("best", 0.3))]
    lines = table_lines(rows, 1)
    assert lines[1].startswith("    ema") and lines[2].startswith("  * best")
    assert "n/a" in lines[2] and "120.00" in lines[2]
    assert Row("best", Path("b"), "reinhard-lab", 0.5).name == "best__reinhard-lab@0.5"
    assert Row("my run/x", Path("b"), "none", 1.0).name == "my_run_x__none"

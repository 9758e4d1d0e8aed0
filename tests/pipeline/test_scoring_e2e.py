"""End to end with the real scorer: a tiny 2-step training run scores its EMA generator after each
step through `landscape evaluate` in a child process (a tiny SegFormer fitted here, the converted
FID weights), keeps best.safetensors at the best A, and `landscape sweep` scores the run's
weights files for real and writes the choice that `generate` then uses.

Slow: training, fitting a SegFormer and several scorer processes (about a minute or two)."""

from __future__ import annotations

import csv
import json
import math

import pytest

from evaluation.score import a_board_score
from pipeline.checkpoint import EMA_FILE, read_checkpoint
from pipeline.core.inputs import resolve_inputs
from pipeline.generate import RUN_CONFIG, GenerateInputs, run_config, run_generate
from pipeline.sweep import CHOICE_FILE, Scorer, run_sweep
from pipeline.train import run_train
from pipeline.train.scoring import BEST_FILE, BEST_INFO, SCORE_LOG

from ..conftest import ROOT, run_cli
from .model_testutil import tiny_config

pytestmark = pytest.mark.slow
TINY_SEGFORMER = ["fit_segformer.hidden_sizes=[8, 16, 32, 32]", "fit_segformer.depths=[1, 1, 1, 1]",
                  "fit_segformer.decoder_hidden_size=16", "fit_segformer.height=32",
                  "fit_segformer.width=32", "fit_segformer.steps=20", "fit_segformer.batch_size=4",
                  "fit_segformer.lr=0.01", "fit_segformer.warmup_steps=0"]


@pytest.fixture(scope="module")
def scorer_sets(sample_preprocessed, tmp_path_factory):
    """--set strings pointing the scorer at a tiny SegFormer fitted on the sample data (by the
    real fit-segformer stage), the converted FID weights and a cache of its own."""
    root = tmp_path_factory.mktemp("scorer")
    sets = [a for s in TINY_SEGFORMER for a in ("--set", s)]
    run_cli("fit-segformer", "--data", str(sample_preprocessed), "--out", str(root / "segformer"),
            "--config", str(ROOT / "configs" / "demo.toml"), *sets, "--quiet")
    run_cli("weights", "--dir", str(root / "weights"), "--no-download")
    fid = next((root / "weights").glob("inception*.pth"))
    return [f'evaluate.segformer="{root / "segformer"}"', f'evaluate.fid_weights="{fid}"',
            f'evaluate.cache_dir="{root / "cache"}"']


def test_training_scores_keeps_the_best_and_the_sweep_chooses(sample_preprocessed, scorer_sets, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config("train.max_steps=2", "train.score_every=1", "train.score_maps=3", *scorer_sets)
    run_train(cfg, sample_preprocessed, run, progress=False)
    with open(run / SCORE_LOG, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2]
    for r in rows:  # real numbers from the real scorer, and A is the A formula of them
        m, style, fid = float(r["mask_accuracy"]), float(r["style"]), float(r["fid"])
        assert 0.0 <= m <= 1.0 and -1.0 <= style <= 1.0 and fid > 0 and math.isfinite(float(r["kid"]))
        assert float(r["A"]) == pytest.approx(a_board_score(m, 0.0, style, fid), abs=2e-6)
        assert r["formula"] == "A-board without aesthetic" and r["images"] == "3"
    best_row = max(rows, key=lambda r: float(r["A"]))  # the first of equals
    info = json.loads((run / BEST_INFO).read_text())
    assert info["step"] == int(best_row["step"]) and [r["best"] for r in rows][0] == "*"
    arrays, header = read_checkpoint(run / BEST_FILE)
    assert header["best"]["step"] == info["step"] and all(k.startswith("ema_") for k in arrays)

    # the sweep, scored for real: its choice is the best real A, and generate uses it
    lines = []
    result = run_sweep(run_config(run, use_choice=False), run, sample_preprocessed, tmp_path / "sweep",
                       Scorer(run / RUN_CONFIG), transfers=["none"], weights=["ema", "best"],
                       progress=False, log=lines.append)
    scores = {d.name: json.loads((d / "eval" / "scores.json").read_text())
              for d in (tmp_path / "sweep").iterdir() if d.is_dir()}
    assert sorted(scores) == ["best__none", "ema__none"]
    assert all(s["counts"]["images"] == 4 and s["score"] is not None for s in scores.values())
    winner = max(["ema__none", "best__none"], key=lambda name: scores[name]["score"])  # sweep order
    choice = json.loads((run / CHOICE_FILE).read_text())
    assert choice["row"] == winner and choice["score"] == pytest.approx(scores[winner]["score"])
    assert choice["weights"] == {"ema__none": EMA_FILE, "best__none": BEST_FILE}[winner]
    assert sum(line.lstrip().startswith("*") for line in result.summary) == 1
    made = run_generate(run_config(run), GenerateInputs(run, resolve_inputs(sample_preprocessed, "val")),
                        tmp_path / "gen", progress=False)
    assert made.manifest["extra"]["checkpoint"] == str((run / choice["weights"]).resolve())
    assert made.manifest["extra"]["colour_transfer"] == "none"

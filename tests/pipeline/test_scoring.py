"""Scoring during training: the A used to choose (against the evaluation's A-board formula), the
score log and best.safetensors following the best A, resume, and the scorer switched off (said
once) when it is missing or fails. The scorer child process and the generator are replaced by
functions here; tests/pipeline/test_scoring_e2e.py runs the real ones."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from evaluation.score import a_board_score
from pipeline.checkpoint import read_checkpoint
from pipeline.core.config import load_config
from pipeline.core.errors import ArtifactError
from pipeline.train.scoring import (BEST_FILE, BEST_INFO, SCORE_LOG, ScorerError, TrainScoring,
                                    read_best, run_scorer, selection_score)


# ---------------------------------------------------------------------------- the score
def test_selection_score_is_the_a_board_formula():
    terms = {"mask_accuracy": 0.8, "aesthetic": 0.3, "style": 0.2, "fid": 140.0, "kid": 0.01}
    full = a_board_score(0.8, 0.3, 0.2, 140.0)
    assert selection_score({"score": full, "terms": terms}) == (full, "A-board")
    assert selection_score({"score": None, "terms": terms}) == (pytest.approx(full), "A-board")
    # the default training metrics have no aesthetic: its part is left out (counted as 0)
    cheap = {k: v for k, v in terms.items() if k != "aesthetic"}
    value, formula = selection_score({"score": None, "terms": {**cheap, "fid": 40.0}})
    assert value == pytest.approx(a_board_score(0.8, 0.0, 0.2, 40.0))
    assert formula == "A-board without aesthetic"
    # fid_cap of the scorer's config is honoured
    capped = selection_score({"score": None, "terms": {"fid": 30.0}, "config": {"fid_cap": 60.0}})
    assert capped == (pytest.approx(0.25), "A-board without mask_accuracy, aesthetic, style")
    with pytest.raises(ArtifactError, match="no term of the A formula"):
        selection_score({"score": None, "terms": {"kid": 0.1}})


# ---------------------------------------------------------------------------- a fake trainer
class _Var:
    def __init__(self, value):
        self.value = value

    def numpy(self):
        return self.value


class _Net:
    def __init__(self, trainer):
        self.trainer = trainer

    def state_dict(self):  # the weights depend on the step: the saved best tells which step it is
        return {"w": _Var(np.full((2, 3), float(self.trainer.step), np.float32))}


class _Model:
    def __init__(self, trainer):
        self.nets = {"ema_generator": _Net(trainer)}

    def networks(self):
        return self.nets


class FakeTrainer:
    def __init__(self):
        self.step = 0
        self.model = _Model(self)

    def ema_networks(self):
        return ["ema_generator"]

    def checkpoint_header(self, steps_per_epoch):
        return {"step": self.step, "epoch": self.step // steps_per_epoch}


class FakeData:
    def __init__(self, prep_root):
        self.prep = type("Prep", (), {"root": prep_root})()
        self.steps_per_epoch = 5


def _scores(a):
    # mask accuracy a, style 1, FID 0, no aesthetic: A = a * (0.3 + 0.5)
    return {"score": None, "terms": {"mask_accuracy": a, "style": 1.0, "fid": 0.0, "kid": 0.0},
            "counts": {"images": 3}, "stand_in": False}


class Recorder:
    """The scorer replaced: returns the next scripted mask accuracy, records each call."""

    def __init__(self, values):
        self.values, self.calls = list(values), []

    def __call__(self, generated, out, config, sets, **kw):
        self.calls.append({"generated": generated, "config": config, "sets": list(sets), **kw,
                           "maps": sorted(p.name for p in kw["labels"].iterdir()),
                           "pairs": json.loads(kw["pairs"].read_text())})
        return _scores(self.values.pop(0))


def _cfg(tmp_path, *sets):
    """Scoring every 2 steps on 3 maps; the scorer's model files are in place (the scorer itself
    is replaced, so their content does not matter)."""
    (tmp_path / "segformer").mkdir(exist_ok=True)
    (tmp_path / "inception.pth").touch()
    return load_config(None, ["train.score_every=2", "train.score_maps=3",
                              f'evaluate.segformer="{tmp_path / "segformer"}"',
                              f'evaluate.fid_weights="{tmp_path / "inception.pth"}"', *sets])


def _train(scoring, trainer, data, steps):
    for _ in range(steps):
        trainer.step += 1
        scoring.step_done(trainer, data)


def _log_rows(run):
    with open(run / SCORE_LOG, newline="") as fh:
        return list(csv.DictReader(fh))


def test_best_follows_the_best_a(sample_preprocessed, tmp_path):
    run, logs = tmp_path / "run", []
    run.mkdir()
    scorer = Recorder([0.30, 0.50, 0.40, 0.60, 0.60])
    generated = []
    scoring = TrainScoring(run, _cfg(tmp_path), logs.append, score_fn=scorer,
                           generate_fn=lambda cfg, tr, maps, folder: generated.append(tr.step))
    trainer, data = FakeTrainer(), FakeData(sample_preprocessed)
    scoring.open(0)
    _train(scoring, trainer, data, 10)
    assert generated == [2, 4, 6, 8, 10]  # every train.score_every steps
    rows = _log_rows(run)
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8, 10]
    assert [r["best"] for r in rows] == ["*", "*", "", "*", ""]  # an equal A does not replace
    assert [float(r["A"]) for r in rows] == pytest.approx([0.8 * a for a in (0.3, 0.5, 0.4, 0.6, 0.6)])
    assert {r["formula"] for r in rows} == {"A-board without aesthetic"}
    arrays, header = read_checkpoint(run / BEST_FILE)  # checksum verified
    assert header["step"] == 8 and header["best"]["step"] == 8
    assert (arrays["ema_generator.w"] == 8.0).all()  # the weights of the best step
    info = json.loads((run / BEST_INFO).read_text())
    assert info["step"] == 8 and info["A"] == pytest.approx(0.48) and info["weights"] == BEST_FILE
    assert read_best(run)["A"] == pytest.approx(0.48)
    # the scorer saw the same fixed subset each time: the first 3 maps of the val pairing
    val_pairs = json.loads((sample_preprocessed / "val_pairs.json").read_text())
    first3 = dict(sorted(val_pairs.items())[:3])
    for call in scorer.calls:
        assert call["maps"] == sorted(first3) and call["pairs"] == first3
        assert call["sets"] == ['evaluate.metrics=["mask-accuracy", "color-hist-corr", "fid"]']
        assert call["ceiling"] is False and call["data"] == sample_preprocessed
    assert any("new best" in line for line in logs) and not any("off" in line for line in logs)


def test_resume_drops_later_rows_and_a_later_best(sample_preprocessed, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    data = FakeData(sample_preprocessed)
    first = TrainScoring(run, _cfg(tmp_path), print, score_fn=Recorder([0.3, 0.6, 0.5]),
                         generate_fn=lambda *a: None)
    trainer = FakeTrainer()
    first.open(0)
    _train(first, trainer, data, 6)  # best at step 4
    # resumed from step 5: rows of step 6 dropped, the best (step 4) kept
    logs = []
    again = TrainScoring(run, _cfg(tmp_path), logs.append, score_fn=Recorder([0.55]), generate_fn=lambda *a: None)
    again.open(5)
    assert [int(r["step"]) for r in _log_rows(run)] == [2, 4] and read_best(run)["step"] == 4
    trainer.step = 5
    _train(again, trainer, data, 1)  # step 6 again, A 0.55 * 0.8 < best 0.48
    assert [r["best"] for r in _log_rows(run)] == ["*", "*", ""] and read_best(run)["step"] == 4
    # resumed from step 3: the best of step 4 is from "the future": removed, said once
    logs.clear()
    TrainScoring(run, _cfg(tmp_path), logs.append).open(3)
    assert not (run / BEST_FILE).exists() and not (run / BEST_INFO).exists()
    assert [int(r["step"]) for r in _log_rows(run)] == [2]
    assert len([line for line in logs if "removed" in line]) == 1


def test_missing_scorer_turns_scoring_off_once(sample_preprocessed, tmp_path):
    run, logs = tmp_path / "run", []
    run.mkdir()
    scorer = Recorder([])
    cfg = load_config(None, ["train.score_every=1", f'evaluate.segformer="{tmp_path / "nope"}"'])
    scoring = TrainScoring(run, cfg, logs.append, score_fn=scorer, generate_fn=lambda *a: None)
    scoring.open(0)
    _train(scoring, FakeTrainer(), FakeData(sample_preprocessed), 3)
    assert scorer.calls == [] and not (run / SCORE_LOG).exists()
    assert len(logs) == 1 and "scoring during training is off" in logs[0] and "nope" in logs[0]
    # a run too short to reach a scoring says nothing either
    logs.clear()
    TrainScoring(run, cfg, logs.append, total_steps=0, score_fn=scorer).open(0)
    assert logs == []
    # scoring off by default: nothing said, nothing done
    logs.clear()
    quiet = TrainScoring(run, load_config(None), logs.append, score_fn=scorer)
    quiet.open(0)
    _train(quiet, FakeTrainer(), FakeData(sample_preprocessed), 3)
    assert logs == [] and scorer.calls == []


def test_a_failing_scorer_turns_scoring_off_and_training_goes_on(sample_preprocessed, tmp_path):
    run, logs = tmp_path / "run", []
    run.mkdir()
    calls = []

    def failing(*args, **kw):
        calls.append(1)
        raise ScorerError("the scorer (`landscape evaluate`) failed: error: boom")

    cfg = load_config(None, ["train.score_every=1", "train.score_metrics=[\"color-hist-corr\"]"])
    scoring = TrainScoring(run, cfg, logs.append, score_fn=failing, generate_fn=lambda *a: None)
    scoring.open(0)
    _train(scoring, FakeTrainer(), FakeData(sample_preprocessed), 3)
    assert calls == [1] and len(logs) == 1 and "boom" in logs[0] and "training goes on" in logs[0]


def test_run_scorer_reports_the_scorers_error_line(tmp_path):
    (tmp_path / "config.toml").write_text("")
    with pytest.raises(ScorerError, match=r"failed: error: .*nothing.*folder not found"):
        run_scorer(tmp_path / "nothing", tmp_path / "eval", tmp_path / "config.toml",
                   ["evaluate.metrics=[\"color-hist-corr\"]"], ceiling=False)

"""Training: run folder contents, refusal rules, and exact resume after an interruption."""

from __future__ import annotations

import csv
import os
import signal

import numpy as np
import pytest

from pipeline.checkpoint import EMA_FILE, latest_checkpoint, read_checkpoint
from pipeline.core.config import load_config
from pipeline.core.errors import ArtifactError, ConfigError
from pipeline.train import TrainingInterrupted, lr_factor, run_train

from .model_testutil import make_preprocessed, tiny_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_preprocessed(tmp_path_factory.mktemp("prep"))


def _final_arrays(run):
    arrays, header = read_checkpoint(latest_checkpoint(run))
    return arrays, header


def test_lr_schedule_is_flat_then_linear_to_zero():
    assert lr_factor(0, 10, 2, 2) == 1.0
    assert lr_factor(19, 10, 2, 2) == 1.0
    assert lr_factor(30, 10, 2, 2) == pytest.approx(0.5)
    assert lr_factor(40, 10, 2, 2) == 0.0


def test_run_folder_contents_and_refusals(data, tmp_path):
    run = tmp_path / "run"
    manifest = run_train(tiny_config("train.max_steps=4"), data, run, progress=False)
    assert manifest["stage"] == "train" and manifest["counts"]["steps"] == 4
    for name in ("config.resolved.toml", "train_log.csv", EMA_FILE, "manifest.json",
                 "checkpoints/step_00000004.safetensors", "samples/step_00000003.png"):
        assert (run / name).is_file(), name
    # the resolved config reads back as the same config
    assert load_config(run / "config.resolved.toml") == tiny_config("train.max_steps=4")
    with open(run / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["g_gan"])) and float(r["images_per_s"]) > 0 for r in rows)
    # an existing run is not overwritten without --resume
    with pytest.raises(ArtifactError, match="--resume"):
        run_train(tiny_config("train.max_steps=4"), data, run, progress=False)
    # resuming with a config that changes the training is refused
    with pytest.raises(ConfigError, match="different training config"):
        run_train(tiny_config("train.max_steps=6", "train.lr_g=0.001"), data, run,
                  resume=True, progress=False)


def test_interrupted_then_resumed_equals_uninterrupted(data, tmp_path):
    steps = 6
    cfg = tiny_config(f"train.max_steps={steps}")
    straight = tmp_path / "straight"
    run_train(cfg, data, straight, progress=False)

    # SIGTERM during step 3: a checkpoint is saved at step 3, then the resumed run finishes.
    sig = tmp_path / "signal"

    def send_term(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted):
        run_train(cfg, data, sig, on_step=send_term, progress=False)
    assert latest_checkpoint(sig).name == "step_00000003.safetensors"
    run_train(cfg, data, sig, resume=True, progress=False)

    # A hard crash (kill -9) after step 5: training replays from the step-4 checkpoint.
    crash = tmp_path / "crash"

    def die(step):
        if step == 5:
            raise RuntimeError("simulated kill -9")

    with pytest.raises(RuntimeError):
        run_train(cfg, data, crash, on_step=die, progress=False)
    assert latest_checkpoint(crash).name == "step_00000004.safetensors"
    run_train(cfg, data, crash, resume=True, progress=False)

    ref, ref_header = _final_arrays(straight)
    for run in (sig, crash):
        arrays, header = _final_arrays(run)
        assert header["step"] == ref_header["step"] == steps
        assert header["optimizers"] == ref_header["optimizers"]
        assert sorted(arrays) == sorted(ref)
        for key in ref:
            np.testing.assert_allclose(arrays[key], ref[key], rtol=1e-5, atol=1e-6, err_msg=key)
    with open(sig / "train_log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(1, steps + 1))

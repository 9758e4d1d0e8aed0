"""Training: run folder contents, refusal rules (inputs checked first, ownership, lock, resume
identity), checkpoint fallback, and exact resume after an interruption."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from pipeline.checkpoint import EMA_FILE, latest_checkpoint, list_checkpoints, read_checkpoint
from pipeline.core.artifacts import FolderLock, read_manifest
from pipeline.core.config import load_config
from pipeline.core.errors import ArtifactError, ConfigError
from pipeline.train import TrainingInterrupted, run_train

from .model_testutil import flip_tensor_bit, tiny_config

TWO_STEPS = ("train.max_steps=2", "train.checkpoint_every=1")


@pytest.fixture(scope="module")
def two_step_run(sample_preprocessed, tmp_path_factory):
    """A finished 2-step run with a checkpoint after each step. Read-only: copy to change it."""
    run = tmp_path_factory.mktemp("train") / "run"
    result = run_train(tiny_config(*TWO_STEPS), sample_preprocessed, run, progress=False)
    return run, result


def _copy(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


def test_run_folder_contents(two_step_run):
    run, result = two_step_run
    assert result.manifest["stage"] == "train" and result.manifest["counts"]["steps"] == 2
    assert result.manifest["counts"]["train_images"] == 20
    assert result.summary == [f"train: 2 steps on 20 images -> {run} ({EMA_FILE})"]
    for name in ("config.resolved.toml", "train_log.csv", EMA_FILE, "manifest.json",
                 "checkpoints/step_00000001.safetensors", "checkpoints/step_00000002.safetensors",
                 "samples/step_00000002.png"):
        assert (run / name).is_file(), name
    assert read_manifest(run, "train", deep=True)["extra"]["ema"] == EMA_FILE
    # the resolved config reads back as the same config
    assert load_config(run / "config.resolved.toml") == tiny_config(*TWO_STEPS)
    with open(run / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r["g_gan"])) and float(r["images_per_s"]) > 0 for r in rows)
    arrays, header = read_checkpoint(run / EMA_FILE)
    assert header["step"] == 2 and all(k.startswith("ema_") for k in arrays)


def test_existing_run_and_changed_config_are_refused_untouched(two_step_run, sample_preprocessed,
                                                               tmp_path):
    run = _copy(two_step_run[0], tmp_path)
    before = _files(run)
    with pytest.raises(ArtifactError, match="--resume"):
        run_train(tiny_config(*TWO_STEPS), sample_preprocessed, run, progress=False)
    # the refusal names the keys that differ (keys free to change, like max_steps, are not named)
    with pytest.raises(ConfigError, match="different training config") as info:
        run_train(tiny_config("train.max_steps=6", "train.lr_g=0.001", "loss.feat=1.5"),
                  sample_preprocessed, run, resume=True, progress=False)
    assert "train.lr_g: 0.0004 -> 0.001" in str(info.value) and "loss.feat" in str(info.value)
    assert "max_steps" not in str(info.value)
    assert _files(run) == before  # inputs are checked before the folder is touched
    read_manifest(run, "train")


def test_bad_inputs_leave_no_folder(sample_preprocessed, tmp_path):
    out = tmp_path / "new"
    with pytest.raises(ConfigError, match="data.width x data.height"):
        run_train(tiny_config("data.width=64"), sample_preprocessed, out, progress=False)
    with pytest.raises(ArtifactError, match="preprocess"):
        run_train(tiny_config(), tmp_path / "no-data", out, progress=False)
    assert not out.exists()


def test_foreign_and_preprocess_folders_are_refused(sample_preprocessed, tmp_path):
    prep = shutil.copytree(sample_preprocessed, tmp_path / "prep")
    before = _files(prep)
    with pytest.raises(ArtifactError, match="'preprocess' output"):
        run_train(tiny_config(*TWO_STEPS), sample_preprocessed, prep, progress=False)
    assert _files(prep) == before
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="did not make"):
        run_train(tiny_config(*TWO_STEPS), sample_preprocessed, mine, progress=False)
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"]


def test_second_writer_is_refused(two_step_run, sample_preprocessed, tmp_path):
    run = _copy(two_step_run[0], tmp_path)
    before = _files(run)
    with FolderLock(run.resolve(), "train"):  # another `landscape train` on this --out
        with pytest.raises(ArtifactError, match="in use by pid"):
            run_train(tiny_config(*TWO_STEPS), sample_preprocessed, run, resume=True,
                      progress=False)
    assert _files(run) == before


def test_killed_saves_temp_files_are_removed(two_step_run, sample_preprocessed, tmp_path):
    run = _copy(two_step_run[0], tmp_path)
    temps = [run / "checkpoints" / ".step_00000003.safetensors.k2j4.tmp",
             run / f".{EMA_FILE}.x9q1.tmp"]
    for t in temps:
        t.write_bytes(b"\0" * 1000)
    result = run_train(tiny_config(*TWO_STEPS), sample_preprocessed, run, resume=True,
                       progress=False)  # nothing left to train: the files are rewritten
    assert not any(t.exists() for t in temps)
    assert result.manifest["counts"]["steps"] == 2


def test_bit_flip_in_newest_checkpoint_falls_back_to_previous(two_step_run, sample_preprocessed,
                                                              tmp_path, capsys):
    run = _copy(two_step_run[0], tmp_path)
    newest = run / "checkpoints" / "step_00000002.safetensors"
    good, _ = read_checkpoint(newest)
    size = newest.stat().st_size
    flip_tensor_bit(newest)
    assert newest.stat().st_size == size
    with pytest.raises(ArtifactError, match="checksum"):
        read_checkpoint(newest)
    capsys.readouterr()
    run_train(tiny_config(*TWO_STEPS), sample_preprocessed, run, resume=True, progress=False)
    err = capsys.readouterr().err
    assert "warning" in err and str(newest) in err and "step 1" in err
    assert (run / "checkpoints" / "step_00000002.safetensors.corrupt").is_file()
    # step 2 was retrained from step 1: bit-identical to the checkpoint before the flip
    arrays, header = read_checkpoint(newest)
    assert header["step"] == 2 and sorted(arrays) == sorted(good)
    for key in good:
        np.testing.assert_array_equal(arrays[key], good[key], err_msg=key)


def test_run_with_only_bad_checkpoints_is_refused(two_step_run, sample_preprocessed, tmp_path):
    run = _copy(two_step_run[0], tmp_path)
    for _, path in list_checkpoints(run):
        flip_tensor_bit(path)
    with pytest.raises(ArtifactError, match="no checkpoint can be resumed"):
        run_train(tiny_config(*TWO_STEPS), sample_preprocessed, run, resume=True, progress=False)


def test_generate_refuses_a_corrupt_ema_file(two_step_run, sample_preprocessed, tmp_path):
    run = _copy(two_step_run[0], tmp_path)
    ema = run / EMA_FILE
    flip_tensor_bit(ema)
    with pytest.raises(ArtifactError, match="corrupt.*checksum") as info:
        read_checkpoint(ema)  # what generate loads the EMA generator with
    assert str(ema) in str(info.value)
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "generate", "--run", str(run),
                          "--data", str(sample_preprocessed), "--split", "val",
                          "--out", str(tmp_path / "gen")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert f"{ema}: corrupt" in out.stderr and "checksum" in out.stderr
    assert not list((tmp_path / "gen").glob("*.jpg"))


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(sample_preprocessed, tmp_path):
    steps = 6
    cfg = tiny_config(f"train.max_steps={steps}")
    straight = tmp_path / "straight"
    run_train(cfg, sample_preprocessed, straight, progress=False)

    # SIGTERM during step 3: a checkpoint is saved at step 3, then the resumed run finishes.
    sig = tmp_path / "signal"

    def send_term(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(TrainingInterrupted):
        run_train(cfg, sample_preprocessed, sig, on_step=send_term, progress=False)
    assert latest_checkpoint(sig).name == "step_00000003.safetensors"
    run_train(cfg, sample_preprocessed, sig, resume=True, progress=False)

    # A hard crash (kill -9) after step 5: training replays from the step-4 checkpoint.
    crash = tmp_path / "crash"

    def die(step):
        if step == 5:
            raise RuntimeError("simulated kill -9")

    with pytest.raises(RuntimeError):
        run_train(cfg, sample_preprocessed, crash, on_step=die, progress=False)
    assert latest_checkpoint(crash).name == "step_00000004.safetensors"
    run_train(cfg, sample_preprocessed, crash, resume=True, progress=False)

    ref, ref_header = read_checkpoint(latest_checkpoint(straight))
    for run in (sig, crash):
        arrays, header = read_checkpoint(latest_checkpoint(run))
        assert header["step"] == ref_header["step"] == steps
        assert header["optimizers"] == ref_header["optimizers"]
        assert sorted(arrays) == sorted(ref)
        for key in ref:
            np.testing.assert_allclose(arrays[key], ref[key], rtol=1e-5, atol=1e-6, err_msg=key)
    with open(sig / "train_log.csv") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(1, steps + 1))

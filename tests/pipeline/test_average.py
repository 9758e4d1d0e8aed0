"""`landscape average`: the EMA weights of the last K checkpoints averaged (against numpy's mean),
deterministic, checksummed; checkpoints that fail verification or differ in shapes refused
before anything is written. Checkpoints are written here with the project's own writer."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.average import AVERAGE_FILE, average_arrays, run_average
from pipeline.checkpoint import (CKPT_DIR, EMA_FILE, checkpoint_name, read_checkpoint, save_checkpoint,
                                 tensors_checksum)
from pipeline.core.artifacts import FolderLock
from pipeline.core.errors import ArtifactError, ConfigError

from ..conftest import run_cli
from .model_testutil import flip_tensor_bit

EMA_KEYS = ("ema_generator.conv.weight", "ema_generator.conv.bias", "ema_encoder.fc.weight")


def _arrays(seed, shape=(4, 3, 3, 3)):
    rng = np.random.default_rng(seed)
    return {"ema_generator.conv.weight": rng.normal(size=shape).astype(np.float32),
            "ema_generator.conv.bias": rng.normal(size=shape[:1]).astype(np.float32),
            "ema_encoder.fc.weight": rng.normal(size=(5, 2)).astype(np.float32),
            "generator.conv.weight": rng.normal(size=shape).astype(np.float32),  # not averaged
            "opt_g.m.generator.conv.weight": rng.normal(size=shape).astype(np.float32)}


def _run(tmp_path, steps=(1, 2), shapes=None):
    run = tmp_path / "run"
    (run / CKPT_DIR).mkdir(parents=True)
    for i, step in enumerate(steps):
        save_checkpoint(run / CKPT_DIR / checkpoint_name(step), _arrays(step, (shapes or {}).get(step, (4, 3, 3, 3))),
                        {"step": step, "seed": 0, "optimizers": {"opt_g": {"n_step": step}}})
    return run


def _ema(step):
    return {k: v for k, v in _arrays(step).items() if k in EMA_KEYS}


def test_two_checkpoints_average_to_their_numpy_mean(tmp_path):
    run = _run(tmp_path)
    result = run_average(run, 2)
    arrays, header = read_checkpoint(run / AVERAGE_FILE)  # checksum verified
    assert sorted(arrays) == sorted(EMA_KEYS)
    a, b = _ema(1), _ema(2)
    for key in EMA_KEYS:
        expected = np.mean(np.stack([a[key], b[key]]), axis=0, dtype=np.float64).astype(np.float32)
        assert arrays[key].dtype == np.float32 and np.array_equal(arrays[key], expected), key
    assert header["step"] == 2 and header["optimizers"] == {}
    assert header["networks"] == ["ema_encoder", "ema_generator"]
    assert header["averaged"]["steps"] == [1, 2]
    assert result.summary == [f"average: EMA weights of 2 checkpoint(s) (steps 1, 2) -> {run / AVERAGE_FILE}"]


def test_last_k_of_more_is_deterministic(tmp_path):
    run = _run(tmp_path, steps=(1, 2, 3, 4))
    run_average(run, 3)
    arrays, header = read_checkpoint(run / AVERAGE_FILE)
    for key in EMA_KEYS:  # the oldest checkpoint is left out
        expected = np.mean([_ema(s)[key] for s in (2, 3, 4)], axis=0, dtype=np.float64)
        np.testing.assert_allclose(arrays[key], expected, rtol=1e-6)
    assert header["averaged"]["steps"] == [2, 3, 4]
    # an earlier average may be replaced, and the same checkpoints give the same tensors and
    # header (safetensors writes its metadata keys in a random order, so not the same bytes)
    run_average(run, 3)
    again, header_again = read_checkpoint(run / AVERAGE_FILE)
    assert header_again == header and tensors_checksum(again) == tensors_checksum(arrays)
    assert all(again[k].tobytes() == arrays[k].tobytes() for k in EMA_KEYS)
    run_average(run, 1, tmp_path / "one.safetensors")
    one, _ = read_checkpoint(tmp_path / "one.safetensors")
    assert all(np.array_equal(one[k], _ema(4)[k]) for k in EMA_KEYS)


def test_average_arrays_refuses_differing_keys_and_integer_values():
    a, b = _ema(1), _ema(2)
    with pytest.raises(ArtifactError, match="b: does not match a .*missing"):
        average_arrays([a, {k: v for k, v in b.items() if k != EMA_KEYS[0]}], ["a", "b"])
    a["ema_generator.count"], b["ema_generator.count"] = np.array([1]), np.array([2])
    with pytest.raises(ArtifactError, match="integer tensors cannot be averaged"):
        average_arrays([a, b], ["a", "b"])


def test_differing_shapes_are_refused_and_nothing_is_written(tmp_path):
    run = _run(tmp_path, steps=(1, 2), shapes={2: (8, 3, 3, 3)})
    with pytest.raises(ArtifactError, match=r"step_00000002.*does not match.*shapes differ.*\(8, 3, 3, 3\)"):
        run_average(run, 2)
    assert not (run / AVERAGE_FILE).exists()


def test_a_checkpoint_failing_verification_is_refused(tmp_path):
    run = _run(tmp_path, steps=(1, 2))
    flip_tensor_bit(run / CKPT_DIR / checkpoint_name(1), "ema_generator.conv.weight")
    with pytest.raises(ArtifactError, match="step_00000001.*checksum"):
        run_average(run, 2)
    assert not (run / AVERAGE_FILE).exists()


def test_refusals_that_say_what_to_do(tmp_path):
    run = _run(tmp_path)
    with pytest.raises(ArtifactError, match="only 2 checkpoint.*steps 1, 2.*keep_checkpoints"):
        run_average(run, 3)
    with pytest.raises(ConfigError, match="--last 0"):
        run_average(run, 0)
    with pytest.raises(ArtifactError, match="no checkpoints"):
        run_average(tmp_path / "empty", 1)
    (run / EMA_FILE).write_bytes(b"x")
    with pytest.raises(ArtifactError, match="one of the run's own weights files"):
        run_average(run, 2, run / EMA_FILE)
    foreign = tmp_path / "notes.safetensors"
    foreign.write_text("mine")
    with pytest.raises(ArtifactError, match="not an earlier `landscape average` file"):
        run_average(run, 2, foreign)
    assert foreign.read_text() == "mine"
    with FolderLock(run, "train"), pytest.raises(ArtifactError, match="in use by"):
        run_average(run, 2)  # a training run writing into it


def test_cli(tmp_path, capsys):
    run = _run(tmp_path)
    run_cli("average", "--run", str(run), "--last", "2")
    assert f"-> {run / AVERAGE_FILE}" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="exited 2"):
        run_cli("average", "--run", str(run), "--last", "5")
    assert "error: " in capsys.readouterr().err

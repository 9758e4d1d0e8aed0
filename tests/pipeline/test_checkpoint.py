"""Checkpoints: exact round trip, refusal of checkpoints that do not fit."""

from __future__ import annotations

import numpy as np
import pytest

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # spin-waiting threads are slow on a shared CPU

from pipeline.jt_env import setup_jittor  # noqa: E402
from pipeline.checkpoint import load_into, read_checkpoint, save_checkpoint
from pipeline.core.errors import ArtifactError, ConfigError
from pipeline.model.ganmodel import NETWORKS
from pipeline.train import Trainer, batch_to_vars

from .model_testutil import H, W, tiny_config

jt = setup_jittor("cpu")  # before any pipeline.model import (isort: skip)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    return batch_to_vars(jt, {
        "images": rng.integers(0, 256, (2, H, W, 3), dtype=np.uint8),
        "labels": rng.integers(0, 29, (2, H, W), dtype=np.uint8),
        "edges": (rng.random((2, H, W)) < 0.1).astype(np.uint8) * 255,
    }, 29)


def _trainer(cfg):
    return Trainer(cfg, jt, H, W, log=lambda msg: None)


def test_round_trip_is_exact(tmp_path):
    cfg = tiny_config()
    a = _trainer(cfg)
    a.train_step(_batch(), 1.0)
    a.train_step(_batch(1), 1.0)
    path = tmp_path / "a.safetensors"
    a.save(path, steps_per_epoch=3)
    before = a.state_arrays()
    assert any(k.endswith("weight_u") for k in before)  # spectral-norm buffers are saved
    assert any(k.startswith("opt_g.m.") for k in before) and any(k.startswith("opt_d.v.") for k in before)

    b = _trainer(tiny_config("seed=5"))  # other random init: everything must be overwritten
    b.cfg = cfg
    header = b.load(path)
    assert header["step"] == b.step == 2
    assert b.opt_g.n_step == a.opt_g.n_step == 2
    after = b.state_arrays()
    assert sorted(after) == sorted(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    # and both continue identically
    la, lb = a.train_step(_batch(2), 1.0), b.train_step(_batch(2), 1.0)
    assert la == pytest.approx(lb, rel=1e-5, abs=1e-6)


def test_mismatched_checkpoints_are_refused(tmp_path):
    a = _trainer(tiny_config())
    path = tmp_path / "a.safetensors"
    a.save(path, steps_per_epoch=3)

    wider = _trainer(tiny_config("model.ngf=16"))
    arrays, header = read_checkpoint(path)
    with pytest.raises(ArtifactError, match="shape mismatch"):
        load_into(path, arrays, header, wider.model, NETWORKS, wider.optimizers())

    spade = _trainer(tiny_config('model.kind="spade"'))
    with pytest.raises(ArtifactError, match="unexpected"):
        load_into(path, arrays, header, spade.model, NETWORKS, spade.optimizers())

    # a missing key is refused too, and nothing is half-loaded
    del arrays["generator.conv_img.weight"]
    same = _trainer(tiny_config())
    before = same.model.generator.conv_img.bias.numpy().copy()
    with pytest.raises(ArtifactError, match="missing"):
        load_into(path, arrays, header, same.model, NETWORKS, same.optimizers())
    np.testing.assert_array_equal(same.model.generator.conv_img.bias.numpy(), before)

    # a resume with another training config is refused
    other = _trainer(tiny_config("loss.feat=1.0"))
    with pytest.raises(ConfigError, match="different training config"):
        other.load(path)


def test_unreadable_or_foreign_files_are_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="not a readable checkpoint"):
        read_checkpoint(bad)
    foreign = tmp_path / "foreign.safetensors"
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, np.float32)}, str(foreign))
    with pytest.raises(ArtifactError, match="not a landscape-checkpoint"):
        read_checkpoint(foreign)
    with pytest.raises(ArtifactError, match="not found"):
        read_checkpoint(tmp_path / "missing.safetensors")
    save_checkpoint(tmp_path / "ok.safetensors", {"x": np.ones(2, np.float32)}, {"step": 1})
    arrays, header = read_checkpoint(tmp_path / "ok.safetensors")
    assert header["step"] == 1 and arrays["x"].tolist() == [1.0, 1.0]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file

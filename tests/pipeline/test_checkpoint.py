"""Checkpoints: exact round trip, refusal of checkpoints that do not fit, the tensors'
checksum (bit flips, NaN/Inf) and pruning that never trades a good checkpoint for a bad one."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")  # spin-waiting threads are slow on a shared CPU

from pipeline.jt_env import setup_jittor  # noqa: E402
from pipeline.checkpoint import (CHECKSUM_KEY, CKPT_DIR, FORMAT, checkpoint_name,  # noqa: E402
                                 list_checkpoints, load_into, newest_good_checkpoint,
                                 prune_checkpoints, read_checkpoint, save_checkpoint)
from pipeline.core.errors import ArtifactError, ConfigError  # noqa: E402
from pipeline.model.ganmodel import NETWORKS  # noqa: E402
from pipeline.train import Trainer, batch_to_vars  # noqa: E402

from .model_testutil import H, W, flip_tensor_bit, tiny_config  # noqa: E402

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
    with pytest.raises(ConfigError, match="different training config; it differs in loss.feat"):
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


# ---------------------------------------------------------------------------- checksum
def _metadata(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        return f.metadata()


def _reference_checksum(arrays):
    """The documented definition, written out: sha256 over name, dtype, shape, bytes by name."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = arrays[name]
        h.update(name.encode() + b"\0" + str(a.dtype).encode() + b"\0" + str(list(a.shape)).encode()
                 + b"\0")
        h.update(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())
    return h.hexdigest()


ARRAYS = {"b.w": np.arange(6, dtype=np.float32).reshape(2, 3), "a.bias": np.ones(4, np.float32),
          "n": np.array([3], np.int64)}


def test_checksum_is_stored_and_verified(tmp_path):
    path = tmp_path / "ok.safetensors"
    save_checkpoint(path, ARRAYS, {"step": 7})
    assert _metadata(path)[CHECKSUM_KEY] == _reference_checksum(ARRAYS)
    arrays, header = read_checkpoint(path)
    assert header["step"] == 7 and sorted(arrays) == sorted(ARRAYS)
    # the checksum tells names, shapes and dtypes apart, not only bytes
    assert _reference_checksum({"b.w": ARRAYS["b.w"].reshape(3, 2)}) != _reference_checksum(
        {"b.w": ARRAYS["b.w"]})

    size = path.stat().st_size
    assert flip_tensor_bit(path, "b.w") == "b.w" and path.stat().st_size == size
    with pytest.raises(ArtifactError, match="corrupt.*checksum") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_weights_are_refused(tmp_path, bad):
    path = tmp_path / "nan.safetensors"
    w = np.ones((2, 2), np.float32)
    w[1, 0] = bad
    save_checkpoint(path, {**ARRAYS, "generator.conv.weight": w}, {"step": 1})  # a valid checksum
    with pytest.raises(ArtifactError, match="NaN/Inf.*generator.conv.weight") as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


def test_checksum_rules_by_version(tmp_path):
    from safetensors.numpy import save_file

    # version 1 files (made before the checksum) still load: only the NaN/Inf check applies
    v1 = tmp_path / "v1.safetensors"
    save_file(ARRAYS, str(v1), metadata={"header": json.dumps({"format": FORMAT, "version": 1})})
    assert read_checkpoint(v1)[1]["version"] == 1
    # a version 2 file without its checksum is refused
    v2 = tmp_path / "v2.safetensors"
    save_file(ARRAYS, str(v2), metadata={"header": json.dumps({"format": FORMAT, "version": 2})})
    with pytest.raises(ArtifactError, match="checksum is missing"):
        read_checkpoint(v2)


def _run_with_checkpoints(root, steps):
    for step in steps:
        save_checkpoint(root / CKPT_DIR / checkpoint_name(step),
                        {"w": np.full(3, step, np.float32)}, {"step": step})
    return [p for _, p in list_checkpoints(root)]


def test_pruning_verifies_the_newest_first(tmp_path):
    paths = _run_with_checkpoints(tmp_path, [2, 4, 6, 8])
    flip_tensor_bit(paths[-1])
    with pytest.raises(ArtifactError, match="checksum"):
        prune_checkpoints(tmp_path, keep=1)
    assert [p.is_file() for p in paths] == [True] * 4  # nothing pruned for an unverified newest
    save_checkpoint(paths[-1], {"w": np.full(3, 8, np.float32)}, {"step": 8})  # rewritten, good
    assert prune_checkpoints(tmp_path, keep=2) == paths[:2]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [6, 8]
    assert prune_checkpoints(tmp_path, keep=2) == []


def test_newest_good_checkpoint_skips_bad_ones(tmp_path):
    assert newest_good_checkpoint(tmp_path) is None
    paths = _run_with_checkpoints(tmp_path, [1, 2, 3])
    flip_tensor_bit(paths[2])
    paths[1].write_bytes(paths[1].read_bytes()[:100])  # truncated
    point = newest_good_checkpoint(tmp_path)
    assert point.path == paths[0] and point.header["step"] == 1
    assert [p for p, _ in point.bad] == [paths[2], paths[1]]
    assert "checksum" in point.bad[0][1] and "not a readable checkpoint" in point.bad[1][1]
    flip_tensor_bit(paths[0])
    with pytest.raises(ArtifactError, match="no checkpoint can be resumed"):
        newest_good_checkpoint(tmp_path)

"""Atomic writes and stage manifests: unfinished, foreign, stale and tampered folders are refused."""

from __future__ import annotations

import json
import os
import stat

import pytest

from pipeline.artifacts import (
    MANIFEST,
    SCHEMA_VERSION,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    check_input_unchanged,
    is_up_to_date,
    manifest_hash,
    prepare_output_dir,
    read_manifest,
    reset_output_dir,
    sha256_bytes,
    sha256_file,
    write_manifest,
)
from pipeline.errors import ArtifactError


@pytest.fixture
def stage(tmp_path):
    """A finished 'preprocess' folder with two files (one in a sub-folder)."""
    folder = tmp_path / "data"
    (folder / "arrays").mkdir(parents=True)
    (folder / "index.json").write_text('{"n": 2}')
    (folder / "arrays" / "a.npy").write_bytes(b"0123456789")
    write_manifest(folder, "preprocess", config_hash="c" * 64, inputs={"raw": "r" * 64}, counts={"n": 2})
    return folder


def rewrite_manifest(folder, **changes):
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


# ---------------------------------------------------------------------------- atomic writes
def test_atomic_path_leaves_nothing_on_exception(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []


def test_atomic_path_keeps_the_old_file_on_exception(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "old")
    with pytest.raises(KeyError):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
            raise KeyError("x")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_path_renames_on_success_with_normal_permissions(tmp_path):
    target = tmp_path / "out.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.json.") and tmp.name.endswith(".tmp")
        tmp.write_text("{}")
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_atomic_write_json_and_hashes(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(path, {"b": 1, "a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}
    assert sha256_file(path) == sha256_bytes(path.read_bytes())


def test_prepare_and_reset_output_dir(stage):
    (stage / "keep.txt").write_text("x")
    prepare_output_dir(stage)
    assert not (stage / MANIFEST).exists() and (stage / "keep.txt").exists()
    reset_output_dir(stage)
    assert list(stage.iterdir()) == []


# ---------------------------------------------------------------------------- manifests
def test_write_and_read_manifest(stage):
    manifest = read_manifest(stage, "preprocess", deep=True, config_hash="c" * 64)
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["stage"] == "preprocess"
    assert manifest["files"]["index.json"] == {"size": 8, "sha256": sha256_file(stage / "index.json")}
    assert set(manifest["files"]) == {"index.json", "arrays/a.npy"}  # not itself
    assert manifest["counts"] == {"n": 2} and manifest["inputs"] == {"raw": "r" * 64}


def test_manifest_skips_temp_files_and_rejects_unknown_stages(tmp_path):
    (tmp_path / "ok.txt").write_text("x")
    (tmp_path / ".ok.txt.abc.tmp").write_text("partial")
    assert list(write_manifest(tmp_path, "train")["files"]) == ["ok.txt"]
    with pytest.raises(ValueError, match="unknown stage"):
        write_manifest(tmp_path, "trian")


def test_no_folder_and_no_manifest(tmp_path, stage):
    with pytest.raises(ArtifactError, match="folder not found.*landscape preprocess"):
        read_manifest(tmp_path / "nope", "preprocess")
    (stage / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match="no manifest.json, so the 'preprocess' stage did not finish"):
        read_manifest(stage, "preprocess")
    with pytest.raises(ArtifactError, match="missing or unfinished"):
        manifest_hash(stage)


def test_missing_file(stage):
    (stage / "arrays" / "a.npy").unlink()
    with pytest.raises(ArtifactError, match=r"no longer match its manifest \(arrays/a.npy is missing\)"):
        read_manifest(stage, "preprocess")


def test_changed_size(stage):
    (stage / "index.json").write_text('{"n": 20}')
    with pytest.raises(ArtifactError, match="index.json changed size"):
        read_manifest(stage, "preprocess")


def test_changed_content_needs_deep(stage):
    (stage / "arrays" / "a.npy").write_bytes(b"9123456789")  # same size
    read_manifest(stage, "preprocess")  # the cheap check cannot see it
    with pytest.raises(ArtifactError, match="arrays/a.npy changed content"):
        read_manifest(stage, "preprocess", deep=True)


def test_wrong_stage(stage):
    with pytest.raises(ArtifactError, match="this is a 'preprocess' output, expected a 'train' output.*landscape train"):
        read_manifest(stage, "train")


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION + 1, None, "1"])
def test_schema_version(stage, version):
    rewrite_manifest(stage, schema_version=version)
    with pytest.raises(ArtifactError, match=f"schema version {version}, this version reads {SCHEMA_VERSION}"):
        read_manifest(stage, "preprocess")


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"schema_version": 1, "stage": "preprocess", "files": [1]}'])
def test_corrupt_manifest(stage, text):
    (stage / MANIFEST).write_text(text)
    with pytest.raises(ArtifactError):
        read_manifest(stage, "preprocess")


def test_config_hash_mismatch(stage):
    with pytest.raises(ArtifactError, match="made with a different config \\(hash cccccccccccc, now dddddddddddd\\)"):
        read_manifest(stage, "preprocess", config_hash="d" * 64)
    rewrite_manifest(stage, config_hash=None)
    with pytest.raises(ArtifactError, match="different config"):
        read_manifest(stage, "preprocess", config_hash="d" * 64)


def test_manifest_hash_changes_when_the_stage_is_redone(stage):
    before = manifest_hash(stage)
    assert before == sha256_file(stage / MANIFEST)
    (stage / "index.json").write_text('{"n": 3}')
    write_manifest(stage, "preprocess", config_hash="c" * 64)
    assert manifest_hash(stage) != before


def test_check_input_unchanged(tmp_path, stage):
    run = tmp_path / "run"
    run.mkdir()
    consumer = write_manifest(run, "train", inputs={"data": manifest_hash(stage)})
    check_input_unchanged(consumer, "data", stage, run)  # unchanged: no error
    check_input_unchanged(consumer, "other", stage, run)  # not recorded: nothing to compare
    (stage / "index.json").write_text('{"n": 4}')
    write_manifest(stage, "preprocess")  # the input was redone after the run
    with pytest.raises(ArtifactError, match="stale, its input 'data' .* changed after it was made.*landscape train"):
        check_input_unchanged(consumer, "data", stage, run)
    (stage / MANIFEST).unlink()
    with pytest.raises(ArtifactError, match="missing or unfinished"):
        check_input_unchanged(consumer, "data", stage, run)


def test_is_up_to_date(stage):
    inputs = {"raw": "r" * 64}
    assert is_up_to_date(stage, "preprocess", "c" * 64, inputs)
    assert not is_up_to_date(stage, "preprocess", "d" * 64, inputs)  # config changed
    assert not is_up_to_date(stage, "preprocess", "c" * 64, {"raw": "s" * 64})  # input changed
    assert not is_up_to_date(stage, "train", "c" * 64, inputs)  # another stage
    (stage / "index.json").unlink()
    assert not is_up_to_date(stage, "preprocess", "c" * 64, inputs)  # damaged
    assert not is_up_to_date(stage.parent / "none", "preprocess", "c" * 64, inputs)

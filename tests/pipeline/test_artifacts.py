"""Atomic writes and stage manifests: unfinished, foreign, stale and tampered folders are refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from pipeline.core.artifacts import (
    MANIFEST,
    SCHEMA_VERSION,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    check_input_unchanged,
    claim_folder,
    is_up_to_date,
    manifest_hash,
    prepare_output_dir,
    read_manifest,
    sha256_bytes,
    sha256_file,
    staged_folder,
    write_manifest,
)
from pipeline.core.errors import ArtifactError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def test_prepare_output_dir(stage):
    (stage / "keep.txt").write_text("x")
    prepare_output_dir(stage)
    assert not (stage / MANIFEST).exists() and (stage / "keep.txt").exists()


# ---------------------------------------------------------------------------- the folder writer
def _stage_into(out, stage_name="preprocess", fail=False):
    with staged_folder(out, stage=stage_name) as tmp:
        (tmp / "a.txt").write_text("new")
        if fail:
            raise RuntimeError("boom")
        write_manifest(tmp, stage_name)


def test_staged_folder_swaps_in_with_ordinary_permissions(tmp_path):
    out = tmp_path / "out"
    _stage_into(out)
    assert (out / "a.txt").read_text() == "new" and (out / MANIFEST).is_file()
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()
    _stage_into(out)  # its own folder: replaced
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["out"]


def test_staged_folder_failure_leaves_old_folder_and_no_temp(tmp_path):
    out = tmp_path / "out"
    _stage_into(out)
    before = (out / MANIFEST).read_bytes()
    with pytest.raises(RuntimeError):
        _stage_into(out, fail=True)
    assert (out / MANIFEST).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["out"]


@pytest.mark.parametrize("content", ["user files", "other stage"])
def test_staged_folder_refuses_folders_it_did_not_make(tmp_path, content):
    out = tmp_path / "weights"
    out.mkdir()
    (out / "precious.pth").write_text("x")
    if content == "other stage":
        write_manifest(out, "train")
    with pytest.raises(ArtifactError, match="only replaces its own folders"):
        _stage_into(out, "fit-segformer")
    assert (out / "precious.pth").read_text() == "x"


def test_staged_folder_removes_leftovers_of_a_killed_run(tmp_path):
    out = tmp_path / "out"
    (tmp_path / ".out.abc.tmp").mkdir()
    (tmp_path / ".out.123.old").mkdir()
    _stage_into(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]


def test_folder_lock_refuses_a_second_writer(tmp_path):
    out = tmp_path / "gen"
    code = ("import sys, time; from pipeline.core.artifacts import FolderLock; "
            f"l = FolderLock({str(out)!r}, 'generate').acquire(); print('held', flush=True); time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(ArtifactError, match=rf"in use by pid {proc.pid} .*landscape generate"):
            with claim_folder(out, "generate"):
                pass
    finally:
        proc.kill()
        proc.wait()
    with claim_folder(out, "generate") as folder:  # the holder died: the lock is free again
        assert folder == out.resolve()


def test_claim_folder_marks_owner_and_removes_killed_temp_files(tmp_path):
    out = tmp_path / "gen"
    with claim_folder(out, "generate"):
        (out / ".x.jpg.123.tmp").write_text("half")
        (out / "a.jpg").write_text("img")
    with claim_folder(out, "generate"):  # unfinished (no manifest) but marked: still ours
        assert not (out / ".x.jpg.123.tmp").exists() and (out / "a.jpg").exists()
    with pytest.raises(ArtifactError, match="only replaces its own folders"):
        with claim_folder(out, "evaluate"):
            pass


def test_os_errors_become_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ArtifactError, match="is a file"):
        with claim_folder(blocker / "out", "generate"):
            pass


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


def test_manifest_can_leave_out_files_other_commands_add_later(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    (folder / "choice.json").write_text("{}")
    (folder / "average_k3.safetensors").write_text("x")
    manifest = write_manifest(folder, "train", exclude=("choice.json", "average*.safetensors"))
    assert list(manifest["files"]) == ["a.txt"]
    (folder / "choice.json").write_text('{"changed": true}')
    read_manifest(folder, "train", deep=True)  # still intact

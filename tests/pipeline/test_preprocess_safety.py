"""The preprocess stage writes through the one staged-folder writer: its lock, its clean-up of a
killed run, its refusals, and one-line OS errors; the result reads back through PreprocessedData."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.core.artifacts import FolderLock, read_manifest
from pipeline.core.errors import ArtifactError
from pipeline.core.preprocessed import ARRAY_KINDS, PreprocessedData
from pipeline.data.layout import DatasetParts
from pipeline.data.preprocess import run_preprocess

from .data_helpers import tiny_config


def _run(sample_raw, out, **kw):
    return run_preprocess(tiny_config(), DatasetParts.find(sample_raw), out, progress=False, **kw)


def test_result_reads_back_through_its_format_owner(sample_raw, tmp_path):
    result = _run(sample_raw, tmp_path / "pp")
    folder = PreprocessedData.open(tmp_path / "pp")
    assert folder.manifest == result.manifest and folder.size() == (32, 48)
    for split, n in (("train", 22), ("val", 2)):
        arrays = folder.arrays(split)
        assert set(arrays) == set(ARRAY_KINDS) and all(a.shape[0] == n for a in arrays.values())
        assert len(folder.stems(split)) == n
    assert sorted(p.name for p in folder.val_labels_dir.iterdir()) == sorted(
        f"{s}.png" for s in folder.stems("val"))
    assert folder.pairs_path("val").is_file() and folder.pairs_path("test").is_file()
    assert folder.class_stats_path.is_file() and folder.paths["train_imgs"] == str(sample_raw / "train/imgs")
    # an ordinary folder (umask), not mkdtemp's private 0700
    assert (tmp_path / "pp").stat().st_mode & 0o777 == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_second_run_is_refused_naming_the_holder(sample_raw, tmp_path):
    out = tmp_path / "pp"
    with FolderLock(out, "preprocess"):  # another `landscape preprocess` writing this folder
        with pytest.raises(ArtifactError, match=rf"{out}: in use by pid {os.getpid()} .*landscape preprocess"):
            _run(sample_raw, out)
    assert not out.exists()
    _run(sample_raw, out)  # the lock is gone with its holder
    assert read_manifest(out, "preprocess")


def test_a_killed_runs_temp_folder_is_removed(sample_raw, tmp_path):
    out = tmp_path / "pp"
    _run(sample_raw, out)
    leftover = tmp_path / ".pp.k1ll3d.tmp"  # what a run killed half-way leaves beside `out`
    leftover.mkdir()
    (leftover / "train_images.npy").write_bytes(b"\0" * 4096)
    _run(sample_raw, out, skip_bad=True)  # other options: not up to date, so it runs
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".pp.")) == [".pp.lock"]


def test_a_folder_of_another_stage_is_refused(sample_raw, tmp_path):
    out = tmp_path / "gen"
    out.mkdir()
    (out / "manifest.json").write_text('{"schema_version": 1, "stage": "generate"}')
    (out / "a.jpg").write_bytes(b"mine")
    with pytest.raises(ArtifactError, match="is a 'generate' output"):
        _run(sample_raw, out)
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "manifest.json"]


def test_out_under_a_file_is_one_line(sample_raw, tmp_path):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "pp"
    res = subprocess.run([sys.executable, "-m", "pipeline.cli", "preprocess", "--data", str(sample_raw),
                          "--out", str(out), "--set", "data.workers=1", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert str(tmp_path / "afile") in res.stderr and "a file" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_summary_is_what_the_command_prints(sample_raw, tmp_path):
    out = tmp_path / "pp"
    res = subprocess.run([sys.executable, "-m", "pipeline.cli", "preprocess", "--data", str(sample_raw),
                          "--out", str(out), "--config", "configs/demo.toml", "--set", "data.height=32",
                          "--set", "data.width=48", "--set", "data.workers=1", "--quiet"],
                         capture_output=True, text=True, timeout=120, cwd=os.path.dirname(os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__)))))
    assert res.returncode == 0, res.stderr
    folder = PreprocessedData.open(out)
    s = folder.manifest["extra"]["splits"]
    assert res.stdout == (f"preprocess: {s['train']} train + {s['val']} val pairs at 48x32, "
                          f"{s['test']} test maps -> {out}\n")
    assert np.load(folder.array_path("train", "labels")).max() <= 28

"""pin_jittor_home: Jittor's per-user config.json is written atomically with our JITTOR_HOME
before the import, so Jittor's own in-place rewrite (truncate, then write), which races with a
second process reading the file, never happens. The failure it prevents is reproduced first."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pipeline.jt_env import pin_jittor_home


def _import_jittor_utils(home, jittor_home):
    env = dict(os.environ, HOME=str(home), JITTOR_HOME=str(jittor_home), nvcc_path="",
               FIX_TORCH_ERROR="0", log_silent="1")
    return subprocess.run([sys.executable, "-c", "import jittor_utils"], env=env,
                          capture_output=True, text=True, timeout=300)


def test_pinned_home_is_left_alone_by_jittor(tmp_path, monkeypatch):
    config = tmp_path / ".cache" / "jittor" / "config.json"
    config.parent.mkdir(parents=True)
    jittor_home = tmp_path / "jh"
    # what a reader sees while another process's Jittor rewrites the file: an empty file
    config.write_text("")
    crashed = _import_jittor_utils(tmp_path, jittor_home)
    assert crashed.returncode != 0 and "JSONDecodeError" in crashed.stderr

    config.write_text("")
    monkeypatch.setenv("HOME", str(tmp_path))
    pin_jittor_home(jittor_home)
    assert json.loads(config.read_text()) == {"JITTOR_HOME": str(jittor_home)}
    before = config.stat()
    done = _import_jittor_utils(tmp_path, jittor_home)
    assert done.returncode == 0, done.stderr[-2000:]
    after = config.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten


def test_pin_keeps_other_keys_and_writes_only_on_change(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / ".cache" / "jittor" / "config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"JITTOR_HOME": "/elsewhere", "other": 1}))
    pin_jittor_home(tmp_path / "a")
    assert json.loads(config.read_text()) == {"JITTOR_HOME": str(tmp_path / "a"), "other": 1}
    inode = config.stat().st_ino
    pin_jittor_home(tmp_path / "a")
    assert config.stat().st_ino == inode  # same home: nothing written
    pin_jittor_home(tmp_path / "b")
    assert config.stat().st_ino != inode  # replaced by rename, never truncated in place
    assert not [p for p in config.parent.iterdir() if p.name.endswith(".tmp")]

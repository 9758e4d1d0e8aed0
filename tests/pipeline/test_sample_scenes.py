"""The scene registry and the sample writer's folder rules (staged_folder)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from pipeline.core.classes import CLASS_ID
from pipeline.data.sample import SCENES, make_scene, register_scene, write_sample_dataset
from pipeline.data.sample import scenes as scenes_module


def test_registry_holds_the_built_in_kinds_in_drawing_order():
    assert SCENES == ("coast", "lake", "countryside", "valley", "alpine")
    assert tuple(scenes_module.SCENE_DRAWERS) == SCENES
    seen = {make_scene(np.random.default_rng(i), 48, 64)[2]["scene"] for i in range(40)}
    assert seen == set(SCENES)  # make_scene draws from the whole registry


def test_registering_a_kind(monkeypatch):
    monkeypatch.setattr(scenes_module, "SCENE_DRAWERS", dict(scenes_module.SCENE_DRAWERS))

    @register_scene("flat-sea")
    def flat_sea(cv, rng, horizon):
        cv.below(np.full(cv.w, horizon, np.float32), CLASS_ID["sea"])
        return horizon

    label, part, info = make_scene(np.random.default_rng(0), 40, 50, "flat-sea")
    assert info["scene"] == "flat-sea" and set(np.unique(label)) == {CLASS_ID["sky"], CLASS_ID["sea"]}
    row = int(np.ceil(info["horizon"]))
    assert (label[row:] == CLASS_ID["sea"]).all() and (label[: row - 1] == CLASS_ID["sky"]).all()
    with pytest.raises(ValueError, match="registered twice"):
        register_scene("flat-sea")
    with pytest.raises(ValueError, match="lower-case"):
        register_scene("Flat Sea")
    with pytest.raises(ValueError, match="unknown scene kind 'moon'"):
        make_scene(np.random.default_rng(0), 40, 50, "moon")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_dataset_folder_is_ordinary_and_a_failed_rewrite_keeps_the_old_one(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    write_sample_dataset(out, 2, 1, seed=0, height=32, width=32, progress=False)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    before = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))

    from pipeline.data.sample import write as write_module

    def broken(*args, **kwargs):
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(write_module, "render_photo", broken)
    with pytest.raises(RuntimeError, match="disk trouble"):
        write_sample_dataset(out, 3, 1, seed=0, height=32, width=32, progress=False)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".old"))] == []

"""The preprocess stage: output contract, shapes, split, no-op re-run, drop list, parallel decode."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.core.artifacts import read_manifest
from pipeline.core.config import config_hash, load_config
from pipeline.data.layout import DatasetParts
from pipeline.data.npy_rows import NpyRows, write_row
from pipeline.data.preprocess import class_counts, run_preprocess
from pipeline.data.sample import write_sample_dataset
from pipeline.core.errors import ArtifactError, ConfigError

from .data_helpers import label_array, make_dataset, tiny_config


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample") / "ds"
    write_sample_dataset(root, 12, 4, seed=5, height=96, width=128, progress=False)
    return root


def test_outputs_follow_the_contract(sample, tmp_path):
    cfg = tiny_config()
    out = tmp_path / "pp"
    res = run_preprocess(cfg, DatasetParts.find(sample), out, progress=False)
    assert not res.up_to_date
    man = read_manifest(out, "preprocess", config_hash=config_hash(cfg, "data"))
    extra = man["extra"]
    assert (extra["height"], extra["width"], extra["num_classes"]) == (32, 48, 29)
    assert extra["splits"] == {"train": 10, "val": 2, "test": 4}
    index = json.loads((out / "index.json").read_text())
    assert set(index) >= {"train", "val", "test", "skipped", "paths"}
    assert not set(index["train"]) & set(index["val"])
    assert index["paths"] == extra["paths"] and index["paths"]["train_imgs"] == str(sample / "train/imgs")
    for split, n in (("train", 10), ("val", 2)):
        imgs = np.load(out / f"{split}_images.npy", mmap_mode="r")
        labs = np.load(out / f"{split}_labels.npy")
        edges = np.load(out / f"{split}_edges.npy")
        assert imgs.shape == (n, 32, 48, 3) and imgs.dtype == np.uint8
        assert labs.shape == edges.shape == (n, 32, 48) and labs.max() <= 28
        assert set(np.unique(edges)) <= {0, 255}
    # Row i is the resized pair of stem i: photo by INTER_AREA, label by nearest.
    stem = index["train"][3]
    photo = cv2.cvtColor(cv2.imread(str(sample / f"train/imgs/{stem}.jpg")), cv2.COLOR_BGR2RGB)
    expect = cv2.resize(photo, (48, 32), interpolation=cv2.INTER_AREA)
    assert np.abs(np.load(out / "train_images.npy")[3].astype(int) - expect).max() <= 1
    full = cv2.imread(str(sample / f"train/labels/{stem}.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(np.load(out / "train_labels.npy")[3])) <= set(np.unique(full))
    # Class statistics add up to the pixels of each split.
    stats = json.loads((out / "class_stats.json").read_text())
    assert len(stats["classes"]) == 29 and sum(stats["train"]["pixels"]) == 10 * 32 * 48
    assert sum(stats["val"]["pixels"]) == 2 * 32 * 48
    # Validation maps at original size, references from the train split only.
    val_pairs = json.loads((out / "val_pairs.json").read_text())
    assert sorted(val_pairs) == sorted(f"{s}.png" for s in index["val"])
    assert all(v[:-4] in index["train"] for v in val_pairs.values())
    for s in index["val"]:
        copy = cv2.imread(str(out / f"val/labels/{s}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(copy, cv2.imread(str(sample / f"train/labels/{s}.png"), cv2.IMREAD_UNCHANGED))
    test_pairs = json.loads((out / "test_pairs.json").read_text())
    assert test_pairs == json.loads((sample / "test/label_to_img.json").read_text())
    assert man["inputs"].keys() == {"sample-data"}


def test_rerun_is_a_noop_until_inputs_or_config_change(sample, tmp_path):
    cfg = tiny_config()
    out = tmp_path / "pp"
    run_preprocess(cfg, DatasetParts.find(sample), out, progress=False)
    before = (out / "manifest.json").read_bytes()
    again = run_preprocess(cfg, DatasetParts.find(sample), out, progress=False)
    assert again.up_to_date and "up to date" in again.summary[0]
    assert (out / "manifest.json").read_bytes() == before
    changed = run_preprocess(tiny_config(canny_low=50), DatasetParts.find(sample), out, progress=False)
    assert not changed.up_to_date
    # a touched input file (new mtime) makes it run again
    label = next((sample / "train/labels").iterdir())
    os.utime(label, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert not run_preprocess(tiny_config(canny_low=50), DatasetParts.find(sample), out, progress=False).up_to_date


def test_split_is_deterministic_and_seeded(sample, tmp_path):
    def val_of(seed, name):
        cfg = tiny_config()
        import dataclasses
        cfg = dataclasses.replace(cfg, seed=seed)
        run_preprocess(cfg, DatasetParts.find(sample), tmp_path / name, progress=False)
        return json.loads((tmp_path / name / "index.json").read_text())["val"]

    assert val_of(0, "a") == val_of(0, "b")
    assert any(val_of(s, f"s{s}") != val_of(0, "a") for s in (1, 2, 3))


def test_parallel_decoding_gives_the_same_arrays(sample, tmp_path):
    run_preprocess(tiny_config(), DatasetParts.find(sample), tmp_path / "one", progress=False)
    run_preprocess(tiny_config(workers=2), DatasetParts.find(sample), tmp_path / "two", progress=False)
    for name in ("train_images", "train_labels", "train_edges", "val_images"):
        assert np.array_equal(np.load(tmp_path / f"one/{name}.npy"), np.load(tmp_path / f"two/{name}.npy"))


def test_drop_list_and_val_count_clamp(tmp_path):
    data = make_dataset(tmp_path / "d", n_train=8)
    drop = tmp_path / "drop.txt"
    drop.write_text("# dirty images\nimg1\nimg2.jpg\n")
    out = tmp_path / "pp"
    res = run_preprocess(tiny_config(drop_list=str(drop), val_count=50), DatasetParts.find(data), out,
                         progress=False)
    index = json.loads((out / "index.json").read_text())
    assert index["dropped"] == ["img1", "img2"] and "dropped 2" in res.summary[0]
    assert len(index["val"]) == 1 and len(index["train"]) == 5  # val clamped to a quarter of 6
    with pytest.raises(ConfigError, match="data.drop_list"):
        run_preprocess(tiny_config(drop_list="missing.txt"), DatasetParts.find(data), out, progress=False)


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    data = make_dataset(tmp_path / "d")
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.txt").write_text("do not delete")
    with pytest.raises(ArtifactError, match="only replaces its own folders"):
        run_preprocess(tiny_config(), DatasetParts.find(data), out, progress=False)
    assert (out / "thesis.txt").exists()


def test_resizes_labels_with_nearest_and_photos_to_training_size(tmp_path):
    data = make_dataset(tmp_path / "d", n_train=4, n_test=0, size=(96, 64))
    (data / "test/label_to_img.json").unlink()
    (data / "test/labels").rmdir()
    out = tmp_path / "pp"
    run_preprocess(tiny_config(val_count=0), DatasetParts.find(data), out, progress=False)
    labs = np.load(out / "train_labels.npy")
    assert labs.shape == (4, 32, 48)
    for i, stem in enumerate(json.loads((out / "index.json").read_text())["train"]):
        full = label_array(int(stem[3:]), (96, 64))
        assert np.array_equal(labs[i], full[::2, ::2])  # exact 2x nearest


def test_npy_rows_round_trip_and_compaction(tmp_path):
    f = NpyRows(tmp_path / "a.npy", 5, (3, 2))
    items = [np.full((3, 2), i, np.uint8) for i in range(5)]
    for i in (4, 0, 2, 1, 3):  # any order
        write_row(f.spec(), i, items[i])
    f.finish([0, 1, 2, 3, 4])
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.stack(items))
    g = NpyRows(tmp_path / "b.npy", 5, (3, 2))
    for i in (0, 2, 4):  # rows 1 and 3 failed: holes
        write_row(g.spec(), i, items[i])
    g.finish([0, 2, 4])
    assert np.array_equal(np.load(tmp_path / "b.npy", mmap_mode="r"), np.stack(items[::2]))
    assert (tmp_path / "b.npy").stat().st_size == NpyRows.HEADER + 3 * 6
    with pytest.raises(ValueError):
        write_row(g.spec(), 0, np.zeros((2, 2), np.uint8))
    NpyRows(tmp_path / "c.npy", 0, (3, 2)).finish([])
    assert np.load(tmp_path / "c.npy").shape == (0, 3, 2)


def test_skipped_pairs_leave_no_holes(tmp_path):
    data = make_dataset(tmp_path / "d", n_train=8, n_test=0)
    (data / "test/label_to_img.json").unlink()
    (data / "test/labels").rmdir()
    for i in (2, 5):
        (data / f"train/imgs/img{i}.jpg").write_bytes(b"broken")
    out = tmp_path / "pp"
    run_preprocess(tiny_config(val_count=0), DatasetParts.find(data), out, skip_bad=True, progress=False)
    index = json.loads((out / "index.json").read_text())
    assert index["train"] == ["img0", "img1", "img3", "img4", "img6", "img7"]
    labs = np.load(out / "train_labels.npy")
    for row, stem in enumerate(index["train"]):  # each row holds its own stem's map
        assert labs[row][0, 0] == 1 and labs[row][-1, 0] == 12
        assert labs[row][20, 40] == (5 + int(stem[3:])) % 29


def test_grey_photo_with_palette_label_end_to_end(tmp_path):
    data = make_dataset(tmp_path / "d", n_train=4, n_test=1)
    Image.fromarray(np.full((48, 64), 90, np.uint8)).save(data / "train/imgs/img0.jpg")
    out = tmp_path / "pp"
    run_preprocess(tiny_config(val_count=0), DatasetParts.find(data), out, progress=False)
    index = json.loads((out / "index.json").read_text())
    row = index["train"].index("img0")
    img = np.load(out / "train_images.npy")[row]
    assert img.shape == (32, 48, 3) and np.all(img[..., 0] == img[..., 1])



# ============================================================================ golden bytes
# Recorded from preprocess.py as of commit f2733ed (before the issue-11 speed work), so that a
# rewrite provably changes no output byte. Input: `landscape sample-data --train 24 --test 4
# --seed 0 --width 128 --height 96`, whose own digest is pinned first: a change of the sample
# generator (or of OpenCV's codecs) then reads as such, not as a preprocess change.
GOLDEN_INPUT = "e2e2bb88baf321a3c55752d4fa94d31c45cd6b8ca147fe189b1ef33892463155"
GOLDEN_OUTPUT = {  # case -> digest of every output file but the manifest (see _tree_digest)
    "resize": "3792ce3dab68a9efda84a339697b13daa25aedffcfeebc2a90cdc9e0c8a09b91",
    "full-size": "8b6bc15737606659f3c3843e69c2aadf01c4337a343dcda383998fecf7034a20",
    "skip-bad": "a072413d44e547442d7b9f104b2523c5940ba7b978aa30ebd0b09b0eee5b3795"  # one val pair skipped,
}
GOLDEN_CASES = {  # case -> (config overrides, break two files and pass --skip-bad)
    "resize": (["data.height=48", "data.width=64", "data.val_count=4"], False),
    "full-size": (["data.height=96", "data.width=128", "data.val_count=4"], False),
    "skip-bad": (["data.height=48", "data.width=64", "data.val_count=4"], True),
}


def _tree_digest(root, data_root) -> tuple[str, dict[str, str]]:
    """(sha256 over every file under `root` but manifest.json and locks, {relative path: sha256});
    index.json with its absolute paths made relative to `data_root` (a temporary folder)."""
    import hashlib

    files = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or rel == "manifest.json" or ".lock" in rel:
            continue
        data = p.read_bytes()
        if rel == "index.json":
            index = json.loads(data)
            index["paths"] = {k: v and os.path.relpath(v, data_root) for k, v in index["paths"].items()}
            for key in ("skipped", "converted"):
                index[key] = [{**e, "file": os.path.relpath(e["file"], data_root)} for e in index[key]]
            data = json.dumps(index, sort_keys=True).encode()
        files[rel] = hashlib.sha256(data).hexdigest()
    text = "".join(f"{k} {v}\n" for k, v in files.items())
    return hashlib.sha256(text.encode()).hexdigest(), files


@pytest.fixture(scope="module")
def golden_raw(tmp_path_factory):
    from pipeline.core.cli import main

    out = tmp_path_factory.mktemp("golden") / "raw"
    main(["sample-data", "--out", str(out), "--train", "24", "--test", "4", "--seed", "0",
          "--width", "128", "--height", "96", "--quiet"])  # exits (fails the test) on an error
    (out / "manifest.json").unlink()  # holds its run time; the data files are what is pinned
    return out


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_output_bytes_are_the_recorded_ones(golden_raw, tmp_path, case, workers):
    import shutil

    assert _tree_digest(golden_raw, golden_raw)[0] == GOLDEN_INPUT, "the sample dataset changed"
    sets, broken = GOLDEN_CASES[case]
    data = tmp_path / "raw"
    shutil.copytree(golden_raw, data)
    if broken:
        (data / "train/imgs/train_00005.jpg").write_bytes(b"not a jpeg")
        (data / "train/labels/train_00011.png").write_bytes(b"")
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "demo.toml",
                      [*sets, f"data.workers={workers}"])
    out = tmp_path / "pp"
    run_preprocess(cfg, DatasetParts.find(data), out, skip_bad=broken, progress=False)
    digest, files = _tree_digest(out, data)
    assert digest == GOLDEN_OUTPUT[case], files


@pytest.mark.parametrize("shape", [(32, 48), (7, 9), (1, 2), (1, 1), (96, 128)])
def test_class_counts_match_bincount(shape):
    rng = np.random.default_rng(sum(shape))
    blocks = rng.integers(0, 29, (3, 3)).astype(np.uint8)
    labels = cv2.resize(blocks, shape[::-1], interpolation=cv2.INTER_NEAREST)  # runs of one class
    labels[rng.random(shape) < 0.1] = 28
    got = class_counts(labels)
    assert got.dtype == np.int64 and got.shape == (29,)
    assert np.array_equal(got, np.bincount(labels.ravel(), minlength=29))
    assert class_counts(np.full((384, 512), 28, np.uint8))[28] == 384 * 512  # one run of 196,608

"""resolve_inputs, resolve_split and load_pairs: the checked way generate and evaluate find a
split's files ("--data DIR --split S, or explicit paths")."""

from __future__ import annotations

import shutil

import pytest

from pipeline.data.layout import DatasetParts
from pipeline.data.preprocess import run_preprocess
from pipeline.core.errors import ArtifactError, ConfigError, DatasetError
from pipeline.core.inputs import SplitInputs, load_pairs, resolve_inputs, resolve_split, unsafe_reference

from .data_helpers import make_dataset, tiny_config


@pytest.fixture
def pre(tmp_path):
    data = make_dataset(tmp_path / "d")
    out = tmp_path / "pp"
    run_preprocess(tiny_config(), DatasetParts.find(data), out, progress=False)
    return data, out


def test_resolve_val_and_test(pre):
    data, out = pre
    val = resolve_split(out, "val")
    assert val.labels_dir == out / "val/labels" and val.gt_photos_dir == (data / "train/imgs").resolve()
    pairs = load_pairs(val.pairs_json, val.labels_dir, val.refs_dir)
    assert len(pairs) == 2 and all((val.refs_dir / v).is_file() for v in pairs.values())
    assert all((val.gt_photos_dir / (k[:-4] + ".jpg")).is_file() for k in pairs)
    test = resolve_split(out, "test")
    assert test.gt_photos_dir is None and test.labels_dir == (data / "test/labels").resolve()
    assert load_pairs(test.pairs_json, test.labels_dir, test.refs_dir) == {
        "t0.png": "img0.jpg", "t1.png": "img1.jpg", "t2.png": "img2.jpg"}
    with pytest.raises(ValueError):
        resolve_split(out, "train")


def test_resolve_refuses_missing_stale_or_moved(pre, tmp_path):
    data, out = pre
    with pytest.raises(ArtifactError, match="landscape preprocess"):
        resolve_split(tmp_path / "nothing", "val")
    shutil.move(str(data / "test/labels"), str(tmp_path / "moved"))
    with pytest.raises(DatasetError, match="folder is gone"):
        resolve_split(out, "test")
    (out / "val_pairs.json").write_text("{}")  # changed size: tampered
    with pytest.raises(ArtifactError, match="no longer match"):
        resolve_split(out, "val")


def test_no_test_part(tmp_path):
    data = make_dataset(tmp_path / "d", n_test=0)
    (data / "test/label_to_img.json").unlink()
    (data / "test/labels").rmdir()
    run_preprocess(tiny_config(), DatasetParts.find(data), tmp_path / "pp", progress=False)
    with pytest.raises(DatasetError, match="without a test part"):
        resolve_split(tmp_path / "pp", "test")


@pytest.mark.parametrize("content, needle", [
    ("not json", "not valid JSON"),
    ("[1, 2]", "holds a JSON list"),
    ('{"t0.png": 3}', "is not a string"),
    ('{"t0.png": "img0.jpg", "t1.png": "img1.jpg", "t2.png": "img2.jpg", "zz.png": "img0.jpg"}',
     "'zz.png' names a label map"),
    ('{"t0.png": "img0.jpg", "t1.png": "img9.jpg", "t2.png": "img2.jpg"}', "no such photo"),
    ('{"t0.png": "img0.jpg", "t1.png": "../labels/img1.png", "t2.png": "img2.jpg"}', "no '../'"),
    ('{"t0.png": "img0.jpg", "t1.png": "/abs/img1.jpg", "t2.png": "img2.jpg"}', "no '../'"),
    # a Windows-style parent path is a path outside the photos folder (it was called a hidden file)
    ('{"t0.png": "img0.jpg", "t1.png": "..\\\\x.jpg", "t2.png": "img2.jpg"}',
     "'t1.png' -> '..\\x.jpg': a path outside"),
    ('{"t0.png": "img0.jpg", "t1.png": "img1.jpg", "t2.png": "img2.jpg", "..\\\\t0.png": "img0.jpg"}',
     "'..\\t0.png' is a path outside the label maps folder"),
    ('{"t0.png": "img0.jpg", "t1.png": "img1.jpg"}', "t2.png: has no entry"),
])
def test_load_pairs_errors(tmp_path, content, needle):
    data = make_dataset(tmp_path / "d")
    pj = tmp_path / "pairs.json"
    pj.write_text(content)
    with pytest.raises(DatasetError) as err:
        load_pairs(pj, data / "test/labels", data / "train/imgs")
    assert needle in str(err.value) and "pairs.json" in str(err.value)


def test_unsafe_reference():
    for bad in ("../x.jpg", "/x.jpg", "a/../../x.jpg", "C:\\x.jpg", "", "\\\\server\\x.jpg"):
        assert unsafe_reference(bad), bad
    for ok in ("x.jpg", "sub/x.jpg"):
        assert not unsafe_reference(ok)


# ---------------------------------------------------------------------------- resolve_inputs
def test_resolve_inputs_from_data_and_split(sample_preprocessed, sample_raw):
    val = resolve_inputs(sample_preprocessed, "val", need=("labels", "pairs", "refs", "gt_photos"))
    sp = resolve_split(sample_preprocessed, "val")
    assert val == SplitInputs(sp.labels_dir, sp.pairs_json, sp.refs_dir, sp.train_photos_dir,
                              sp.gt_photos_dir, "val", sample_preprocessed)
    assert len(val.load_pairs()) == 4 and val.refs_dir == (sample_raw / "train/imgs").resolve()
    test = resolve_inputs(sample_preprocessed, "test")
    assert test.split == "test" and test.gt_photos_dir is None and len(test.load_pairs()) == 4
    with pytest.raises(ConfigError, match="missing --gt-photos DIR"):  # the organisers keep them
        resolve_inputs(sample_preprocessed, "test", need=("labels", "gt_photos"))
    assert resolve_inputs(sample_preprocessed, None, default_split="val").split == "val"


def test_resolve_inputs_explicit_paths_and_their_mix(sample_preprocessed, sample_raw, tmp_path):
    val = resolve_inputs(sample_preprocessed, "val")
    explicit = resolve_inputs(labels=val.labels_dir, pairs=val.pairs_json, refs=val.refs_dir)
    assert (explicit.labels_dir, explicit.pairs_json, explicit.refs_dir) == (
        val.labels_dir, val.pairs_json, val.refs_dir)
    assert explicit.split == "" and explicit.data_dir is None and explicit.train_photos_dir is None
    refs = tmp_path / "refs"
    refs.mkdir()
    mixed = resolve_inputs(sample_preprocessed, "val", refs=refs)  # an explicit part wins
    assert mixed.refs_dir == refs and mixed.labels_dir == val.labels_dir
    only_maps = resolve_inputs(labels=val.labels_dir, need=("labels",))
    assert only_maps.pairs_json is None and only_maps.refs_dir is None


@pytest.mark.parametrize("kwargs, error, needle", [
    ({"data_dir": "DATA"}, ConfigError, "--data needs --split val|test"),
    ({"split": "val"}, ConfigError, "--split val needs --data DIR"),
    ({"labels": "LABELS"}, ConfigError,
     "missing --pairs JSON, --refs DIR: give either --data DIR --split val|test, or --labels DIR --pairs JSON --refs DIR"),
    ({}, ConfigError, "missing --labels DIR, --pairs JSON, --refs DIR"),
    ({"labels": "LABELS", "pairs": "NOPE", "refs": "LABELS"}, DatasetError, "NOPE: --pairs file not found"),
])
def test_resolve_inputs_refusals(sample_preprocessed, tmp_path, kwargs, error, needle):
    paths = {"DATA": str(sample_preprocessed), "LABELS": str(sample_preprocessed / "val/labels"),
             "NOPE": str(tmp_path / "nope.json")}
    kwargs = {k: paths.get(v, v) for k, v in kwargs.items()}
    with pytest.raises(error) as err:
        resolve_inputs(**kwargs)
    assert needle.replace("NOPE", paths["NOPE"]) in str(err.value)

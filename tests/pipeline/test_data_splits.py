"""resolve_split and load_pairs: the checked way generate and evaluate find a split's files."""

from __future__ import annotations

import shutil

import pytest

from pipeline.data.layout import DatasetParts
from pipeline.data.preprocess import run_preprocess
from pipeline.core.inputs import load_pairs, resolve_split, unsafe_reference
from pipeline.core.errors import ArtifactError, DatasetError

from .data_helpers import make_dataset, tiny_config


@pytest.fixture
def pre(tmp_path):
    data = make_dataset(tmp_path / "d")
    out = tmp_path / "pp"
    run_preprocess(DatasetParts.find(data), out, tiny_config(), progress=False)
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
    run_preprocess(DatasetParts.find(data), tmp_path / "pp", tiny_config(), progress=False)
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

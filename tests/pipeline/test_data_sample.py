"""The built-in sample dataset: layout, determinism, class coverage, styles."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from pipeline.core.artifacts import read_manifest
from pipeline.core.classes import CLASS_ID, NUM_CLASSES
from pipeline.data.layout import DatasetParts, read_label, read_photo, scan_dataset
from pipeline.data.sample import SCENES, STYLES, make_scene, sample_pair, write_sample_dataset
from pipeline.core.errors import DatasetError


def files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("s") / "ds"
    write_sample_dataset(root, 10, 4, seed=7, height=96, width=128, progress=False)
    return root


def test_layout_is_the_competitions(ds):
    assert sorted(p.name for p in (ds / "train/imgs").iterdir())[:2] == ["train_00000.jpg", "train_00001.jpg"]
    assert len(list((ds / "train/labels").glob("*.png"))) == 10
    assert len(list((ds / "test/labels").glob("*.png"))) == 4
    pairs = json.loads((ds / "test/label_to_img.json").read_text())
    assert sorted(pairs) == [f"test_0000{i}.png" for i in range(4)]
    assert all((ds / "train/imgs" / v).is_file() for v in pairs.values())
    man = read_manifest(ds, "sample-data", deep=True)
    assert man["counts"] == {"train": 10, "test": 4}
    # the dataset passes the reader's checks
    scan = scan_dataset(DatasetParts.find(ds))
    assert scan.problems == [] and len(scan.train) == 10 and len(scan.pairs) == 4
    photo, note = read_photo(ds / "train/imgs/train_00000.jpg")
    label = read_label(ds / "train/labels/train_00000.png")
    assert photo.shape == (96, 128, 3) and note is None and label.shape == (96, 128)
    assert cv2.imread(str(ds / "train/labels/train_00000.png"), cv2.IMREAD_UNCHANGED).ndim == 2  # grey


def test_same_seed_same_bytes_other_seed_differs(ds, tmp_path):
    write_sample_dataset(tmp_path / "again", 10, 4, seed=7, height=96, width=128, progress=False)
    assert files(tmp_path / "again") == files(ds)
    write_sample_dataset(tmp_path / "other", 10, 4, seed=8, height=96, width=128, progress=False)
    other = files(tmp_path / "other")
    assert other.keys() == files(ds).keys()
    assert sum(other[k] != v for k, v in files(ds).items()) >= 12


def test_prefix_property_and_replacing_an_old_sample(tmp_path):
    write_sample_dataset(tmp_path / "s", 3, 0, seed=1, height=48, width=64, progress=False)
    small = files(tmp_path / "s")
    write_sample_dataset(tmp_path / "s", 5, 1, seed=1, height=48, width=64, progress=False)  # replaces it
    big = files(tmp_path / "s")
    small_styles, big_styles = (json.loads(d.pop("train/styles.json")) for d in (small, big))
    assert all(big[k] == v for k, v in small.items()) and len(big) == 5 * 2 + 2
    assert len(big_styles) == 5 and small_styles.items() <= big_styles.items()


def test_class_coverage_and_real_ids(tmp_path):
    seen = np.zeros(NUM_CLASSES, bool)
    for i in range(40):
        label, _, _ = sample_pair(3, i, height=96, width=128)
        seen[np.unique(label)] = True
    names = {n for n, i in CLASS_ID.items() if seen[i]}
    assert len(names) >= 12, names
    assert {"sky", "mountain", "hill", "sea", "lake", "river", "tree", "grass", "field", "sand",
            "rock"} <= names
    assert seen.nonzero()[0].max() < NUM_CLASSES


def test_every_scene_kind_is_plausible():
    rng = np.random.default_rng(0)
    for kind in SCENES:
        label, part, info = make_scene(rng, 96, 128, kind)
        assert label.dtype == np.uint8 and label.shape == (96, 128)
        assert (label[0] == CLASS_ID["sky"]).mean() > 0.5  # sky on top
        assert (label[-1] != CLASS_ID["sky"]).all()  # ground at the bottom
        assert 0 < info["horizon"] < 96


def test_style_moves_colours_together():
    """The same layout in two styles: the photos differ in overall colour, the classes stay apart."""
    from pipeline.data.sample import render_photo

    rng = np.random.default_rng(2)
    label, part, info = make_scene(rng, 96, 128, "coast")
    means = []
    for style in STYLES:
        photo = render_photo(label, part, info["horizon"], style, np.random.default_rng(0))
        means.append(photo.reshape(-1, 3).mean(0))
        sky = photo[label == CLASS_ID["sky"]].mean(0)
        sea = photo[label == CLASS_ID["sea"]].mean(0)
        assert np.abs(sky - sea).sum() > 15, style.name  # water and sky stay distinguishable
    means = np.array(means)
    assert np.ptp(means, axis=0).max() > 40  # styles shift the whole picture


def test_refuses_to_overwrite_other_folders(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a sample-data folder"):
        write_sample_dataset(tmp_path / "mine", 2, 1, progress=False)
    with pytest.raises(DatasetError, match="at least 1 training pair"):
        write_sample_dataset(tmp_path / "x", 0, 1, progress=False)


def test_cli(tmp_path, capsys):
    from pipeline.cli import main

    main(["sample-data", "--out", str(tmp_path / "c"), "--train", "3", "--test", "2", "--seed", "4",
          "--width", "64", "--height", "48", "--quiet"])
    assert "3 training pairs and 2 test maps" in capsys.readouterr().out
    assert len(list((tmp_path / "c/train/imgs").iterdir())) == 3

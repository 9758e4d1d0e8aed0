"""Dataset validation: every bad-input case gets a message naming the file; --skip-bad lists it;
nothing is written when validation fails."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from pipeline.data.layout import DatasetParts, read_label, read_photo, BadFile, scan_dataset
from pipeline.data.preprocess import run_preprocess
from pipeline.core.errors import DatasetError

from .data_helpers import H, W, label_array, make_dataset, photo_array, tiny_config


@pytest.fixture
def data(tmp_path):
    return make_dataset(tmp_path / "data")


def preprocess(data, tmp_path, skip_bad=False, **kw):
    out = tmp_path / "artifacts" / "data" / "x"
    res = run_preprocess(tiny_config(), DatasetParts.find(data, **kw), out, skip_bad=skip_bad, progress=False)
    return out, res


def expect_failure(data, tmp_path, *needles, **kw):
    """Preprocess must fail naming every needle, write nothing, and with --skip-bad list the file."""
    with pytest.raises(DatasetError) as err:
        preprocess(data, tmp_path, **kw)
    msg = str(err.value)
    for needle in needles:
        assert needle in msg, msg
    assert "nothing was written" in msg
    assert not (tmp_path / "artifacts").exists()  # not even the parent folders
    out, res = preprocess(data, tmp_path, skip_bad=True, **kw)
    skipped = json.loads((out / "index.json").read_text())["skipped"]
    assert any(needles[0] in s["file"] + ": " + s["reason"] for s in skipped), skipped
    assert "skipped" in res.summary[0]
    return msg, json.loads((out / "index.json").read_text())


def test_valid_dataset_passes(data, tmp_path):
    out, res = preprocess(data, tmp_path)
    index = json.loads((out / "index.json").read_text())
    assert index["skipped"] == [] and len(index["train"]) + len(index["val"]) == 8
    assert index["test"] == ["t0.png", "t1.png", "t2.png"]


def test_label_value_above_28(data, tmp_path):
    lab = label_array(0)
    lab[0, 0] = 200
    Image.fromarray(lab).save(data / "train/labels/img2.png")
    msg, index = expect_failure(data, tmp_path, "img2.png", "label value 200 > 28")
    assert "img2" not in index["train"] + index["val"]


def test_rgb_label_with_equal_channels_is_accepted(data, tmp_path):
    lab = label_array(1)
    Image.fromarray(np.stack([lab] * 3, -1)).save(data / "train/labels/img1.png")
    assert np.array_equal(read_label(data / "train/labels/img1.png"), lab)
    out, _ = preprocess(data, tmp_path)
    index = json.loads((out / "index.json").read_text())
    assert "img1" in index["train"] + index["val"]


def test_rgb_label_with_colours_is_refused(data, tmp_path):
    rgb = np.stack([label_array(1)] * 3, -1)
    rgb[..., 0] = 3
    Image.fromarray(rgb).save(data / "train/labels/img1.png")
    expect_failure(data, tmp_path, "img1.png", "colour RGB PNG")


def test_grey_palette_label_is_accepted_colour_palette_refused(data, tmp_path):
    lab = label_array(2)
    grey = Image.frombytes("P", (W, H), lab.tobytes())
    grey.putpalette([v for g in range(256) for v in (g, g, g)])
    grey.save(data / "train/labels/img2.png")
    assert np.array_equal(read_label(data / "train/labels/img2.png"), lab)
    # Palette index 5 shown as grey 7: the grey level is the class id.
    shifted = Image.frombytes("P", (W, H), lab.tobytes())
    shifted.putpalette([v for g in range(256) for v in ((g + 2) % 256,) * 3])
    shifted.save(data / "train/labels/img3.png")
    assert np.array_equal(read_label(data / "train/labels/img3.png"), lab + 2)
    colour = Image.frombytes("P", (W, H), lab.tobytes())
    colour.putpalette([v for g in range(256) for v in (g, 255 - g, 0)])
    colour.save(data / "train/labels/img4.png")
    expect_failure(data, tmp_path, "img4.png", "colour palette PNG")


def test_photo_that_does_not_decode(data, tmp_path):
    (data / "train/imgs/img3.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    expect_failure(data, tmp_path, "img3.jpg", "does not decode")


def test_truncated_photo(data, tmp_path):
    p = data / "train/imgs/img3.jpg"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    expect_failure(data, tmp_path, "img3.jpg", "truncated")


def test_truncated_label(data, tmp_path):
    p = data / "train/labels/img5.png"
    p.write_bytes(p.read_bytes()[: p.stat().st_size - 30])
    expect_failure(data, tmp_path, "img5.png", "label map")


def test_photo_without_label_and_label_without_photo(data, tmp_path):
    (data / "train/labels/img6.png").unlink()
    (data / "train/imgs/img7.jpg").unlink()
    msg, index = expect_failure(data, tmp_path, "img6.jpg", "photo without a label map", "img7.png",
                                "label map without a photo")
    files = [s["file"] for s in index["skipped"]]
    assert any(f.endswith("img7.png") for f in files)


def test_size_mismatch(data, tmp_path):
    Image.fromarray(photo_array(4, (60, 40))).save(data / "train/imgs/img4.jpg")
    expect_failure(data, tmp_path, "img4.jpg", "photo is 60x40 but its label map img4.png is 64x48")


def test_grey_and_cmyk_photos_are_converted(data, tmp_path):
    Image.fromarray(photo_array(1)).convert("L").save(data / "train/imgs/img1.jpg")
    Image.fromarray(photo_array(2)).convert("CMYK").save(data / "train/imgs/img2.jpg")
    arr, note = read_photo(data / "train/imgs/img2.jpg")
    assert arr.shape == (H, W, 3) and "CMYK photo" in note
    out, res = preprocess(data, tmp_path)
    index = json.loads((out / "index.json").read_text())
    notes = {os.path.basename(c["file"]): c["reason"] for c in index["converted"]}
    assert "grey photo" in notes["img1.jpg"] and "CMYK photo" in notes["img2.jpg"]
    assert index["skipped"] == [] and "converted 2" in res.summary[0]


def test_duplicate_stems(data, tmp_path):
    Image.fromarray(photo_array(0)).save(data / "train/imgs/img0.png")
    expect_failure(data, tmp_path, "img0.jpg", "duplicate stem 'img0'")


def test_jpeg_label_is_refused(data, tmp_path):
    Image.fromarray(label_array(0)).save(data / "train/labels/extra.jpg")
    expect_failure(data, tmp_path, "extra.jpg", "must be lossless grey PNGs")


def test_pairs_not_json(data, tmp_path):
    (data / "test/label_to_img.json").write_text('{"t0.png": "img0.jpg",')
    for kw in ({}, {"skip_bad": True}):  # the whole file is unusable: stops even with --skip-bad
        with pytest.raises(DatasetError, match=r"label_to_img.json: not valid JSON"):
            preprocess(data, tmp_path, **kw)
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize("pairs, needle", [
    ({"t0.png": "img0.jpg", "t1.png": "img1.jpg", "t2.png": "img2.jpg", "t9.png": "img1.jpg"},
     "'t9.png' names a label map that is not in the label maps folder"),
    ({"t0.png": "img0.jpg", "t1.png": "nope.jpg", "t2.png": "img2.jpg"},
     "'t1.png' -> 'nope.jpg': no such photo"),
    ({"t0.png": "img0.jpg", "t1.png": "../imgs/img1.jpg", "t2.png": "img2.jpg"},
     "no '../' or absolute paths"),
    ({"t0.png": "img0.jpg", "t1.png": "/etc/passwd", "t2.png": "img2.jpg"}, "no '../' or absolute paths"),
    ({"t0.png": "img0.jpg", "t1.png": "img1.jpg"}, "t2.png: has no entry in"),
])
def test_pairing_problems(data, tmp_path, pairs, needle):
    (data / "test/label_to_img.json").write_text(json.dumps(pairs))
    msg, index = expect_failure(data, tmp_path, needle)
    assert "label_to_img.json" in msg
    out = tmp_path / "artifacts/data/x"
    kept = json.loads((out / "test_pairs.json").read_text())
    assert set(kept) <= {"t0.png", "t1.png", "t2.png"} and "t0.png" in kept
    if len(kept) < 3:  # the test split then points at a copy of exactly the usable maps
        assert index["paths"]["test_labels"] == str(out / "test" / "labels")
        assert sorted(p.name for p in (out / "test/labels").iterdir()) == sorted(kept)
    else:  # only the stray entry was dropped: the maps stay where they are
        assert index["paths"]["test_labels"] == str(data / "test" / "labels")


def test_empty_folder(data, tmp_path):
    for p in (data / "test/labels").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match=r"test/labels: empty folder"):
        preprocess(data, tmp_path)
    for p in (data / "train/imgs").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match=r"train/imgs: empty folder"):
        preprocess(data, tmp_path, skip_bad=True)
    assert not (tmp_path / "artifacts").exists()


def test_missing_training_folder_and_explicit_paths(tmp_path):
    data = make_dataset(tmp_path / "d")
    (data / "train/imgs").rename(tmp_path / "photos")
    with pytest.raises(DatasetError, match=r"train/imgs: folder not found.*--train-imgs"):
        DatasetParts.find(data)
    parts = DatasetParts.find(data, train_imgs=tmp_path / "photos")
    assert parts.train_imgs == (tmp_path / "photos").resolve()
    with pytest.raises(DatasetError, match="--test-labels folder not found"):
        DatasetParts.find(data, train_imgs=tmp_path / "photos", test_labels=tmp_path / "nowhere")


def test_organisers_folder_names_are_found(tmp_path):
    data = make_dataset(tmp_path / "d")
    (data / "test/labels").rename(data / "test/val_B_labels_resized")
    (data / "test/label_to_img.json").rename(data / "label_to_img.json")
    parts = DatasetParts.find(data)
    assert parts.test_labels.name == "val_B_labels_resized" and parts.pairs == data / "label_to_img.json"
    assert len(scan_dataset(parts).pairs) == 3
    (data / "label_to_img.json").unlink()
    with pytest.raises(DatasetError, match="no label_to_img.json.*--pairs"):
        DatasetParts.find(data)


def test_no_test_part_is_allowed(tmp_path):
    data = make_dataset(tmp_path / "d", n_test=0)
    (data / "test/label_to_img.json").unlink()
    (data / "test/labels").rmdir()
    out, res = preprocess(data, tmp_path)
    assert not (out / "test_pairs.json").exists()
    assert json.loads((out / "index.json").read_text())["paths"]["test_labels"] is None


def test_read_label_refuses_garbage(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(BadFile, match="label map"):
        read_label(p)


def test_cli_prints_one_red_line(data, tmp_path, capsys, root):
    from pipeline.cli import main

    lab = label_array(0)
    lab[3, 3] = 99
    Image.fromarray(lab).save(data / "train/labels/img0.png")
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as exit_:
        main(["preprocess", "--data", str(data), "--out", str(out), "--quiet",
              "--config", str(root / "configs" / "demo.toml"), "--set", "data.workers=1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "img0.png: label value 99 > 28" in err and "Traceback" not in err
    assert not out.exists()

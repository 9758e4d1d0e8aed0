import numpy as np
import pytest
import torch

from evaluation.fit_segformer import run_fit_segformer
from evaluation.weights import CONVERTED_SHA256, LAION_HEAD_FILE, fill_weights, format_table
from pipeline.core.artifacts import read_manifest, sha256_file, write_manifest
from pipeline.core.config import load_config
from pipeline.core.errors import ArtifactError

from .conftest import flat_arrays, tiny_fit_overrides


def test_converted_fid_weights_are_verified_and_reproducible(fid_weights):
    # the fixture converted them (or found them in weights/) after the 1e-5 feature check
    assert sha256_file(fid_weights) == CONVERTED_SHA256


def test_weights_table_offline_lists_what_to_place(tmp_path, fid_weights, tiny_clip):
    import shutil

    wdir = tmp_path / "w"
    wdir.mkdir()
    shutil.copy(fid_weights, wdir / fid_weights.name)  # present: no second conversion
    _, head = tiny_clip
    shutil.copy(head.with_suffix(".pth"), wdir / LAION_HEAD_FILE)  # a placed .pth gets converted
    rows = {r.name.split(" (")[0]: r for r in fill_weights(wdir, download=False, log=lambda s: None)}
    assert rows["FID Inception"].status == "present" and rows["FID Inception"].sha256 == CONVERTED_SHA256
    assert rows["LAION aesthetic head"].status == "converted"
    assert (wdir / "aesthetic-head.safetensors").is_file()
    assert rows["CLIP ViT-L/14"].status == "MISSING" and "openai/clip-vit-large-patch14" in rows["CLIP ViT-L/14"].how
    assert "landscape fit-segformer" in rows["SegFormer, 29 classes"].how
    table = format_table(list(rows.values()))
    assert CONVERTED_SHA256 in table and "MISSING" in table


def _preprocessed(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    x, y = flat_arrays()
    for name, arr in (("train_images", x), ("train_labels", y), ("val_images", x[:2]), ("val_labels", y[:2])):
        np.save(d / f"{name}.npy", arr)
    write_manifest(d, "preprocess")
    return d


def test_fit_segformer_stage_saves_atomically_with_a_manifest(tmp_path):
    d = _preprocessed(tmp_path)
    cfg = load_config(None, tiny_fit_overrides(3))
    out = tmp_path / "scorer"
    out.mkdir()
    (out / "stale.txt").write_text("old scorer")
    res = run_fit_segformer(cfg, d, out, torch.device("cpu"), progress=False, log=lambda s: None)
    assert 0.0 <= res["val_pixel_accuracy"] <= 1.0
    assert not (out / "stale.txt").exists()  # replaced as a whole, not mixed
    m = read_manifest(out, "fit-segformer", deep=True)
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "fit_log.csv"} <= set(m["files"])
    assert m["extra"]["val_pixel_accuracy"] == res["val_pixel_accuracy"] and m["inputs"]["data"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".scorer")]  # no temp left


def test_fit_segformer_refuses_a_foreign_folder(tmp_path):
    d = tmp_path / "notdata"
    d.mkdir()
    write_manifest(d, "train")
    with pytest.raises(ArtifactError, match="preprocess"):
        run_fit_segformer(load_config(None, tiny_fit_overrides(1)), d, tmp_path / "o", torch.device("cpu"))

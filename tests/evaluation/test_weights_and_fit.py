import os
import shutil
from pathlib import Path

import pytest

from evaluation import weights as weights_mod
from evaluation.feature_extractor_inception import CONVERTED_SHA256, FID_WEIGHTS_NAME
from evaluation.fit_segformer import run_fit_segformer
from evaluation.weights import LAION_HEAD_FILE, fill_weights, format_table
from pipeline.core.artifacts import read_manifest, sha256_file, write_manifest
from pipeline.core.config import load_config
from pipeline.core.errors import ArtifactError

from .conftest import tiny_fit_overrides

UMASK = os.umask(0)
os.umask(UMASK)


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # the conversion checks Inception features (about 20 s on 2 CPU cores)
def test_converted_fid_weights_are_verified_and_reproducible(fid_weights):
    # the fixture converted them (or found them in weights/) after the 1e-5 feature check
    assert sha256_file(fid_weights) == CONVERTED_SHA256


@pytest.mark.slow  # needs the converted Inception
def test_weights_table_offline_lists_what_to_place(tmp_path, fid_weights, tiny_clip):
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


def test_weights_never_replaces_or_deletes_what_it_did_not_write(tmp_path, monkeypatch):
    """weights/ holds files of several sources: each is written atomically under its own name,
    a hub folder is staged beside its name, and nothing the command did not write is touched."""
    wdir = tmp_path / "weights"
    (wdir / "clip-vit-large-patch14").mkdir(parents=True)
    (wdir / "clip-vit-large-patch14" / "model.safetensors").write_bytes(b"half of a hand copy")
    (wdir / FID_WEIGHTS_NAME).write_bytes(b"someone's own Inception")  # unknown content
    (wdir / "notes.txt").write_text("mine")
    before = _tree(wdir)

    def fake_snapshot(repo_id, local_dir, allow_patterns):
        for name in allow_patterns:
            (Path(local_dir) / name).write_text(f"{repo_id}/{name}")
        (Path(local_dir) / ".cache").mkdir()

    def offline(*a, **k):
        raise OSError("offline")

    monkeypatch.setattr(weights_mod, "snapshot_download", fake_snapshot)
    monkeypatch.setattr(weights_mod.urllib.request, "urlopen", offline)
    logged = []
    rows = {r.name.split(" (")[0]: r for r in fill_weights(wdir, download=True, log=logged.append)}
    after = _tree(wdir)
    assert {k: after[k] for k in before} == before  # every file found there is as it was
    assert rows["FID Inception"].status == "unknown" and "left as it is" in rows["FID Inception"].how
    assert rows["CLIP ViT-L/14"].status == "MISSING"  # a hand-made folder is not replaced
    assert any("clip-vit-large-patch14" in line and "did not make" in line for line in logged)
    ade = wdir / "segformer-ade20k"
    assert rows["SegFormer ADE20K"].status == "downloaded"
    assert read_manifest(ade, "weights", deep=True)["stage"] == "weights"
    assert (ade / "config.json").read_text().endswith("config.json") and not (ade / ".cache").exists()
    assert ade.stat().st_mode & 0o777 == 0o777 & ~UMASK  # an ordinary folder, not mkdtemp's 0700
    assert not [p for p in wdir.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]


# ---------------------------------------------------------------------------- fit-segformer
@pytest.mark.slow
def test_fit_segformer_stage_saves_atomically_with_a_manifest(tmp_path, sample_preprocessed):
    cfg = load_config(None, tiny_fit_overrides(3) + ['device="cpu"'])
    out = tmp_path / "scorer"
    write_manifest(out, "fit-segformer")  # an earlier fit-segformer output: replaced as a whole
    (out / "stale.txt").write_text("old scorer")
    result = run_fit_segformer(cfg, sample_preprocessed, out, progress=False, log=lambda s: None)
    assert not (out / "stale.txt").exists()  # replaced as a whole, not mixed
    m = read_manifest(out, "fit-segformer", deep=True)
    assert m == result.manifest and 0.0 <= m["extra"]["val_pixel_accuracy"] <= 1.0
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "fit_log.csv"} <= set(m["files"])
    assert m["inputs"]["data"] and m["extra"]["train_images"] > 0 and m["extra"]["val_images"] == 4
    assert "validation pixel accuracy" in result.summary[0]
    assert out.stat().st_mode & 0o777 == 0o777 & ~UMASK  # normal permissions, not 0700
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".scorer") and not p.name.endswith(".lock")]


def test_fit_segformer_refuses_a_foreign_folder(tmp_path):
    d = tmp_path / "notdata"
    d.mkdir()
    write_manifest(d, "train")
    with pytest.raises(ArtifactError, match="preprocess"):
        run_fit_segformer(load_config(None, tiny_fit_overrides(1)), d, tmp_path / "o", progress=False)


def test_fit_segformer_out_weights_is_refused_and_left_intact(tmp_path, sample_preprocessed):
    wdir = tmp_path / "weights"
    (wdir / "clip-vit-large-patch14").mkdir(parents=True)
    (wdir / "clip-vit-large-patch14" / "config.json").write_text("{}")
    (wdir / FID_WEIGHTS_NAME).write_bytes(b"inception")
    before = _tree(wdir)
    cfg = load_config(None, tiny_fit_overrides(1) + ['device="cpu"'])
    with pytest.raises(ArtifactError, match=r"weights: is a folder this stage did not make"):
        run_fit_segformer(cfg, sample_preprocessed, wdir, progress=False, log=lambda s: None)
    assert _tree(wdir) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".weights.") and p.name.endswith(".tmp")]

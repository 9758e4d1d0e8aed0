import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from evaluation.evaluate import run_evaluate
from evaluation.inputs import resolve_inputs
from evaluation.score import a_board_score
from pipeline.core.artifacts import read_manifest, write_manifest
from pipeline.core.config import load_config
from pipeline.core.errors import ArtifactError, ConfigError, DatasetError

from .conftest import write_flat_case, write_scene_folder

CHEAP = 'evaluate.metrics=["mask-accuracy", "color-hist-corr", "aesthetic"]'  # no Inception


def _cfg(tmp_path, seg, fid_weights=None, *extra):
    """fid_weights: the converted Inception (slow to make); None where FID is not computed."""
    fid_weights = fid_weights or tmp_path / "no-inception.pth"
    return load_config(None, [
        f'evaluate.segformer="{seg}"', f'evaluate.fid_weights="{fid_weights}"',
        f'evaluate.cache_dir="{tmp_path / "cache"}"', f'evaluate.clip="{tmp_path / "no-clip"}"',
        f'evaluate.aesthetic_head="{tmp_path / "no-head.safetensors"}"', "device=\"cpu\"", *extra,
    ])


@pytest.fixture()
def case(tmp_path):
    c = write_flat_case(tmp_path / "val")
    write_scene_folder(tmp_path / "train", 3, seed=5)
    c["train"] = tmp_path / "train"
    return c


def _inputs(case, gen=None):
    return resolve_inputs(gen or case["gen"], labels_dir=case["labels"], pairs_json=case["pairs"],
                          refs_dir=case["refs"], train_photos_dir=case["train"])


def evaluate(cfg, inputs, out, **kw) -> dict:
    """run_evaluate, then the scores.json it wrote."""
    result = run_evaluate(cfg, inputs, out, progress=False, log=lambda s: None, **kw)
    assert result.manifest["stage"] == "evaluate" and result.summary
    return json.loads((out / "scores.json").read_text())


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_evaluate_writes_scores_csv_report_and_manifest(tmp_path, case, tiny_segformer, fid_weights):
    seg, _ = tiny_segformer
    out = tmp_path / "eval"
    scores = evaluate(_cfg(tmp_path, seg, fid_weights), _inputs(case), out)
    t = scores["terms"]
    assert t["mask_accuracy"] == 1.0 and -1 <= t["style"] <= 1 and 0 <= t["aesthetic"] <= 1 and t["fid"] > 0
    assert scores["score"] == pytest.approx(a_board_score(t["mask_accuracy"], t["aesthetic"], t["style"], t["fid"]))
    assert scores["counts"]["images"] == 4
    # KID beside FID (informative): subset size adapted to the 4 generated and 3 reference photos
    kid = scores["metrics"]["fid"]["extra"]["kid"]
    assert t["kid"] == kid["mean"] and kid["subset_size"] == 3 and kid["subsets"] == 100
    assert scores["reference_set"]["count"] == 3 == scores["counts"]["train_photos"]
    assert len(scores["reference_set"]["names_sha256"]) == 64
    assert scores["stand_in"] is True and "STAND-IN" in scores["warning"]
    for name in ("mask-accuracy", "color-hist-corr", "aesthetic", "fid"):
        info = scores["metrics"][name]
        assert {"model", "model_sha256", "variant", "preprocessing", "stand_in", "note"} <= set(info)
    assert scores["metrics"]["fid"]["model_sha256"] and scores["metrics"]["aesthetic"]["stand_in"]
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 4 and {"stem", "mask_accuracy", "style", "aesthetic"} <= set(rows[0])
    html = (out / "report.html").read_text()
    assert "STAND-IN" in html and "<svg" in html and "data:image/jpeg;base64," in html
    assert "Best and worst by mask accuracy" in html and "Best and worst by style" in html
    assert "KID" in html and "No ceiling" in html  # explicit paths: no ground truth, and the page says so
    m = read_manifest(out, "evaluate", deep=True)
    assert m["counts"]["images"] == 4 and m["extra"]["stand_in"] is True
    # second run: the training statistics come from the cache
    again = evaluate(_cfg(tmp_path, seg, fid_weights), _inputs(case), out)
    assert again["metrics"]["fid"]["extra"]["train_statistics"]["cached"] is True
    assert again["terms"]["fid"] == pytest.approx(t["fid"], abs=1e-6)


def test_batch_size_independence_of_the_whole_score(tmp_path, case, tiny_segformer):
    seg, _ = tiny_segformer
    # FID's batch-size independence is tested on its features in test_fid (Inception is slow on CPU)
    a = evaluate(_cfg(tmp_path, seg, None, CHEAP, "evaluate.batch_size=1"), _inputs(case), tmp_path / "a")
    b = evaluate(_cfg(tmp_path, seg, None, CHEAP, "evaluate.batch_size=3"), _inputs(case), tmp_path / "b")
    for k in ("mask_accuracy", "style", "aesthetic"):
        assert a["terms"][k] == pytest.approx(b["terms"][k], abs=1e-9)
    assert (tmp_path / "a" / "report.html").is_file() and read_manifest(tmp_path / "a", "evaluate", deep=True)


def test_subset_of_metrics_gives_no_score_and_says_why(tmp_path, case):
    cfg = load_config(None, ['evaluate.metrics=["color-hist-corr"]'])
    scores = evaluate(cfg, _inputs(case), tmp_path / "o")
    assert scores["score"] is None and "mask_accuracy" in scores["score_note"]
    assert set(scores["terms"]) == {"style"}


def test_input_errors_are_clear(tmp_path, case, tiny_segformer):
    seg, _ = tiny_segformer
    gen = tmp_path / "partial"
    shutil.copytree(case["gen"], gen)
    (gen / "map_002.jpg").unlink()
    with pytest.raises(DatasetError, match="1 of 4 label maps have no generated image"):
        run_evaluate(_cfg(tmp_path, seg), _inputs(case, gen), tmp_path / "o", progress=False)
    with pytest.raises(ArtifactError, match="landscape fit-segformer"):
        run_evaluate(_cfg(tmp_path, tmp_path / "none"), _inputs(case), tmp_path / "o", progress=False)
    with pytest.raises(ArtifactError, match="landscape weights"):
        run_evaluate(_cfg(tmp_path, seg, tmp_path / "none.pth"), _inputs(case), tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match="--pairs"):
        run_evaluate(_cfg(tmp_path, seg),
                     resolve_inputs(case["gen"], labels_dir=case["labels"]), tmp_path / "o", progress=False)
    # a folder made by another stage is refused
    (tmp_path / "foreign").mkdir()
    shutil.copytree(case["gen"], tmp_path / "foreign" / "g")
    write_manifest(tmp_path / "foreign" / "g", "train")
    with pytest.raises(ArtifactError, match="expected a 'generate' output"):
        run_evaluate(_cfg(tmp_path, seg), _inputs(case, tmp_path / "foreign" / "g"),
                     tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()  # a failed evaluate leaves no new --out behind


# ---------------------------------------------------------------------------- issue 9: the output folder
def test_failed_evaluate_keeps_the_previous_scores(tmp_path, case, tiny_segformer):
    seg, _ = tiny_segformer
    cfg = _cfg(tmp_path, seg, None, CHEAP)
    out = tmp_path / "eval"
    evaluate(cfg, _inputs(case), out)
    before = _snapshot(out)
    # a generated image that does not decode (caught by the input checks) ...
    gen = tmp_path / "gen2"
    shutil.copytree(case["gen"], gen)
    (gen / "map_001.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DatasetError, match="map_001.jpg"):
        run_evaluate(cfg, _inputs(case, gen), out, progress=False, log=lambda s: None)
    assert _snapshot(out) == before
    # ... and a reference photo that fails half-way through scoring
    (case["refs"] / "ref_002.jpg").write_bytes(b"\xff\xd8 not a jpeg either")
    with pytest.raises(DatasetError, match="ref_002.jpg"):
        run_evaluate(cfg, _inputs(case), out, progress=False, log=lambda s: None)
    assert _snapshot(out) == before
    read_manifest(out, "evaluate", deep=True)  # the last good scores are still usable
    # a failed evaluate into a new folder leaves nothing behind
    with pytest.raises(DatasetError, match="ref_002.jpg"):
        run_evaluate(cfg, _inputs(case), tmp_path / "new", progress=False, log=lambda s: None)
    assert not (tmp_path / "new").exists()


def test_evaluate_refuses_to_write_into_a_generated_folder(tmp_path, case, tiny_segformer):
    seg, _ = tiny_segformer
    cfg = _cfg(tmp_path, seg, None, CHEAP)
    gen = tmp_path / "generated"
    shutil.copytree(case["gen"], gen)
    write_manifest(gen, "generate", counts={"images": 4})
    before = _snapshot(gen)
    with pytest.raises(ArtifactError, match="'generate' output.*only replaces its own folders"):
        run_evaluate(cfg, _inputs(case, gen), gen, progress=False, log=lambda s: None)
    assert _snapshot(gen) == before
    read_manifest(gen, "generate", deep=True)
    with pytest.raises(ArtifactError, match="inside the generated folder"):
        run_evaluate(cfg, _inputs(case, gen), gen / "eval", progress=False, log=lambda s: None)
    plain = tmp_path / "photos"  # a user's folder of images (no manifest) is not taken over either
    shutil.copytree(case["refs"], plain)
    with pytest.raises(ArtifactError, match="did not make"):
        run_evaluate(cfg, _inputs(case), plain, progress=False, log=lambda s: None)
    assert sorted(p.name for p in plain.iterdir()) == sorted(p.name for p in case["refs"].iterdir())


def _grey_jpeg(path, size=(512, 384)):
    Image.fromarray(np.full(size[::-1], 128, np.uint8), "L").save(path, quality=95)


def test_evaluate_checks_images_and_label_maps_like_the_submission(tmp_path, case, tiny_segformer):
    seg, _ = tiny_segformer
    cfg = _cfg(tmp_path, seg, None, CHEAP)
    gen, labels = case["gen"], case["labels"]
    Image.open(gen / "map_000.jpg").crop((0, 0, 511, 384)).save(gen / "map_000.jpg", quality=95)
    _grey_jpeg(gen / "map_001.jpg")
    Image.open(gen / "map_002.jpg").resize((8, 6)).save(gen / "map_002.jpg", quality=95)
    Image.fromarray(np.full((384, 512), 29, np.uint8), "L").save(labels / "map_003.png")
    with pytest.raises(DatasetError) as exc:
        run_evaluate(cfg, _inputs(case), tmp_path / "o", progress=False, log=lambda s: None)
    msg = str(exc.value)
    assert "4 input file(s) cannot be scored" in msg
    assert f"{gen / 'map_000.jpg'}: 511x384 pixels, must be 512x384" in msg
    assert f"{gen / 'map_001.jpg'}: grey photo (mode L)" in msg and "must be RGB" in msg
    assert f"{gen / 'map_002.jpg'}: 8x6 pixels" in msg and "--allow-any-size" in msg
    assert f"{labels / 'map_003.png'}: label value 29 > 28" in msg
    assert not (tmp_path / "o").exists()


def test_a_wrapped_16_bit_label_map_is_refused(tmp_path, case, tiny_segformer):
    seg, _ = tiny_segformer
    # 259 = 256 + 3: cut to 8 bits it would pass as the valid class id 3
    Image.fromarray(np.full((384, 512), 259, np.uint16)).save(case["labels"] / "map_001.png")
    with pytest.raises(DatasetError, match=r"map_001.png: label value 259 > 28"):
        run_evaluate(_cfg(tmp_path, seg, None, CHEAP), _inputs(case), tmp_path / "o", progress=False)


def test_allow_any_size_scores_a_foreign_folder_of_another_size(tmp_path, tiny_segformer):
    seg, _ = tiny_segformer
    c = write_flat_case(tmp_path / "small", size=(64, 48))
    cfg = _cfg(tmp_path, seg, None, CHEAP)
    inputs = resolve_inputs(c["gen"], labels_dir=c["labels"], pairs_json=c["pairs"], refs_dir=c["refs"])
    with pytest.raises(DatasetError, match="64x48 pixels, must be 512x384"):
        run_evaluate(cfg, inputs, tmp_path / "o", progress=False, log=lambda s: None)
    scores = evaluate(cfg, inputs, tmp_path / "o", allow_any_size=True)
    assert scores["terms"]["mask_accuracy"] == 1.0 and scores["counts"]["images"] == 4
    _grey_jpeg(c["gen"] / "map_000.jpg", size=(64, 48))  # any size, but still RGB
    with pytest.raises(DatasetError, match="grey photo"):
        run_evaluate(cfg, inputs, tmp_path / "o", progress=False, log=lambda s: None, allow_any_size=True)

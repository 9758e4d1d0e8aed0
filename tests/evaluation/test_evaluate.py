import csv
import json
import shutil

import pytest

from evaluation.evaluate import resolve_inputs, run_evaluate
from pipeline.core.artifacts import read_manifest
from pipeline.core.config import load_config
from pipeline.core.errors import ArtifactError, ConfigError, DatasetError

from .conftest import write_flat_case, write_scene_folder


def _cfg(tmp_path, seg, fid_weights, *extra):
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


def test_evaluate_writes_scores_csv_report_and_manifest(tmp_path, case, tiny_segformer, fid_weights):
    seg, _ = tiny_segformer
    out = tmp_path / "eval"
    scores = run_evaluate(_cfg(tmp_path, seg, fid_weights), _inputs(case), out, progress=False, log=lambda s: None)
    t = scores["terms"]
    assert t["mask_accuracy"] == 1.0 and -1 <= t["style"] <= 1 and 0 <= t["aesthetic"] <= 1 and t["fid"] > 0
    from evaluation.score import a_board_score

    assert scores["score"] == pytest.approx(a_board_score(t["mask_accuracy"], t["aesthetic"], t["style"], t["fid"]))
    on_disk = json.loads((out / "scores.json").read_text())
    assert on_disk["score"] == pytest.approx(scores["score"]) and on_disk["counts"]["images"] == 4
    assert on_disk["stand_in"] is True and "STAND-IN" in on_disk["warning"]
    for name in ("mask-accuracy", "color-hist-corr", "aesthetic", "fid"):
        info = on_disk["metrics"][name]
        assert {"model", "model_sha256", "variant", "preprocessing", "stand_in", "note"} <= set(info)
    assert on_disk["metrics"]["fid"]["model_sha256"] and on_disk["metrics"]["aesthetic"]["stand_in"]
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 4 and {"stem", "mask_accuracy", "style", "aesthetic"} <= set(rows[0])
    html = (out / "report.html").read_text()
    assert "STAND-IN" in html and "<svg" in html and "data:image/jpeg;base64," in html
    assert "Best and worst by mask accuracy" in html and "Best and worst by style" in html
    m = read_manifest(out, "evaluate", deep=True)
    assert m["counts"]["images"] == 4 and m["extra"]["stand_in"] is True
    # second run: the training statistics come from the cache
    again = run_evaluate(_cfg(tmp_path, seg, fid_weights), _inputs(case), out, progress=False, log=lambda s: None)
    assert again["metrics"]["fid"]["extra"]["train_statistics"]["cached"] is True
    assert again["terms"]["fid"] == pytest.approx(t["fid"], abs=1e-6)


def test_batch_size_independence_of_the_whole_score(tmp_path, case, tiny_segformer, fid_weights):
    seg, _ = tiny_segformer
    # FID's batch-size independence is tested on its features in test_fid (Inception is slow on CPU)
    metrics = 'evaluate.metrics=["mask-accuracy", "color-hist-corr", "aesthetic"]'
    a = run_evaluate(_cfg(tmp_path, seg, fid_weights, metrics, "evaluate.batch_size=1"), _inputs(case),
                     tmp_path / "a", progress=False, log=lambda s: None)
    b = run_evaluate(_cfg(tmp_path, seg, fid_weights, metrics, "evaluate.batch_size=3"), _inputs(case),
                     tmp_path / "b", progress=False, log=lambda s: None)
    for k in ("mask_accuracy", "style", "aesthetic"):
        assert a["terms"][k] == pytest.approx(b["terms"][k], abs=1e-9)


def test_subset_of_metrics_gives_no_score_and_says_why(tmp_path, case):
    cfg = load_config(None, ['evaluate.metrics=["color-hist-corr"]'])
    scores = run_evaluate(cfg, _inputs(case), tmp_path / "o", progress=False, log=lambda s: None)
    assert scores["score"] is None and "mask_accuracy" in scores["score_note"]
    assert set(scores["terms"]) == {"style"}


def test_input_errors_are_clear(tmp_path, case, tiny_segformer, fid_weights):
    seg, _ = tiny_segformer
    gen = tmp_path / "partial"
    shutil.copytree(case["gen"], gen)
    (gen / "map_002.jpg").unlink()
    with pytest.raises(DatasetError, match="1 of 4 label maps have no generated image"):
        run_evaluate(_cfg(tmp_path, seg, fid_weights), _inputs(case, gen), tmp_path / "o", progress=False)
    with pytest.raises(ArtifactError, match="landscape fit-segformer"):
        run_evaluate(_cfg(tmp_path, tmp_path / "none", fid_weights), _inputs(case), tmp_path / "o", progress=False)
    with pytest.raises(ArtifactError, match="landscape weights"):
        run_evaluate(_cfg(tmp_path, seg, tmp_path / "none.pth"), _inputs(case), tmp_path / "o", progress=False)
    with pytest.raises(ConfigError, match="--pairs"):
        run_evaluate(_cfg(tmp_path, seg, fid_weights),
                     resolve_inputs(case["gen"], labels_dir=case["labels"]), tmp_path / "o", progress=False)
    # a folder made by another stage is refused
    (tmp_path / "foreign").mkdir()
    shutil.copytree(case["gen"], tmp_path / "foreign" / "g")
    from pipeline.core.artifacts import write_manifest

    write_manifest(tmp_path / "foreign" / "g", "train")
    with pytest.raises(ArtifactError, match="expected a 'generate' output"):
        run_evaluate(_cfg(tmp_path, seg, fid_weights), _inputs(case, tmp_path / "foreign" / "g"),
                     tmp_path / "o", progress=False)

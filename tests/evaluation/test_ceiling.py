"""The ceiling (issue 10): ratios from hand-made scores, the table that summary prints, the
ground truth's cache, the style oracle as the style ceiling, the refusal of a foreign ceiling."""

import json
import os

import pytest

from evaluation.ceiling import RATIO_RULE, STYLE_UNKNOWN, ceiling_block, ratio, table_lines
from evaluation.summary import main as summary_main, summary_lines

GEN = {"score": 0.20, "terms": {"mask_accuracy": 0.80, "style": 0.20, "aesthetic": 0.30, "fid": 200.0, "kid": 0.05}}
GT = {"score": 0.25, "terms": {"mask_accuracy": 0.90, "style": 0.33, "aesthetic": 0.35, "fid": 100.0, "kid": 0.01},
      "counts": {"images": 64}, "stand_in": True, "warning": "STAND-IN MODELS USED"}
SOURCE = {"folder": "/x/gt", "manifest": "ab" * 32, "data": "cd" * 32, "split": "val", "key": "k"}
ORACLE = {"value": 0.70, "source": "style oracle images, scored now", "folder": "/x/oracle"}


def test_ratio_is_oriented_so_that_one_means_as_good_as_the_ceiling():
    assert ratio(0.8, 0.9, True) == pytest.approx(0.8 / 0.9)
    assert ratio(200.0, 100.0, False) == pytest.approx(0.5)  # twice the ceiling's distance: half as good
    assert ratio(50.0, 100.0, False) == pytest.approx(2.0)  # better than the ceiling
    assert ratio(0.05, -0.001, False) is None and ratio(-0.1, 0.3, True) is None  # sign changes: no ratio
    assert ratio(None, 1.0, True) is None and ratio(1.0, float("nan"), True) is None


def test_block_from_hand_made_scores_pairs():
    block = ceiling_block(GEN, GT, SOURCE, ORACLE)
    rows = block["rows"]
    assert list(rows) == ["mask_accuracy", "style", "aesthetic", "fid", "kid", "score"]
    expected = {"mask_accuracy": 0.8 / 0.9, "style": 0.2 / 0.7, "aesthetic": 0.3 / 0.35, "fid": 100 / 200,
                "kid": 0.01 / 0.05, "score": 0.2 / 0.25}
    for row, value in expected.items():
        assert rows[row]["ratio"] == pytest.approx(value), row
    assert rows["style"]["ceiling"] == 0.70 and rows["style"]["ceiling_from"] == "style oracle"
    assert rows["style"]["ground_truth_value"] == 0.33  # shown, never used as the ceiling
    assert rows["fid"]["ceiling"] == 100.0 and rows["fid"]["higher_is_better"] is False
    assert block["ratio_rule"] == RATIO_RULE and "ceiling / generated" in RATIO_RULE
    assert block["ground_truth"]["folder"] == "/x/gt" and block["ground_truth"]["stand_in"] is True
    json.dumps(block)  # goes into scores.json as it is


def test_without_a_style_oracle_the_style_ceiling_is_unknown_and_says_why():
    block = ceiling_block(GEN, GT, SOURCE, None)
    style = block["rows"]["style"]
    assert style["ceiling"] is None and style["ratio"] is None and style["note"] == STYLE_UNKNOWN
    assert "random" in STYLE_UNKNOWN and "not a ceiling" in STYLE_UNKNOWN and "--style-ceiling" in STYLE_UNKNOWN
    assert block["style_ceiling"] == {"value": None, "note": STYLE_UNKNOWN}
    gt_negative_kid = {**GT, "terms": {**GT["terms"], "kid": -0.002}}
    kid = ceiling_block(GEN, gt_negative_kid, SOURCE, None)["rows"]["kid"]
    assert kid["ratio"] is None and "within noise" in kid["note"]
    # a positive ceiling KID within 2 std of 0 is noise too; above it, a ratio
    noisy = {**GT, "metrics": {"fid": {"extra": {"kid": {"mean": 0.01, "std": 0.006}}}}}
    assert ceiling_block(GEN, noisy, SOURCE, None)["rows"]["kid"]["ratio"] is None
    clear = {**GT, "metrics": {"fid": {"extra": {"kid": {"mean": 0.01, "std": 0.004}}}}}
    assert ceiling_block(GEN, clear, SOURCE, None)["rows"]["kid"]["ratio"] == pytest.approx(0.2)


def test_no_ground_truth_gives_a_note_and_no_table():
    block = ceiling_block(GEN, None, None, None, note="no ground truth: the test split's photos are the organisers'")
    assert block["available"] is False and all(r["ceiling"] is None for r in block["rows"].values())
    scores = {**_scores_json(block), "ceiling": block}
    text = "\n".join(summary_lines(scores))
    assert "organisers'" in text and "generated" not in text.split("organisers'")[1]


def _scores_json(block):
    metric = {"term": "mask_accuracy", "value": 0.8, "stand_in": False, "variant": "v", "informative": {}}
    return {"score": GEN["score"], "score_note": "", "terms": GEN["terms"], "metrics": {"mask-accuracy": metric},
            "timing": {"seconds": 1.0, "images_per_second": 4.0}, "counts": {"images": 4}, "device": "cpu",
            "warning": "", "ceiling": block}


def test_summary_prints_the_generated_ceiling_ratio_table(tmp_path, capsys):
    block = ceiling_block(GEN, GT, SOURCE, ORACLE)
    lines = table_lines(block)
    assert lines[0].split()[:4] == ["term", "generated", "ceiling", "ratio"]
    fid = next(line for line in lines if line.split()[0] == "FID").split()
    assert fid[1:4] == ["200.00", "100.00", "0.500"]
    style = next(line for line in lines if line.split()[0] == "style").split()
    assert style[1:4] == ["0.2000", "0.7000", "0.286"] and "oracle" in style
    (tmp_path / "scores.json").write_text(json.dumps(_scores_json(block)))
    assert summary_main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mask_acc       0.8000     0.9000   0.889" in out and "A              0.2000     0.2500   0.800" in out
    assert "KID" in out and "ceiling / generated" in out
    (tmp_path / "scores.json").write_text(json.dumps(_scores_json(ceiling_block(GEN, GT, SOURCE, None))))
    summary_main([str(tmp_path)])
    assert "style ceiling unknown" in capsys.readouterr().out


# ---------------------------------------------------------------------------- with the real stages
CHEAP = 'evaluate.metrics=["mask-accuracy", "color-hist-corr", "aesthetic"]'  # no Inception


def _cfg(tmp_path, seg, *extra):
    from pipeline.core.config import load_config

    return load_config(None, [
        f'evaluate.segformer="{seg}"', f'evaluate.cache_dir="{tmp_path / "cache"}"',
        f'evaluate.clip="{tmp_path / "no-clip"}"', f'evaluate.aesthetic_head="{tmp_path / "no-head.safetensors"}"',
        'device="cpu"', CHEAP, *extra,
    ])


@pytest.fixture()
def oracle(sample_preprocessed, tmp_path):
    """The style oracle of the shared sample dataset's val split (`landscape style-oracle`)."""
    from tests.conftest import run_cli

    out = tmp_path / "oracle"
    run_cli("style-oracle", "--data", str(sample_preprocessed), "--split", "val", "--out", str(out), "--quiet")
    return out


def test_ground_truth_is_cached_by_data_and_scorer(tmp_path, sample_preprocessed, tiny_segformer, monkeypatch):
    from evaluation import ground_truth
    from evaluation.ground_truth import run_ground_truth
    from pipeline.core.preprocessed import PreprocessedData

    seg, _ = tiny_segformer
    cfg = _cfg(tmp_path, seg)
    first = run_ground_truth(cfg, sample_preprocessed, progress=False, log=lambda s: None)
    folder = tmp_path / "cache" / "ceiling" / f"val-{first.manifest['extra']['ceiling_key'][:16]}"
    scores = json.loads((folder / "scores.json").read_text())
    assert not first.up_to_date and scores["counts"]["images"] == len(PreprocessedData.open(sample_preprocessed).stems("val"))
    assert scores["inputs"]["generated_stage"] == "ground-truth" and scores["ceiling"]["available"] is False
    stamp = (folder / "scores.json").stat().st_mtime_ns, (folder / "manifest.json").stat().st_mtime_ns

    def no_scoring(*a, **k):
        raise AssertionError("the cached ground truth was scored again")

    monkeypatch.setattr(ground_truth, "score_items", no_scoring)
    monkeypatch.setattr(ground_truth, "prepare_items", no_scoring)
    second = run_ground_truth(cfg, sample_preprocessed, progress=False, log=lambda s: None)
    assert second.up_to_date and "up to date" in second.summary[0]
    assert ((folder / "scores.json").stat().st_mtime_ns, (folder / "manifest.json").stat().st_mtime_ns) == stamp
    # another scorer setting, or a changed model file, is another ceiling: it must be scored
    with pytest.raises(AssertionError, match="scored again"):
        run_ground_truth(_cfg(tmp_path, seg, 'evaluate.style_variant="hsv-72"'), sample_preprocessed, progress=False)
    weights = next(seg.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="scored again"):
        run_ground_truth(cfg, sample_preprocessed, progress=False)


def _evaluate(cfg, generated, data, out, **choice):
    from evaluation.evaluate import run_evaluate
    from evaluation.ground_truth import CeilingChoice
    from evaluation.inputs import resolve_inputs

    inputs = resolve_inputs(generated, data_dir=data, split="val")
    run_evaluate(cfg, inputs, out, progress=False, ceiling=CeilingChoice(**choice), log=lambda s: None)
    return json.loads((out / "scores.json").read_text())


def test_evaluate_finds_the_ceiling_and_takes_the_style_oracle(tmp_path, sample_preprocessed, oracle, tiny_segformer):
    from evaluation.ground_truth import run_ground_truth

    seg, _ = tiny_segformer
    cfg = _cfg(tmp_path, seg)
    # the oracle folder scored as a generated folder, with itself as the style ceiling
    scores = _evaluate(cfg, oracle, sample_preprocessed, tmp_path / "eval", style_folder=oracle)
    block, terms = scores["ceiling"], scores["terms"]
    assert scores["inputs"]["generated_stage"] == "style-oracle" and block["available"]
    gt = json.loads((tmp_path / "cache" / "ceiling").glob("val-*/scores.json").__next__().read_text())  # computed now
    assert block["rows"]["mask_accuracy"]["ceiling"] == pytest.approx(gt["terms"]["mask_accuracy"])
    assert block["rows"]["mask_accuracy"]["ratio"] == pytest.approx(terms["mask_accuracy"] / gt["terms"]["mask_accuracy"])
    assert block["rows"]["style"]["ceiling"] == pytest.approx(terms["style"]) and block["rows"]["style"]["ratio"] == pytest.approx(1.0)
    assert block["rows"]["style"]["ground_truth_value"] == pytest.approx(gt["terms"]["style"])
    assert block["ground_truth"]["data"] == scores["inputs"]["data_manifest"]
    assert block["style_ceiling"]["folder"] == str(oracle.resolve())
    html = (tmp_path / "eval" / "report.html").read_text()
    assert "Generated vs ceiling" in html and "style oracle" in html
    # an evaluated oracle folder gives the same style ceiling; an explicit --ceiling the same ground truth
    gt_dir = tmp_path / "gt"
    run_ground_truth(cfg, sample_preprocessed, out=gt_dir, progress=False, log=lambda s: None)
    again = _evaluate(cfg, oracle, sample_preprocessed, tmp_path / "eval2", folder=gt_dir, style_folder=tmp_path / "eval")
    assert again["ceiling"]["rows"]["style"]["ceiling"] == pytest.approx(terms["style"])
    assert again["ceiling"]["ground_truth"]["folder"] == str(gt_dir.resolve())
    assert again["ceiling"]["rows"]["mask_accuracy"]["ceiling"] == pytest.approx(gt["terms"]["mask_accuracy"])
    # no style ceiling: the report says in words why it is unknown
    plain = _evaluate(cfg, oracle, sample_preprocessed, tmp_path / "eval3")
    assert plain["ceiling"]["rows"]["style"]["ceiling"] is None
    assert "style ceiling unknown" in (tmp_path / "eval3" / "report.html").read_text()


def test_a_foreign_or_mismatched_ceiling_is_refused(tmp_path, sample_preprocessed, oracle, tiny_segformer):
    from evaluation.ground_truth import run_ground_truth
    from pipeline.core.errors import ArtifactError

    seg, _ = tiny_segformer
    cfg = _cfg(tmp_path, seg)
    _evaluate(cfg, oracle, sample_preprocessed, tmp_path / "eval", compute=False)
    with pytest.raises(ArtifactError, match="not of the ground truth"):
        _evaluate(cfg, oracle, sample_preprocessed, tmp_path / "e2", folder=tmp_path / "eval")
    with pytest.raises(ArtifactError, match="expected a 'style-oracle' output"):
        _evaluate(cfg, oracle, sample_preprocessed, tmp_path / "e2", style_folder=sample_preprocessed)
    gt_dir = tmp_path / "gt"
    run_ground_truth(cfg, sample_preprocessed, out=gt_dir, progress=False, log=lambda s: None)
    other = _cfg(tmp_path, seg, 'evaluate.style_variant="hsv-72"')
    with pytest.raises(ArtifactError, match="another scorer.*style_variant"):
        _evaluate(other, oracle, sample_preprocessed, tmp_path / "e2", folder=gt_dir)
    with pytest.raises(ArtifactError, match="scored as"):  # an oracle evaluated with another style variant
        _evaluate(other, oracle, sample_preprocessed, tmp_path / "e2", style_folder=tmp_path / "eval", compute=False)
    assert not (tmp_path / "e2").exists()

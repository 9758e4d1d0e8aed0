"""`python -m evaluation.bench_fullsize`, run tiny: its fields, its decode count, and that forward
and glue come from real timings (a known delay put into a model's forward or into a metric's
glue shows up where it belongs)."""

import time

import pytest
from transformers import SegformerForSemanticSegmentation

from evaluation import bench_fullsize, metric_color_hist

TINY = ["--images", "4", "--refs", "2", "--tiny", "--width", "64", "--height", "48", "--batch-size", "2"]
CHEAP = ["--metrics", "mask-accuracy,color-hist-corr,aesthetic"]
# the forward delay is large against the real glue (~0.01-0.1 s an image under load), so a
# misattributed delay (+0.5 s an image) cannot hide in the noise
FORWARD_DELAY, GLUE_DELAY = 1.0, 0.05


def _check_fields(r: dict, n: int) -> None:
    assert r["images"] == n and r["tiny"] and r["scorers"]["random"]
    assert r["files"] == {"distinct": 10, "decodes": 10, "decoded_by_check_and_kept": 8,
                          "decoded_while_scoring": 2, "one_decode_per_file": True}  # 2 shared references
    assert r["glue_seconds"] == pytest.approx(r["evaluate_seconds"] - r["forward_seconds"], abs=2e-3)
    assert r["glue_share"] == pytest.approx(r["glue_seconds"] / r["evaluate_seconds"], abs=1e-3)
    load_fwd = sum(t["load_forward_seconds"] for t in r["terms"].values())
    assert r["forward_seconds"] == pytest.approx(
        load_fwd + n * sum(t["forward_seconds_per_image"] for t in r["terms"].values()), abs=0.01)
    for t in r["terms"].values():
        assert t["seconds_per_image"] == pytest.approx(
            t["forward_seconds_per_image"] + t["glue_seconds_per_image"], abs=2e-4)
    phases = r["phases"]
    assert sum(phases[k] for k in ("check_and_decode", "load_models", "scoring_loop", "results",
                                   "write_outputs")) <= r["evaluate_seconds"]
    load = sum(t["load_seconds"] for t in r["terms"].values())
    assert r["projected_1000_images_seconds"] == pytest.approx(load + 1000 * r["seconds_per_image"], rel=1e-3)
    assert r["peak_rss_mib"] > 100 and r["load_average"]["before"]


def test_tiny_bench_splits_forward_from_glue_by_real_timings(tmp_path, monkeypatch):
    real_forward = SegformerForSemanticSegmentation.forward

    def slow_forward(self, *a, **k):
        time.sleep(FORWARD_DELAY)  # inside the model's forward
        return real_forward(self, *a, **k)

    real_style = metric_color_hist.style_correlation

    def slow_style(*a, **k):
        time.sleep(GLUE_DELAY)  # glue: no model
        return real_style(*a, **k)

    monkeypatch.setattr(SegformerForSemanticSegmentation, "forward", slow_forward)
    monkeypatch.setattr(metric_color_hist, "style_correlation", slow_style)
    r = bench_fullsize.main(TINY + CHEAP + ["--out", str(tmp_path / "b.json")])
    _check_fields(r, 4)
    seg, hist = r["terms"]["mask-accuracy"], r["terms"]["color-hist-corr"]
    assert seg["forward_seconds_per_image"] >= 2 * FORWARD_DELAY / 4  # two batches of 2
    assert seg["glue_seconds_per_image"] < 2 * FORWARD_DELAY / 4  # not the delay
    assert hist["forward_seconds_per_image"] == 0 and hist["glue_seconds_per_image"] >= GLUE_DELAY
    assert r["terms"]["aesthetic"]["forward_seconds_per_image"] > 0
    assert (tmp_path / "b.json").is_file()


@pytest.mark.slow  # needs the converted Inception
def test_tiny_bench_with_fid(tmp_path, fid_weights):
    r = bench_fullsize.main(TINY + ["--fid-weights", str(fid_weights), "--out", str(tmp_path / "b.json")])
    _check_fields(r, 4)
    fid = r["terms"]["fid"]
    assert fid["load_forward_seconds"] > 0 and fid["forward_seconds_per_image"] > 0  # reference set, then ours
    assert r["terms_values"]["fid"] > 0

"""The style oracle: each photo's style recorded, any map painted in a style, the oracle folder
scoring high against its references' styles and low against other styles."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from pipeline.core.artifacts import read_manifest
from pipeline.core.classes import CLASS_ID
from pipeline.core.errors import DatasetError
from pipeline.core.imageio import load_photo
from pipeline.data.sample import (STYLE_NAMES, render_in_style, sample_pair, style_by_name,
                                  write_sample_dataset, write_style_oracle)
from pipeline.data.sample.palette import COLOURS, REFLECT

N_TRAIN, N_VAL = 40, 12
SIZE = (128, 96)


def rgb16_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The style term's reference: HISTCMP_CORREL of flattened 16x16x16 RGB histograms."""
    ha, hb = (cv2.calcHist([np.ascontiguousarray(x)], [0, 1, 2], None, [16] * 3, [0, 256] * 3)
              .reshape(-1, 1) for x in (a, b))
    return float(cv2.compareHist(ha, hb, cv2.HISTCMP_CORREL))


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("o") / "ds"
    write_sample_dataset(root, N_TRAIN, 0, seed=0, width=SIZE[0], height=SIZE[1], progress=False)
    return root


@pytest.fixture(scope="module")
def val_like(ds, tmp_path_factory):
    """Validation-like pairs: the first N_VAL training maps, each paired with another training
    photo drawn at random (as preprocess pairs validation maps), their oracle at 512x384."""
    base = tmp_path_factory.mktemp("val")
    labels = base / "labels"
    labels.mkdir()
    rng = np.random.default_rng(5)
    pairs = {}
    for i in range(N_VAL):
        shutil.copy(ds / f"train/labels/train_{i:05d}.png", labels)
        j = int(rng.choice([k for k in range(N_TRAIN) if k != i]))
        pairs[f"train_{i:05d}.png"] = f"train_{j:05d}.jpg"
    (base / "pairs.json").write_text(json.dumps(pairs))
    write_style_oracle(labels, base / "pairs.json", ds / "train/styles.json", base / "oracle", seed=0)
    return base, pairs


def test_styles_json_records_each_training_photos_style(ds):
    styles = json.loads((ds / "train/styles.json").read_text())
    assert sorted(styles) == sorted(p.name for p in (ds / "train/imgs").iterdir())
    for i in (0, 7, 39):
        assert styles[f"train_{i:05d}.jpg"] == sample_pair(0, i, height=SIZE[1], width=SIZE[0])[2]["style"]
    manifest = read_manifest(ds, "sample-data", deep=True)
    assert {f"{s}.jpg": v for s, v in manifest["extra"]["styles"].items()} == styles
    assert "train/styles.json" in manifest["files"]
    assert len(set(styles.values())) >= 5  # the pairs below meet several styles


def test_render_in_style_paints_any_map_deterministically():
    label = np.full((37, 53), CLASS_ID["sky"], np.uint8)
    label[20:] = CLASS_ID["grass"]
    label[30:, 10:30] = CLASS_ID["person"]  # a class the sample never draws still gets a colour
    a = render_in_style(label, "dusk", 3)
    assert a.shape == (37, 53, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_in_style(label, "dusk", 3))
    assert not np.array_equal(a, render_in_style(label, "dusk", 4))
    assert np.abs(a.astype(int) - render_in_style(label, "noon", 3)).mean() > 20
    with pytest.raises(ValueError, match="unknown style 'sunset'"):
        render_in_style(label, "sunset", 0)
    with pytest.raises(ValueError, match="outside the class ids"):
        render_in_style(label + 40, "noon", 0)


def expected_colour(cls: int, style_name: str) -> np.ndarray:
    """A class's main colour under a style, without noise or haze, written from the documented
    steps (foliage, water reflecting the sky, tint, saturation, exposure): RGB 0..255."""
    s = style_by_name(style_name)
    col = np.array(s.foliage.get(cls, COLOURS[cls][0]), float)
    if cls in REFLECT:
        col = (1 - REFLECT[cls]) * col + REFLECT[cls] * np.array(s.sky_horizon)
    col = col * np.array(s.tint)
    lum = col @ np.array([0.299, 0.587, 0.114])
    col = lum + s.saturation * (col - lum)
    col = col * 255 * s.brightness * s.contrast + 255 * s.brightness * 0.5 * (1 - s.contrast)
    return np.clip(col, 0, 255)


GROUND = ["grass", "field", "earth", "sand", "sea", "lake", "road", "tree",
          "path", "rock", "river", "hill", "mountain", "building", "house", "boat"]


def patchwork() -> tuple[np.ndarray, dict[int, list]]:
    """A 384x512 map: sky on top, grass, and below the haze 16 classes in 16x16 patches (16
    each, shuffled so that each class meets many cells of the coarse noise). Returns (map,
    {class index in GROUND: [(y, x) of its patches]})."""
    label = np.full((384, 512), CLASS_ID["grass"], np.uint8)
    label[:60] = CLASS_ID["sky"]
    patches: dict[int, list] = {}
    for n, k in enumerate(np.random.default_rng(0).permutation(np.repeat(np.arange(16), 16))):
        y, x = 256 + (n // 32) * 16, (n % 32) * 16  # haze ends 60% of the way below the horizon
        label[y:y + 16, x:x + 16] = CLASS_ID[GROUND[k]]
        patches.setdefault(int(k), []).append((y, x))
    return label, patches


@pytest.mark.parametrize("style_name", STYLE_NAMES)
def test_oracle_pixels_follow_the_label_map(style_name):
    """Each class's patches are painted in that class's colour under the style (within the
    per-image jitter and texture), nearest to it for nearly every class; the sky is the style's."""
    label, patches = patchwork()
    expected = np.stack([expected_colour(CLASS_ID[n], style_name) for n in GROUND])
    for seed in (0, 1):
        img = render_in_style(label, style_name, seed).astype(float)
        nearest_own = 0
        for k, name in enumerate(GROUND):
            inner = np.concatenate([img[y + 3:y + 13, x + 3:x + 13].reshape(-1, 3)
                                    for y, x in patches[k]])  # inside the blurred edges
            dist = np.abs(expected - np.median(inner, axis=0)).sum(axis=1)
            assert dist[k] < 50, (name, seed, dist[k])
            nearest_own += dist.argmin() == k
        assert nearest_own >= 13, seed  # a few pairs (lake/river, hill/road) share a colour in some styles
        sky = np.median(img[:50].reshape(-1, 3), axis=0)
        style = style_by_name(style_name)
        assert (sky > np.minimum(style.sky_top, style.sky_horizon) * 255 * 0.6).all()


def test_oracle_folder_scores_high_against_its_references_style(ds, val_like):
    base, pairs = val_like
    styles = json.loads((ds / "train/styles.json").read_text())
    man = read_manifest(base / "oracle", "style-oracle", deep=True)
    assert man["extra"]["style_oracle"] and man["counts"] == {"images": N_VAL}
    assert sorted(p.name for p in (base / "oracle").glob("*.jpg")) == \
        sorted(k.replace(".png", ".jpg") for k in pairs)
    rng = np.random.default_rng(6)
    same, other = [], []
    for name, ref in pairs.items():
        image = load_photo(base / "oracle" / name.replace(".png", ".jpg"))
        assert image.shape == (384, 512, 3)
        same.append(rgb16_correlation(image, load_photo(ds / "train/imgs" / ref)))
        others = sorted(p for p, s in styles.items() if s != styles[ref])
        other.append(rgb16_correlation(image, load_photo(ds / "train/imgs" / rng.choice(others))))
    same, other = np.array(same), np.array(other)
    print(f"rgb-16 correlation: same style {same.mean():.3f} (min {same.min():.3f}), "
          f"other style {other.mean():.3f} (max {other.max():.3f})")
    assert same.mean() > 0.5 and other.mean() < 0.15
    assert (same > other).mean() >= 0.9


def test_oracle_is_seeded_and_checks_its_inputs(ds, val_like, tmp_path):
    base, pairs = val_like
    labels, pairs_json, styles_json = base / "labels", base / "pairs.json", ds / "train/styles.json"
    write_style_oracle(labels, pairs_json, styles_json, tmp_path / "a", seed=0, size=None)
    write_style_oracle(labels, pairs_json, styles_json, tmp_path / "b", seed=0, size=None)
    write_style_oracle(labels, pairs_json, styles_json, tmp_path / "c", seed=1, size=None)
    a, b, c = ({p.name: p.read_bytes() for p in (tmp_path / d).glob("*.jpg")} for d in "abc")
    assert a == b and a.keys() == c.keys() and all(a[k] != c[k] for k in a)
    assert load_photo(tmp_path / "a/train_00000.jpg").shape == (SIZE[1], SIZE[0], 3)  # the map's size

    with pytest.raises(DatasetError, match="only the built-in sample dataset"):
        write_style_oracle(labels, pairs_json, tmp_path / "none.json", tmp_path / "d")
    (tmp_path / "s.json").write_text(json.dumps({"train_00001.jpg": "noon"}))
    with pytest.raises(DatasetError, match="no style for"):
        write_style_oracle(labels, pairs_json, tmp_path / "s.json", tmp_path / "d")
    (tmp_path / "s.json").write_text(json.dumps({"train_00001.jpg": "sunset"}))
    with pytest.raises(DatasetError, match="'sunset', not one of"):
        write_style_oracle(labels, pairs_json, tmp_path / "s.json", tmp_path / "d")
    short = dict(list(pairs.items())[1:])
    (tmp_path / "p.json").write_text(json.dumps(short))
    with pytest.raises(DatasetError, match="train_00000.png: has no entry"):
        write_style_oracle(labels, tmp_path / "p.json", styles_json, tmp_path / "d")
    assert not (tmp_path / "d").exists()  # inputs are checked before the output is made


def test_oracle_never_replaces_a_models_generated_folder(ds, val_like, tmp_path):
    from pipeline.core.artifacts import write_manifest
    from pipeline.core.errors import ArtifactError

    base, _ = val_like
    model = tmp_path / "model"
    model.mkdir()
    (model / "train_00000.jpg").write_bytes(b"model image")
    write_manifest(model, "generate", extra={"split": "val"})
    with pytest.raises(ArtifactError, match="only replaces its own folders"):
        write_style_oracle(base / "labels", base / "pairs.json", ds / "train/styles.json", model)
    assert (model / "train_00000.jpg").read_bytes() == b"model image"
    (model / "manifest.json").unlink()  # an unfinished `landscape generate` run: only its mark
    (model / ".landscape-stage").write_text("generate\n")
    with pytest.raises(ArtifactError, match="only replaces its own folders"):
        write_style_oracle(base / "labels", base / "pairs.json", ds / "train/styles.json", model)
    # its own folder it replaces
    write_style_oracle(base / "labels", base / "pairs.json", ds / "train/styles.json", tmp_path / "o",
                       size=None)
    write_style_oracle(base / "labels", base / "pairs.json", ds / "train/styles.json", tmp_path / "o",
                       seed=3, size=None)
    assert read_manifest(tmp_path / "o", "style-oracle")["extra"]["seed"] == 3


def test_run_style_oracle_on_a_preprocessed_val_split(sample_preprocessed, sample_raw, tmp_path):
    from pipeline.core.config import load_config
    from pipeline.core.inputs import resolve_split
    from pipeline.data.sample import run_style_oracle

    cfg = load_config(None, ["generate.out_width=64", "generate.out_height=48"])
    split = resolve_split(sample_preprocessed, "val")
    result = run_style_oracle(cfg, split, tmp_path / "oracle", progress=False)
    pairs = json.loads(split.pairs_json.read_text())
    styles = json.loads((sample_raw / "train/styles.json").read_text())
    assert result.manifest["extra"]["styles"] == {k: styles[v] for k, v in pairs.items()}
    assert len(list((tmp_path / "oracle").glob("*.jpg"))) == len(pairs) == 4
    assert load_photo(next((tmp_path / "oracle").glob("*.jpg"))).shape == (48, 64, 3)
    assert "4 val maps" in result.summary[0]

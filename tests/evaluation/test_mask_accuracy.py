import json

import numpy as np
import pytest
import torch

from evaluation.metric_mask_accuracy import MaskAccuracy, class_lookup, load_segformer, pixel_accuracy
from evaluation.registry import Batch, MetricContext
from pipeline.core.config import load_config
from pipeline.core.classes import CLASS_ID
from pipeline.core.errors import ArtifactError, ConfigError

from .conftest import flat_arrays


def _metric(folder, class_map=""):
    cfg = load_config(None, [f'evaluate.segformer="{folder}"', f'evaluate.segformer_class_map="{class_map}"'])
    return MaskAccuracy(cfg, MetricContext(device=torch.device("cpu")))


def test_fitted_tiny_segformer_reproduces_the_maps(tiny_segformer):
    folder, fit = tiny_segformer
    assert fit["acc"] == 1.0  # fit-segformer's own validation accuracy
    assert (folder / "preprocessor_config.json").is_file() and (folder / "manifest.json").is_file()
    x, y = flat_arrays()
    m = _metric(folder)
    m.update(Batch(stems=[f"s{i}" for i in range(len(x))], generated=list(x), maps=list(y)))
    res = m.result()
    assert res.value == 1.0 and set(res.per_image.values()) == {1.0}
    info = m.describe()
    assert info["model_sha256"] and info["preprocessing"]["size"] == {"height": 32, "width": 32}
    assert not info["stand_in"]


def test_accuracy_falls_with_corrupted_maps(tiny_segformer):
    folder, _ = tiny_segformer
    x, y = flat_arrays()
    corrupted = y.copy()
    corrupted[:, :12, :] = CLASS_ID["boat"]  # 12 of 48 rows become a class the images do not show
    m = _metric(folder)
    m.update(Batch(stems=[f"s{i}" for i in range(len(x))], generated=list(x), maps=list(corrupted)))
    assert m.result().value == pytest.approx(1 - 12 / 48)
    # logits are upsampled to each map's own size: a half-size map still scores 1.0
    small = [yy[::2, ::2] for yy in y]
    m2 = _metric(folder)
    m2.update(Batch(stems=["a", "b", "c", "d"], generated=list(x), maps=small))
    assert m2.result().value == 1.0


def test_batch_size_independence(tiny_segformer):
    folder, _ = tiny_segformer
    x, y = flat_arrays()
    rng = np.random.default_rng(0)
    noisy = [np.clip(im + rng.normal(0, 60, im.shape), 0, 255).astype(np.uint8) for im in x]
    m1, m2 = _metric(folder), _metric(folder)
    m1.update(Batch(stems=list("abcd"), generated=noisy, maps=list(y)))
    for i, s in enumerate("abcd"):
        m2.update(Batch(stems=[s], generated=[noisy[i]], maps=[y[i]]))
    assert m1.result().per_image == m2.result().per_image


def test_missing_model_says_how_to_get_one(tmp_path):
    with pytest.raises(ArtifactError, match="landscape fit-segformer"):
        load_segformer(str(tmp_path / "nothing"), "cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="config.json"):
        load_segformer(str(tmp_path / "empty"), "cpu")


def test_class_maps(tmp_path):
    ade = {0: "wall", 1: "building, edifice", 2: "sky", 3: "floor", 4: "tree", 48: "skyscraper"}
    lut, note = class_lookup("ade20k-names", ade, 150)
    assert lut[2] == CLASS_ID["sky"] and lut[1] == CLASS_ID["building"] and lut[48] == CLASS_ID["building"]
    assert lut[3] == CLASS_ID["other"] and lut[149] == CLASS_ID["other"] and "matched" in note
    with pytest.raises(ConfigError, match="150 classes"):
        class_lookup("", ade, 150)
    p = tmp_path / "map.json"
    p.write_text(json.dumps({"2": 1, "4": "tree"}))
    lut, _ = class_lookup(str(p), {}, 150)
    assert lut[2] == 1 and lut[4] == CLASS_ID["tree"] and lut[0] == CLASS_ID["other"]
    p.write_text(json.dumps({"200": 1}))
    with pytest.raises(ConfigError, match="outside"):
        class_lookup(str(p), {}, 150)
    assert pixel_accuracy(np.zeros((2, 2)), np.array([[0, 1], [0, 0]])) == 0.75

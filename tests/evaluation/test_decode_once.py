"""Every input file is decoded once per evaluation: the check's decode is kept for scoring, a
style reference shared by several maps is decoded once, and the scores do not depend on it."""

import json
from collections import Counter

import pytest

import pipeline.core.imageio as imageio
from evaluation import inputs as inputs_mod
from evaluation.scoring import prepare_items, score_items

from .conftest import write_flat_case
from .test_evaluate import CHEAP, _cfg, _inputs


@pytest.fixture()
def shared_ref_case(tmp_path):
    c = write_flat_case(tmp_path / "val")
    pairs = json.loads(c["pairs"].read_text())
    first = pairs["map_000.png"]
    pairs["map_002.png"] = pairs["map_003.png"] = first  # three maps share one reference
    c["pairs"].write_text(json.dumps(pairs))
    c["train"] = None
    return c


def _count_decodes(monkeypatch) -> Counter:
    seen = Counter()
    for name in ("read_photo", "read_label"):
        real = getattr(imageio, name)

        def counted(path, _real=real):
            seen[str(path)] += 1
            return _real(path)

        for module in (imageio, inputs_mod):  # the check's readers and load_photo/load_label's
            monkeypatch.setattr(module, name, counted)
    return seen


def _score(cfg, case):
    inputs = _inputs(case)
    items = prepare_items(cfg, inputs)
    return items, score_items(cfg, inputs, items, progress=False)


def test_each_file_is_decoded_once(tmp_path, shared_ref_case, tiny_segformer, monkeypatch):
    seg, _ = tiny_segformer
    cfg = _cfg(tmp_path, seg, None, CHEAP, "evaluate.batch_size=2")
    seen = _count_decodes(monkeypatch)
    items, _ = _score(cfg, shared_ref_case)
    files = {str(p) for it in items for p in (it.generated, it.map, it.ref)}
    assert len(files) == 4 + 4 + 2  # 4 images, 4 maps, 2 distinct references
    assert dict(seen) == {f: 1 for f in files}
    assert all(not it.decoded for it in items)  # the kept arrays were handed over and dropped


@pytest.mark.parametrize("keep", [0, 1])  # nothing kept / one image's worth kept
def test_scores_do_not_depend_on_what_the_check_kept(tmp_path, shared_ref_case, tiny_segformer, monkeypatch, keep):
    seg, _ = tiny_segformer
    cfg = _cfg(tmp_path, seg, None, CHEAP, "evaluate.batch_size=3")
    _, (kept_all, per_image_all) = _score(cfg, shared_ref_case)
    monkeypatch.setattr(inputs_mod, "DECODED_KEEP_BYTES", keep * (512 * 384 * 4))
    seen = _count_decodes(monkeypatch)
    items, (scores, per_image) = _score(cfg, shared_ref_case)
    assert per_image == per_image_all and scores["terms"] == kept_all["terms"]
    assert seen[str(items[0].generated)] == (1 if keep else 2)  # kept: decoded by the check only
    assert seen[str(items[-1].generated)] == 2  # past the budget: decoded again when scored


@pytest.mark.slow  # needs the converted Inception
def test_evaluate_fid_from_the_kept_decode_equals_torch_fidelity(tmp_path, fid_weights):
    import torch_fidelity

    from evaluation.inputs import resolve_inputs

    from .conftest import write_scene_folder

    a, b = tmp_path / "a", tmp_path / "b"
    write_scene_folder(a, 4, seed=1)
    write_scene_folder(b, 4, seed=2, prefix="ref")  # other names: none is left out as "a scored map"
    ref = torch_fidelity.calculate_metrics(
        input1=str(a), input2=str(b), fid=True, cuda=False, verbose=False, cache=False,
        feature_extractor_weights_path=str(fid_weights), save_cpu_ram=True,
    )["frechet_inception_distance"]
    cfg = _cfg(tmp_path, tmp_path / "no-seg", fid_weights, 'evaluate.metrics=["fid"]')
    inputs = resolve_inputs(a, train_photos_dir=b)
    items = prepare_items(cfg, inputs, allow_any_size=True)
    assert all("generated" in it.decoded for it in items)  # scored from the check's decode
    scores, _ = score_items(cfg, inputs, items, progress=False)
    assert scores["terms"]["fid"] == pytest.approx(ref, abs=1e-3)

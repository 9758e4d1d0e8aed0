"""Generation: names, sizes, skipping finished maps, stale-image clearing, the CLI and its alias."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.core.artifacts import read_manifest
from pipeline.core.errors import ArtifactError, DatasetError
from pipeline.generate import run_generate
from pipeline.train import run_train

from .model_testutil import make_preprocessed, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    data = make_preprocessed(root)
    run = root / "run"
    run_train(tiny_config("train.max_steps=2"), data, run, progress=False)
    return data, run


def _split(data):
    return data / "val" / "labels", data / "val_pairs.json", json.loads(
        (data / "index.json").read_text())["paths"]["train_imgs"]


def test_generate_names_sizes_and_resume(trained, tmp_path):
    data, run = trained
    labels, pairs, refs = _split(data)
    out = tmp_path / "out"
    manifest = run_generate(run, labels, pairs, refs, out, ["generate.colour_transfer=none"],
                            split="val", progress=False)
    stems = sorted(p.stem for p in labels.glob("*.png"))
    assert sorted(p.stem for p in out.glob("*.jpg")) == stems
    for stem in stems:
        img = cv2.imread(str(out / f"{stem}.jpg"))
        assert img.shape == (384, 512, 3)
    assert manifest["counts"] == {"images": 2, "generated_now": 2}
    assert read_manifest(out, "generate")["extra"]["split"] == "val"

    # a killed run resumes: existing images are kept, missing ones are made
    first = out / f"{stems[0]}.jpg"
    kept = (out / f"{stems[1]}.jpg").stat().st_mtime_ns
    first.unlink()
    manifest = run_generate(run, labels, pairs, refs, out, ["generate.colour_transfer=none"],
                            progress=False)
    assert manifest["counts"]["generated_now"] == 1 and first.is_file()
    assert (out / f"{stems[1]}.jpg").stat().st_mtime_ns == kept

    # other settings: the old images are replaced, and colour transfer changes them
    before = cv2.imread(str(first))
    manifest = run_generate(run, labels, pairs, refs, out,
                            ["generate.colour_transfer=\"reinhard-lab\""], progress=False)
    assert manifest["counts"]["generated_now"] == 2
    assert not np.array_equal(cv2.imread(str(first)), before)


def test_generate_refuses_bad_inputs(trained, tmp_path):
    data, run = trained
    labels, pairs, refs = _split(data)
    bad_pairs = tmp_path / "pairs.json"
    bad_pairs.write_text(json.dumps({"nope.png": "img_0000.jpg"}))
    with pytest.raises(DatasetError):
        run_generate(run, labels, bad_pairs, refs, tmp_path / "o", progress=False)
    with pytest.raises(ArtifactError, match="not a training run"):
        run_generate(data, labels, pairs, refs, tmp_path / "o", progress=False)
    bad_labels = tmp_path / "labels"
    bad_labels.mkdir()
    name = sorted(labels.glob("*.png"))[0].name
    cv2.imwrite(str(bad_labels / name), np.full((8, 8), 40, np.uint8))
    (tmp_path / "one.json").write_text(json.dumps({name: json.loads(pairs.read_text())[name]}))
    with pytest.raises(DatasetError, match="0..28"):
        run_generate(run, bad_labels, tmp_path / "one.json", refs, tmp_path / "o", progress=False)


def test_cli_generate_and_test_alias(trained, tmp_path):
    from pipeline.cli import cli

    data, run = trained
    runner = CliRunner()
    res = runner.invoke(cli, ["generate", "--run", str(run), "--data", str(data), "--split", "val",
                              "--out", str(tmp_path / "a"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "a").glob("*.jpg"))) == 2
    res = runner.invoke(cli, ["generate", "--run", str(run), "--data", str(data),
                              "--out", str(tmp_path / "b"), "--quiet"])
    assert res.exit_code != 0 and "--split" in str(res.exception)

    labels, pairs, refs = _split(data)
    inp = tmp_path / "input"
    inp.mkdir()
    for p in labels.glob("*.png"):
        (inp / p.name).write_bytes(p.read_bytes())
    (inp / "label_to_img.json").write_text(pairs.read_text())
    res = runner.invoke(cli, ["test", "--input_path", str(inp), "--img_path", refs,
                              "--output_path", str(tmp_path / "c"), "--run", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert sorted(p.stem for p in (tmp_path / "c").glob("*.jpg")) == sorted(
        p.stem for p in labels.glob("*.png"))


def test_finished_folder_is_left_as_it_is_and_leftovers_are_removed(trained, tmp_path):
    from pipeline.core.artifacts import manifest_hash

    data, run = trained
    labels, pairs, refs = _split(data)
    out = tmp_path / "out"
    run_generate(run, labels, pairs, refs, out, [], progress=False)
    ident = manifest_hash(out)
    again = run_generate(run, labels, pairs, refs, out, [], progress=False)
    assert again.get("up_to_date") and manifest_hash(out) == ident  # downstream stays valid

    # a killed run's temp file goes, the missing image comes back, the manifest is new
    (out / ".x.jpg.abc.tmp").write_bytes(b"half")
    next(out.glob("*.jpg")).unlink()
    manifest = run_generate(run, labels, pairs, refs, out, [], progress=False)
    assert manifest["counts"]["generated_now"] == 1 and not manifest.get("up_to_date")
    assert not list(out.glob(".*.tmp"))

"""Generation: names, sizes, resume, stale images of its own runs, the folder rules (never a
folder it did not make, one writer at a time, inputs checked first), the CLI and its alias.

Slow: one tiny 2-step training run (module fixture) on the shared `sample_preprocessed` data."""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.core.artifacts import FolderLock, manifest_hash, read_manifest
from pipeline.core.config import config_hash
from pipeline.core.errors import ArtifactError, DatasetError
from pipeline.core.inputs import resolve_inputs
from pipeline.generate import STATE_FILE, GenerateInputs, run_config, run_generate
from pipeline.train import run_train

from .model_testutil import tiny_config

pytestmark = pytest.mark.slow
NO_TRANSFER = ("generate.colour_transfer=none",)


@pytest.fixture(scope="module")
def trained(sample_preprocessed, tmp_path_factory):
    """(preprocessed data, a finished 2-step run). Read-only."""
    run = tmp_path_factory.mktemp("gen") / "run"
    run_train(tiny_config("train.max_steps=2"), sample_preprocessed, run, progress=False)
    return sample_preprocessed, run


def _generate(run, maps, out, *sets, config=None):
    return run_generate(run_config(run, config, sets), GenerateInputs(run, maps), out, progress=False)


def _jpgs(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.jpg"))}


def test_generate_names_sizes_and_resume(trained, tmp_path):
    data, run = trained
    val = resolve_inputs(data, "val")
    out = tmp_path / "out"
    result = _generate(run, val, out, *NO_TRANSFER)
    stems = sorted(p.stem for p in val.labels_dir.glob("*.png"))
    assert sorted(p.stem for p in out.glob("*.jpg")) == stems
    for stem in stems:
        assert cv2.imread(str(out / f"{stem}.jpg")).shape == (384, 512, 3)
    assert result.manifest["counts"] == {"images": 4, "generated_now": 4} and not result.up_to_date
    assert result.summary == [f"generate: 4 images in {out} (4 made now)"]
    manifest = read_manifest(out, "generate")
    assert manifest["extra"]["split"] == "val"
    assert manifest["inputs"] == {"run": manifest_hash(run), "data": manifest_hash(data)}

    # a killed run resumes: existing images are kept, missing ones are made
    first = out / f"{stems[0]}.jpg"
    kept = (out / f"{stems[1]}.jpg").stat().st_mtime_ns
    first.unlink()
    result = _generate(run, val, out, *NO_TRANSFER)
    assert result.manifest["counts"]["generated_now"] == 1 and first.is_file()
    assert (out / f"{stems[1]}.jpg").stat().st_mtime_ns == kept

    # other settings: its own earlier images are replaced, and colour transfer changes them
    before = cv2.imread(str(first))
    result = _generate(run, val, out, 'generate.colour_transfer="reinhard-lab"')
    assert result.manifest["counts"]["generated_now"] == 4
    assert not np.array_equal(cv2.imread(str(first)), before)


def test_a_killed_run_resumes_byte_identically(trained, tmp_path):
    data, run = trained
    val = resolve_inputs(data, "val")
    out = tmp_path / "out"
    _generate(run, val, out)
    whole = _jpgs(out)
    # what `kill -9` leaves: no manifest, a half-written temp image, two images missing (one of
    # each batch, so the resumed batch is made of maps that were never batched together)
    (out / "manifest.json").unlink()
    names = sorted(whole)
    for name in names[1:3]:
        (out / name).unlink()
    (out / f".{names[1]}.a1b2c3.tmp").write_bytes(b"half an image")
    result = _generate(run, val, out)
    assert result.manifest["counts"]["generated_now"] == 2
    assert _jpgs(out) == whole
    assert not list(out.glob(".*.tmp"))


def test_finished_folder_is_left_as_it_is(trained, tmp_path):
    data, run = trained
    val = resolve_inputs(data, "val")
    out = tmp_path / "out"
    _generate(run, val, out)
    ident = manifest_hash(out)
    again = _generate(run, val, out)
    assert again.up_to_date and manifest_hash(out) == ident  # downstream stays valid
    assert again.summary == [f"generate: 4 images in {out} (up to date, nothing to do)"]


def test_a_folder_of_foreign_jpgs_is_refused_and_left_untouched(trained, tmp_path):
    data, run = trained
    out = tmp_path / "holiday"
    out.mkdir()
    for i in range(3):
        cv2.imwrite(str(out / f"photo_{i}.jpg"), np.full((8, 8, 3), 40 * i, np.uint8))
    before = _jpgs(out)
    with pytest.raises(ArtifactError, match="`generate` only replaces its own folders"):
        _generate(run, resolve_inputs(data, "val"), out)
    assert _jpgs(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)


def test_test_alias_into_the_reference_photos_keeps_them(trained, tmp_path):
    """The issue's report: `test --img_path PHOTOS --output_path PHOTOS` deleted the photos."""
    from pipeline.core.cli import main

    data, run = trained
    val = resolve_inputs(data, "val")
    photos = tmp_path / "photos"
    shutil.copytree(val.refs_dir, photos)
    inp = tmp_path / "input"
    shutil.copytree(val.labels_dir, inp)
    shutil.copy(val.pairs_json, inp / "label_to_img.json")
    before = _jpgs(photos)
    with pytest.raises(SystemExit) as exit_:
        main(["test", "--input_path", str(inp), "--img_path", str(photos), "--output_path", str(photos),
              "--run", str(run), "--quiet"])
    assert exit_.value.code != 0
    assert _jpgs(photos) == before


def test_a_second_writer_is_refused_naming_the_holder(trained, tmp_path):
    data, run = trained
    out = tmp_path / "out"
    with FolderLock(out, "generate"):  # another `landscape generate` writing into this folder
        with pytest.raises(ArtifactError, match=rf"{out}: in use by pid {os.getpid()} .*landscape generate"):
            _generate(run, resolve_inputs(data, "val"), out)
    assert not out.exists()


def test_inputs_are_checked_before_the_output_is_touched(trained, tmp_path):
    data, run = trained
    val = resolve_inputs(data, "val")
    out = tmp_path / "o"
    bad_pairs = tmp_path / "pairs.json"
    bad_pairs.write_text(json.dumps({"nope.png": "img_0000.jpg"}))
    with pytest.raises(DatasetError):
        _generate(run, resolve_inputs(labels=val.labels_dir, pairs=bad_pairs, refs=val.refs_dir), out)
    with pytest.raises(ArtifactError, match="not a training run"):
        run_config(data)
    with pytest.raises(ArtifactError, match="expected a 'train' output"):
        run_generate(run_config(run), GenerateInputs(data, val), out, progress=False)
    with pytest.raises(ArtifactError, match="--checkpoint file not found"):
        run_generate(run_config(run), GenerateInputs(run, val, tmp_path / "nope.safetensors"), out,
                     progress=False)
    # a map with a value that is no class id, and a reference that is not an image
    bad_labels, bad_refs = tmp_path / "labels", tmp_path / "refs"
    shutil.copytree(val.labels_dir, bad_labels)
    shutil.copytree(val.refs_dir, bad_refs)
    pairs = json.loads(val.pairs_json.read_text())
    names = sorted(pairs)
    cv2.imwrite(str(bad_labels / names[-1]), np.full((8, 8), 40, np.uint8))
    (bad_refs / pairs[names[0]]).write_bytes(b"")
    with pytest.raises(DatasetError) as err:
        _generate(run, resolve_inputs(labels=bad_labels, pairs=val.pairs_json, refs=bad_refs), out)
    assert f"{bad_labels / names[-1]}: label value 40 > 28" in str(err.value)
    assert f"{bad_refs / pairs[names[0]]}: photo is empty (0 bytes)" in str(err.value)
    assert not out.exists()


def test_damaged_weights_are_refused_before_the_output_is_touched(trained, tmp_path):
    """A bit flipped inside a tensor of the EMA generator (same size, header intact) once gave
    flat grey images; the weights are read and verified before the output folder is opened."""
    import struct

    from pipeline.checkpoint import EMA_FILE

    data, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    raw = bytearray((copy / EMA_FILE).read_bytes())
    (header_len,) = struct.unpack("<Q", raw[:8])
    raw[8 + header_len + (len(raw) - 8 - header_len) // 2] ^= 0x10
    (copy / EMA_FILE).write_bytes(bytes(raw))
    out = tmp_path / "out"
    with pytest.raises(ArtifactError, match=EMA_FILE):
        _generate(copy, resolve_inputs(data, "val"), out)
    assert not out.exists()


def test_out_under_a_file_is_one_line(trained, tmp_path, capsys):
    from pipeline.core.cli import main

    data, run = trained
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--run", str(run), "--data", str(data), "--split", "val",
              "--out", str(tmp_path / "afile" / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert exit_.value.code != 0 and len(err.strip().splitlines()) == 1
    assert f"{tmp_path / 'afile'}: is a file where a folder is needed" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_cli_generate_config_and_test_alias(trained, tmp_path):
    from pipeline.cli import cli

    data, run = trained
    runner = CliRunner()
    res = runner.invoke(cli, ["generate", "--run", str(run), "--data", str(data), "--split", "val",
                              "--out", str(tmp_path / "a"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.output == f"generate: 4 images in {tmp_path / 'a'} (4 made now)\n"
    assert read_manifest(tmp_path / "a", "generate")["extra"]["colour_transfer"] == (
        run_config(run).generate.colour_transfer)
    res = runner.invoke(cli, ["generate", "--run", str(run), "--data", str(data),
                              "--out", str(tmp_path / "b"), "--quiet"])
    assert res.exit_code != 0 and "--split" in str(res.exception)

    # --config: another file (here: the run's own with one key changed), --set on top of it
    config = tmp_path / "other.toml"
    text = (run / "config.resolved.toml").read_text()
    config.write_text(text.replace("jpeg_quality = 95", "jpeg_quality = 60"))
    assert config.read_text() != text
    res = runner.invoke(cli, ["generate", "--run", str(run), "--data", str(data), "--split", "val",
                              "--out", str(tmp_path / "c"), "--config", str(config),
                              "--set", "generate.colour_transfer=\"histogram-match\"", "--quiet"])
    assert res.exit_code == 0, res.output
    extra = read_manifest(tmp_path / "c", "generate")["extra"]
    assert extra["colour_transfer"] == "histogram-match"
    used = run_config(run, config, ['generate.colour_transfer="histogram-match"'])
    assert used.generate.jpeg_quality == 60
    assert json.loads((tmp_path / "c" / STATE_FILE).read_text())["generate"] == config_hash(used, "generate")
    assert sum(len(b) for b in _jpgs(tmp_path / "c").values()) < sum(len(b) for b in _jpgs(tmp_path / "a").values())

    val = resolve_inputs(data, "val")
    inp = tmp_path / "input"
    shutil.copytree(val.labels_dir, inp)
    shutil.copy(val.pairs_json, inp / "label_to_img.json")
    res = runner.invoke(cli, ["test", "--input_path", str(inp), "--img_path", str(val.refs_dir),
                              "--output_path", str(tmp_path / "d"), "--run", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert _jpgs(tmp_path / "d") == _jpgs(tmp_path / "a")
    assert read_manifest(tmp_path / "d", "generate")["extra"]["split"] == "test"


def test_shuffling_the_pairing_lowers_the_style_term(trained, tmp_path):
    """Each output follows its own reference: scored against another map's reference (the
    pairing rotated by one), the style term (the scorer's own histogram correlation) drops."""
    from evaluation.metric_color_hist import style_correlation

    data, run = trained
    val = resolve_inputs(data, "val")
    out = tmp_path / "out"
    _generate(run, val, out, *NO_TRANSFER)
    pairs = json.loads(val.pairs_json.read_text())
    maps = sorted(pairs)
    refs = [cv2.cvtColor(cv2.imread(str(val.refs_dir / pairs[m])), cv2.COLOR_BGR2RGB) for m in maps]
    refs = [cv2.resize(r, (512, 384), interpolation=cv2.INTER_AREA) for r in refs]
    images = [cv2.cvtColor(cv2.imread(str(out / f"{m[:-4]}.jpg")), cv2.COLOR_BGR2RGB) for m in maps]
    own = [style_correlation(img, ref, "rgb-16") for img, ref in zip(images, refs)]
    rotated = [style_correlation(img, ref, "rgb-16") for img, ref in zip(images, refs[1:] + refs[:1])]
    assert np.mean(own) > np.mean(rotated) + 0.1, (own, rotated)

"""The upload zip (contents, checksums, determinism, atomicity), its manifest and the expert picks."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile

import pytest
from PIL import Image

from pipeline.core.artifacts import manifest_hash, read_manifest, write_manifest
from pipeline.core.cli import main
from pipeline.core.config import load_config
from pipeline.core.errors import ArtifactError, DatasetError
from submission import package as package_mod
from submission.package import PackageInputs, check_package, run_package
from submission.scores import read_per_image
from submission.validate import SubmissionError

from .util import STEMS, jpeg_bytes, make_generated, make_labels, valid_files


def package(gen, labels, out, scores=None, picks=None, **flags) -> dict:
    """run_package with `picks` expert picks (default: the config's 3); returns the manifest."""
    cfg = load_config(None, [] if picks is None else [f"package.expert_picks={picks}"])
    return run_package(cfg, PackageInputs(gen, labels, scores), out, progress=False, **flags).manifest


def entries(folder) -> list[str]:
    """What a folder holds, less the hidden lock file beside an output folder (kept, harmless)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock"))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_scores(path, rows, header="stem,mask_accuracy,style,aesthetic") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))


@pytest.fixture
def inputs(tmp_path):
    return make_generated(tmp_path), make_labels(tmp_path), tmp_path / "out" / "exp.zip"


def test_zip_is_flat_complete_and_matches_its_manifest(inputs):
    gen, labels, out = inputs
    manifest = package(gen, labels, out)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert names == sorted(f"{s}.jpg" for s in STEMS)  # flat, one per map, no manifest.json
        for info in zf.infolist():
            assert info.compress_type == zipfile.ZIP_STORED
            data = zf.read(info)
            assert data == (gen / info.filename).read_bytes()  # stored as-is
            assert manifest["extra"]["zip"]["entries"][info.filename] == sha(data)
            with Image.open(io.BytesIO(data)) as img:
                assert (img.mode, img.size) == ("RGB", (512, 384))
    assert manifest["extra"]["zip"]["sha256"] == sha(out.read_bytes())
    assert manifest["counts"]["images"] == 3
    assert manifest["inputs"]["generated"] == manifest_hash(gen)
    on_disk = read_manifest(out.parent / "exp", "package", deep=True)
    assert on_disk["extra"]["zip"] == manifest["extra"]["zip"]
    check_package(out)
    assert entries(out.parent) == ["exp", "exp.zip"]  # no temp left


def test_killed_generate_leftover_is_not_packaged(tmp_path):
    # A killed run left a temp file; the re-run that finished wrote its manifest after it.
    gen = make_generated(tmp_path, valid_files() | {".3a.jpg.k1ll.tmp": b"partial"})
    earlier = (gen / "manifest.json").stat().st_mtime - 60
    os.utime(gen / ".3a.jpg.k1ll.tmp", (earlier, earlier))
    out = tmp_path / "out" / "exp.zip"
    manifest = package(gen, make_labels(tmp_path), out)
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == sorted(f"{s}.jpg" for s in STEMS)
    assert "leftover temporary file" in manifest["extra"]["notes"][0]


def test_same_images_give_the_same_zip_bytes(inputs, tmp_path):
    gen, labels, out = inputs
    package(gen, labels, out)
    first = out.read_bytes()
    for p in gen.glob("*.jpg"):  # other file times must not change the bytes
        os.utime(p, (1_000_000_000, 1_000_000_000))
    other = tmp_path / "elsewhere" / "exp2.zip"
    package(gen, labels, other)
    assert other.read_bytes() == first
    package(gen, labels, out)  # re-packaging over an existing zip
    assert out.read_bytes() == first


def test_nothing_written_when_validation_fails(tmp_path):
    files = valid_files() | {"1001.jpg": jpeg_bytes(0, mode="L")}
    gen, labels = make_generated(tmp_path, files), make_labels(tmp_path)
    out = tmp_path / "out" / "exp.zip"
    with pytest.raises(SubmissionError, match="colour mode L"):
        package(gen, labels, out)
    assert not (tmp_path / "out").exists()


def test_failed_zip_check_leaves_no_zip_and_keeps_the_old_one(inputs, monkeypatch):
    gen, labels, out = inputs
    package(gen, labels, out)
    old = out.read_bytes()
    monkeypatch.setattr(package_mod, "verify_zip", lambda *a, **k: ["1001.jpg: CRC check failed"])
    with pytest.raises(ArtifactError, match="failed its check.*CRC check failed"):
        package(gen, labels, out)
    assert out.read_bytes() == old
    assert entries(out.parent) == ["exp", "exp.zip"]  # no temp zip
    # The old manifest was dropped first, so the package reads as unfinished, not as current.
    with pytest.raises(ArtifactError, match="did not finish"):
        check_package(out)


def test_crash_while_writing_leaves_no_zip(inputs, monkeypatch):
    gen, labels, out = inputs

    def broken(path, files):
        path.write_bytes(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(package_mod, "write_zip", broken)
    with pytest.raises(ArtifactError, match="disk full"):  # an OS error is one line naming the path
        package(gen, labels, out)
    assert not out.exists()
    assert [p for p in entries(out.parent) if (out.parent / p).is_file()] == []


def test_verify_zip_finds_a_corrupt_entry(inputs, tmp_path):
    gen, labels, out = inputs
    manifest = package(gen, labels, out)
    data = bytearray(out.read_bytes())
    i = data.index(b"JFIF") + 200  # a byte inside the first entry's image data
    data[i] ^= 0xFF
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    problems = package_mod.verify_zip(bad, manifest["extra"]["zip"]["entries"])
    assert problems[0] == "1001.jpg: CRC check failed"
    assert "1001.jpg: cannot read it back (Bad CRC-32" in problems[1]
    assert package_mod.verify_zip(out, manifest["extra"]["zip"]["entries"]) == []


def test_check_package_detects_a_changed_zip(inputs):
    gen, labels, out = inputs
    package(gen, labels, out)
    with zipfile.ZipFile(out, "a") as zf:
        zf.writestr("extra.txt", "x")
    with pytest.raises(ArtifactError, match="changed since it was packaged"):
        check_package(out)


def test_out_must_be_a_zip_outside_the_generated_folder(inputs):
    gen, labels, _ = inputs
    with pytest.raises(DatasetError, match="must be a .zip"):
        package(gen, labels, gen.parent / "exp.tar")
    with pytest.raises(DatasetError, match="inside the generated folder"):
        package(gen, labels, gen / "exp.zip")


# ---------------------------------------------------------------------------- expert picks
SCORES = [  # stem, mask_accuracy, style, aesthetic -> product
    ("1001", 0.9, 0.5, 0.5),  # 0.225
    ("20_b", 0.8, 0.9, 0.6),  # 0.432
    ("3a", 0.95, 0.8, 0.7),  # 0.532
    ("other", 1.0, 1.0, 1.0),  # not packaged: must not be picked
]


def test_picks_the_best_products_and_copies_them(inputs, tmp_path):
    gen, labels, out = inputs
    csv_path = tmp_path / "scores.csv"
    write_scores(csv_path, SCORES)
    manifest = package(gen, labels, out, csv_path, picks=2)
    picks = manifest["extra"]["expert_picks"]
    assert [(p["rank"], p["stem"]) for p in picks] == [(1, "3a"), (2, "20_b")]
    assert picks[0]["product"] == pytest.approx(0.95 * 0.8 * 0.7)
    assert picks[1]["mask_accuracy"] == 0.8 and picks[1]["style"] == 0.9
    expert = out.parent / "exp" / "expert"
    assert sorted(p.name for p in expert.iterdir()) == ["20_b.jpg", "3a.jpg"]
    assert (expert / "3a.jpg").read_bytes() == (gen / "3a.jpg").read_bytes()
    assert manifest["files"]["expert/3a.jpg"]["sha256"] == sha((gen / "3a.jpg").read_bytes())
    assert manifest["counts"]["expert_picks"] == 2


def test_three_picks_by_default_and_old_picks_removed(inputs, tmp_path):
    gen, labels, out = inputs
    csv_path = tmp_path / "scores.csv"
    write_scores(csv_path, SCORES)
    manifest = package(gen, labels, out, csv_path)
    assert [p["stem"] for p in manifest["extra"]["expert_picks"]] == ["3a", "20_b", "1001"]
    manifest = package(gen, labels, out)  # no scores this time: no stale picks survive
    assert manifest["extra"]["expert_picks"] == []
    assert not (out.parent / "exp" / "expert").exists()


def test_ties_break_by_stem(inputs, tmp_path):
    gen, labels, out = inputs
    csv_path = tmp_path / "scores.csv"
    write_scores(csv_path, [(s, 0.5, 0.5, 0.5) for s in reversed(STEMS)])
    manifest = package(gen, labels, out, csv_path, picks=3)
    assert [p["stem"] for p in manifest["extra"]["expert_picks"]] == sorted(STEMS)


def test_partial_scores_pick_among_the_scored(inputs, tmp_path):
    gen, labels, out = inputs
    csv_path = tmp_path / "scores.csv"
    write_scores(csv_path, SCORES[:1])
    manifest = package(gen, labels, out, csv_path)
    assert [p["stem"] for p in manifest["extra"]["expert_picks"]] == ["1001"]
    assert "2 packaged images have no score" in manifest["extra"]["expert_note"]


def test_scores_of_other_images_are_refused_before_writing(inputs, tmp_path):
    gen, labels, out = inputs
    csv_path = tmp_path / "scores.csv"
    write_scores(csv_path, [("val_1", 1, 1, 1), ("val_2", 1, 1, 1)])
    with pytest.raises(DatasetError, match="scores none of the 3 packaged images"):
        package(gen, labels, out, csv_path)
    assert not out.parent.exists()


def test_no_scores_says_it_cannot_pick(inputs, capsys):
    gen, labels, out = inputs
    manifest = package(gen, labels, out)
    note = manifest["extra"]["expert_note"]
    assert "cannot be picked" in note and "make score" in note and "--scores" in note
    assert manifest["extra"]["expert_picks"] == []


@pytest.mark.parametrize(
    "header,rows,message",
    [
        ("stem,mask_accuracy,style", [("1001", 1, 1)], "missing column.*aesthetic"),
        ("stem,mask_accuracy,style,aesthetic", [("1001", "x", 1, 1)], "non-numeric"),
        ("stem,mask_accuracy,style,aesthetic", [("1001", "nan", 1, 1)], "non-finite"),
        ("stem,mask_accuracy,style,aesthetic", [("1001", 1, 1, 1)] * 2, "listed twice"),
        ("stem,mask_accuracy,style,aesthetic", [], "no rows"),
    ],
)
def test_malformed_per_image_csv(tmp_path, header, rows, message):
    csv_path = tmp_path / "per_image.csv"
    write_scores(csv_path, rows, header)
    with pytest.raises(DatasetError, match=message):
        read_per_image(csv_path)


def test_extra_columns_are_ignored(tmp_path):
    csv_path = tmp_path / "per_image.csv"
    write_scores(csv_path, [("a", 0.5, 0.1, 0.2, 9)], "stem,mask_accuracy,style,aesthetic,fid_feature")
    assert read_per_image(csv_path) == {"a": (0.5, 0.1, 0.2)}


def make_eval_folder(tmp_path, gen, inputs_hash=None, scored=None):
    """An evaluate output as `landscape evaluate` leaves it (scores.json names the scored folder)."""
    folder = tmp_path / "eval"
    write_scores(folder / "per_image.csv", SCORES)
    (folder / "scores.json").write_text(json.dumps({"inputs": {"generated": str(scored or gen.resolve())}}))
    write_manifest(folder, "evaluate", inputs={"generated": inputs_hash or manifest_hash(gen)})
    return folder


def test_evaluate_folder_of_these_images(inputs, tmp_path):
    gen, labels, out = inputs
    ev = make_eval_folder(tmp_path, gen)
    manifest = package(gen, labels, out, ev)
    assert [p["stem"] for p in manifest["extra"]["expert_picks"]] == ["3a", "20_b", "1001"]
    assert manifest["inputs"]["scores"] == manifest_hash(ev)


def test_generate_rerun_that_changed_no_image_keeps_the_scores(inputs, tmp_path):
    gen, labels, out = inputs
    ev = make_eval_folder(tmp_path, gen, inputs_hash="0" * 64)  # generate's manifest rewritten since
    manifest = package(gen, labels, out, ev)
    assert [p["stem"] for p in manifest["extra"]["expert_picks"]] == ["3a", "20_b", "1001"]


def test_images_generated_again_after_scoring_are_refused(inputs, tmp_path):
    gen, labels, out = inputs
    ev = make_eval_folder(tmp_path, gen, inputs_hash="0" * 64)
    later = (ev / "manifest.json").stat().st_mtime + 60
    os.utime(gen / "3a.jpg", (later, later))
    with pytest.raises(ArtifactError, match="scored before 1 of the images .* generated again .*3a.jpg.*make score"):
        package(gen, labels, out, ev)
    assert not out.parent.exists()


def test_scores_of_another_folder_are_refused(inputs, tmp_path):
    gen, labels, out = inputs
    ev = make_eval_folder(tmp_path, gen, inputs_hash="0" * 64, scored=tmp_path / "other" / "test")
    with pytest.raises(ArtifactError, match="these scores are of .*other/test, not of .*generated"):
        package(gen, labels, out, ev)
    assert not out.parent.exists()


def test_unfinished_evaluate_folder_is_refused(inputs, tmp_path):
    gen, labels, out = inputs
    write_scores(tmp_path / "eval" / "per_image.csv", SCORES)
    with pytest.raises(ArtifactError, match="'evaluate' stage did not finish"):
        package(gen, labels, out, tmp_path / "eval")
    with pytest.raises(DatasetError, match="scores folder not found"):
        package(gen, labels, out, tmp_path / "nowhere")


def test_scores_optional_packages_without_picks_and_says_why(inputs, tmp_path):
    gen, labels, out = inputs
    ev = make_eval_folder(tmp_path, gen, inputs_hash="0" * 64, scored=tmp_path / "elsewhere")
    manifest = package(gen, labels, out, ev, scores_optional=True)
    assert manifest["extra"]["expert_picks"] == [] and "scores" not in manifest["inputs"]
    assert manifest["extra"]["expert_note"].startswith("scores not used")
    assert "these scores are of" in manifest["extra"]["expert_note"]
    check_package(out)
    manifest = package(gen, labels, out, tmp_path / "nowhere", scores_optional=True)
    assert "scores folder not found" in manifest["extra"]["expert_note"]
    fresh = make_eval_folder(tmp_path / "fresh", gen)
    manifest = package(gen, labels, out, fresh, scores_optional=True)
    assert [p["stem"] for p in manifest["extra"]["expert_picks"]] == ["3a", "20_b", "1001"]


# ---------------------------------------------------------------------------- CLI
def test_cli_package_and_its_errors(inputs, tmp_path, capsys):
    gen, labels, out = inputs
    csv_path = tmp_path / "scores.csv"
    write_scores(csv_path, SCORES)
    main(["package", "--generated", str(gen), "--labels", str(labels), "--out", str(out),
          "--scores", str(csv_path), "--set", "package.expert_picks=1"])
    text = capsys.readouterr().out
    assert f"wrote {out}: 3 entries" in text and "3a" in text
    manifest = json.loads((out.parent / "exp" / "manifest.json").read_text())
    assert [p["stem"] for p in manifest["extra"]["expert_picks"]] == ["3a"]
    assert manifest["config_hash"]

    (gen / "20_b.jpg").unlink()
    with pytest.raises(SystemExit) as info:
        main(["package", "--generated", str(gen), "--labels", str(labels), "--out", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "20_b.jpg is missing" in err and "Traceback" not in err


def test_submission_needs_neither_jittor_nor_torch():
    import subprocess
    import sys

    code = (
        "import sys, submission.package, submission.validate, submission.commands;"
        "bad = [m for m in ('jittor', 'torch') if m in sys.modules]; sys.exit(str(bad) if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_package_never_takes_over_what_it_did_not_make(inputs, tmp_path):
    gen, labels, _ = inputs
    mine = tmp_path / "mine"
    (mine / "photos" / "expert").mkdir(parents=True)
    (mine / "photos" / "expert" / "keep.jpg").write_bytes(b"a user's photo")
    with pytest.raises(ArtifactError, match="did not make"):
        package(gen, labels, mine / "photos.zip")  # <exp>/ is a folder of someone else's
    assert (mine / "photos" / "expert" / "keep.jpg").read_bytes() == b"a user's photo"
    assert not (mine / "photos.zip").exists()
    (mine / "backup.zip").write_bytes(b"PK a user's archive")
    with pytest.raises(ArtifactError, match="was not written by `landscape package`"):
        package(gen, labels, mine / "backup.zip")
    assert (mine / "backup.zip").read_bytes() == b"PK a user's archive"
    assert not (mine / "backup").exists()

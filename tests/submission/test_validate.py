"""Every way a generated folder can fail to be a submission, and the message it gives."""

from __future__ import annotations

import os

import pytest
from PIL import ImageFile

from pipeline.core.artifacts import OWNER_MARK, write_manifest
from pipeline.core.errors import DatasetError
from submission.validate import STAGE_FILES, SubmissionError, jpeg_problems, validate_generated

from .util import STEMS, jpeg_bytes, make_generated, make_labels, valid_files


def problems_of(tmp_path, files, manifest=True, **kwargs) -> SubmissionError:
    labels = make_labels(tmp_path)
    gen = make_generated(tmp_path, files, manifest=manifest)
    with pytest.raises(SubmissionError) as info:
        validate_generated(gen, labels, **kwargs)
    return info.value


def test_valid_folder_passes(tmp_path):
    labels = make_labels(tmp_path)
    gen = make_generated(tmp_path)
    folder = validate_generated(gen, labels)
    assert list(folder.images) == sorted(STEMS)
    assert all(p.name == f"{s}.jpg" for s, p in folder.images.items())
    assert folder.manifest["stage"] == "generate"


def test_generate_stage_files_are_not_problems(tmp_path):
    import pipeline.generate

    assert pipeline.generate.STATE_FILE in STAGE_FILES and OWNER_MARK in STAGE_FILES
    labels = make_labels(tmp_path)
    # the state file, and the owner mark `claim_folder` leaves in the folder generate writes in place
    gen = make_generated(tmp_path, valid_files() | {pipeline.generate.STATE_FILE: b"{}", OWNER_MARK: b"generate\n"})
    assert list(validate_generated(gen, labels).images) == sorted(STEMS)


def test_submission_error_is_a_dataset_error():
    assert issubclass(SubmissionError, DatasetError)


def test_missing_image(tmp_path):
    files = valid_files()
    del files["20_b.jpg"]
    err = problems_of(tmp_path, files)
    assert [k for k, _ in err.problems] == ["missing"]
    assert "20_b.jpg: missing (map 20_b.png)" in str(err)
    assert "make submit" in str(err)


def test_extra_jpg_and_extra_other_file(tmp_path):
    files = valid_files() | {"9999.jpg": jpeg_bytes(9), "notes.txt": b"hi"}
    err = problems_of(tmp_path, files)
    text = str(err)
    assert "9999.jpg: no label map 9999.png" in text and "delete it" in text
    assert "notes.txt: not a <map stem>.jpg file; delete it" in text
    assert [k for k, _ in err.problems] == ["extra", "extra"]


@pytest.mark.parametrize("name,fmt", [("3a.png", "PNG"), ("3a.JPG", "JPEG"), ("3a.jpeg", "JPEG")])
def test_wrong_extension_is_reported_once(tmp_path, name, fmt):
    files = valid_files()
    del files["3a.jpg"]
    files[name] = jpeg_bytes(2, fmt=fmt)
    err = problems_of(tmp_path, files)
    assert [k for k, _ in err.problems] == ["extension"]  # not also "missing"
    assert f"{name}: wrong extension" in str(err) and "needs 3a.jpg" in str(err)


def test_wrong_size(tmp_path):
    files = valid_files() | {"1001.jpg": jpeg_bytes(0, size=(640, 480))}
    err = problems_of(tmp_path, files)
    assert "1001.jpg: 640x480 pixels, must be 512x384 (W x H)" in str(err)


def test_swapped_size(tmp_path):
    files = valid_files() | {"1001.jpg": jpeg_bytes(0, size=(384, 512))}
    assert "384x512 pixels, must be 512x384" in str(problems_of(tmp_path, files))


def test_grey_image(tmp_path):
    files = valid_files() | {"1001.jpg": jpeg_bytes(0, mode="L")}
    err = problems_of(tmp_path, files)
    assert "1001.jpg: colour mode L, must be RGB" in str(err)
    assert "convert" in str(err)


def test_cmyk_image(tmp_path):
    files = valid_files() | {"1001.jpg": jpeg_bytes(0, mode="CMYK")}
    assert "1001.jpg: colour mode CMYK, must be RGB" in str(problems_of(tmp_path, files))


def test_png_named_jpg_with_alpha(tmp_path):
    files = valid_files() | {"1001.jpg": jpeg_bytes(0, mode="RGBA", fmt="PNG")}
    text = str(problems_of(tmp_path, files))
    assert "1001.jpg: is a PNG image named .jpg; re-save it as JPEG" in text
    assert "colour mode RGBA" in text


def test_truncated_jpeg(tmp_path):
    data = jpeg_bytes(0)
    files = valid_files() | {"1001.jpg": data[: len(data) // 2]}
    assert "1001.jpg: truncated or corrupt image" in str(problems_of(tmp_path, files))


def test_jpeg_without_end_marker(tmp_path):
    # Only the 2-byte end marker lost: the pixels are all there, the file is still incomplete.
    files = valid_files() | {"1001.jpg": jpeg_bytes(0)[:-2]}
    err = problems_of(tmp_path, files)
    assert len(err.problems) == 1 and "1001.jpg: truncated" in str(err)


def test_truncated_fails_even_when_pillow_is_told_to_accept_it(monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = jpeg_bytes(0)
    assert jpeg_problems(data[: len(data) // 2], "x.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_not_decodable_and_empty(tmp_path):
    files = valid_files() | {"1001.jpg": b"this is not an image" * 10, "3a.jpg": b""}
    text = str(problems_of(tmp_path, files))
    assert "1001.jpg: not an image Pillow can decode" in text
    assert "3a.jpg: empty file (0 bytes)" in text


def test_empty_folder(tmp_path):
    err = problems_of(tmp_path, {})
    assert [k for k, _ in err.problems] == ["empty"]
    assert "no images; expected 3 files <stem>.jpg" in str(err)


def test_missing_generated_folder(tmp_path):
    labels = make_labels(tmp_path)
    with pytest.raises(DatasetError, match="generated folder not found"):
        validate_generated(tmp_path / "nope", labels)


def test_missing_labels_folder(tmp_path):
    gen = make_generated(tmp_path)
    with pytest.raises(DatasetError, match="nope: labels folder not found"):
        validate_generated(gen, tmp_path / "nope")


def test_labels_folder_without_maps(tmp_path):
    gen = make_generated(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no label maps \(\*\.png\)"):
        validate_generated(gen, tmp_path / "empty")


def test_temp_file_of_an_unfinished_run_hidden_file_and_subfolder(tmp_path):
    files = valid_files() | {".1001.jpg.x1y2.tmp": b"partial", ".DS_Store": b"x", "old/": b""}
    err = problems_of(tmp_path, files, manifest=False)  # a killed run: temp file, no manifest
    text = str(err)
    assert [k for k, _ in err.problems] == ["unfinished", "temp", "hidden", "subfolder"]
    assert ".1001.jpg.x1y2.tmp: temporary file, so generation did not finish: re-run `make submit`" in text
    assert ".DS_Store: hidden file" in text
    assert "old: sub-folder; the zip must be flat" in text


def test_temp_file_newer_than_the_manifest_is_a_problem(tmp_path):
    labels = make_labels(tmp_path)
    gen = make_generated(tmp_path)
    tmp = gen / ".3a.jpg.abc.tmp"
    tmp.write_bytes(b"partial")
    later = (gen / "manifest.json").stat().st_mtime + 60
    os.utime(tmp, (later, later))  # another generation writing into the folder right now
    with pytest.raises(SubmissionError, match="3a.jpg.abc.tmp: temporary file, so generation did not finish"):
        validate_generated(gen, labels)


def test_temp_leftover_of_a_run_killed_before_the_finished_one_is_only_a_note(tmp_path):
    labels = make_labels(tmp_path)
    gen = make_generated(tmp_path, valid_files() | {".3a.jpg.k1ll.tmp": b"partial"})
    earlier = (gen / "manifest.json").stat().st_mtime - 60
    os.utime(gen / ".3a.jpg.k1ll.tmp", (earlier, earlier))
    folder = validate_generated(gen, labels)
    assert list(folder.images) == sorted(STEMS)
    assert len(folder.notes) == 1 and ".3a.jpg.k1ll.tmp: leftover temporary file" in folder.notes[0]


def test_no_manifest_means_unfinished_unless_allowed(tmp_path):
    labels = make_labels(tmp_path)
    gen = make_generated(tmp_path, manifest=False)
    with pytest.raises(SubmissionError, match="generation did not finish") as info:
        validate_generated(gen, labels)
    assert "--allow-unfinished" in str(info.value)
    folder = validate_generated(gen, labels, allow_unfinished=True)
    assert folder.manifest is None and len(folder.images) == 3


def test_manifest_of_another_stage(tmp_path):
    labels = make_labels(tmp_path)
    gen = make_generated(tmp_path, manifest=False)
    write_manifest(gen, "evaluate")
    with pytest.raises(SubmissionError, match="this is a 'evaluate' output, expected a 'generate'"):
        validate_generated(gen, labels)


def test_image_changed_after_generation(tmp_path):
    labels = make_labels(tmp_path)
    gen = make_generated(tmp_path)
    (gen / "3a.jpg").write_bytes(jpeg_bytes(2, size=(256, 192)))
    with pytest.raises(SubmissionError) as info:
        validate_generated(gen, labels)
    kinds = [k for k, _ in info.value.problems]
    assert kinds == ["manifest", "image"]
    assert "3a.jpg changed size" in str(info.value)


def test_every_problem_listed_at_once(tmp_path):
    files = valid_files() | {
        "1001.jpg": jpeg_bytes(0, mode="L"),
        "3a.jpg": jpeg_bytes(2, size=(100, 100)),
        "extra.jpg": jpeg_bytes(5),
    }
    del files["20_b.jpg"]
    labels, gen = make_labels(tmp_path), make_generated(tmp_path, files)
    (gen / ".20_b.jpg.abc.tmp").write_bytes(b"")
    later = (gen / "manifest.json").stat().st_mtime + 60
    os.utime(gen / ".20_b.jpg.abc.tmp", (later, later))
    with pytest.raises(SubmissionError) as info:
        validate_generated(gen, labels)
    err = info.value
    lines = str(err).splitlines()
    assert "(5 problems)" in lines[0]
    assert len(lines) == 6  # header + one line per problem
    assert sorted(k for k, _ in err.problems) == ["extra", "image", "image", "missing", "temp"]
    for needle in ("1001.jpg: colour mode L", "3a.jpg: 100x100", "extra.jpg: no label map",
                   ".20_b.jpg.abc.tmp: temporary file", "20_b.jpg: missing"):
        assert sum(needle in line for line in lines) == 1, needle


def test_long_runs_of_one_kind_are_shortened_in_the_message(tmp_path):
    stems = [f"m{i:03d}" for i in range(25)]
    labels = make_labels(tmp_path, stems)
    gen = make_generated(tmp_path, {"m000.jpg": jpeg_bytes(0)})
    with pytest.raises(SubmissionError) as info:
        validate_generated(gen, labels)
    assert len(info.value.problems) == 24  # the full list stays on the exception
    text = str(info.value)
    assert "(24 problems)" in text and "... and 19 more 'missing' problems" in text
    assert len(text.splitlines()) == 1 + 5 + 1

"""tools/at_model_size.py: the resolution ceiling's images are the photos through the model's size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.core.imageio import encode_jpeg, read_photo
from tools.at_model_size import at_size, main


def _photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (64, 48),
                      interpolation=cv2.INTER_NEAREST)


def test_detail_below_the_model_size_is_lost_and_the_rest_kept():
    y, x = np.mgrid[0:48, 0:64]
    smooth = np.stack([x * 3, y * 4, x + y], -1).astype(np.uint8)  # linear ramps
    out = at_size(smooth, 16, 12)
    assert out.shape == smooth.shape
    # a smooth image survives a 4x area reduction (away from the borders); a 1-pixel checker
    # becomes flat grey
    assert np.abs(out.astype(int) - smooth)[4:-4, 4:-4].max() <= 2
    checker = (np.indices((48, 64)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2)
    flat = at_size(checker, 16, 12)
    assert np.abs(flat.astype(int) - 127.5).max() < 3


def test_folder_names_from_another_folder_and_written_complete(tmp_path):
    src, names, out = tmp_path / "src", tmp_path / "names", tmp_path / "out"
    src.mkdir(), names.mkdir()
    for i in range(3):
        (src / f"p{i}.jpg").write_bytes(encode_jpeg(_photo(i), 95))
    (names / "p1.jpg").write_bytes(b"")
    assert main([str(src), str(out), "--size", "16x12", "--names", str(names)]) == 0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["names", "out", "src"]
    assert [x.name for x in out.iterdir()] == ["p1.jpg"]
    got, _ = read_photo(out / "p1.jpg")
    want = at_size(read_photo(src / "p1.jpg")[0], 16, 12)
    assert np.abs(got.astype(int) - want).mean() < 10  # JPEG only
    assert np.abs(got.astype(int) - read_photo(src / "p1.jpg")[0]).mean() > 15  # it was resized
    with pytest.raises(SystemExit):
        main([str(src), str(out), "--size", "16x12"])  # exists: refused
    with pytest.raises(SystemExit):
        main([str(src), str(tmp_path / "o2"), "--size", "sixteen"])


def test_a_bad_photo_is_named_and_nothing_is_left(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SystemExit) as exc:
        main([str(src), str(tmp_path / "out"), "--size", "16x12"])
    assert str(src / "bad.jpg") in str(exc.value)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["src"]  # no half-written folder

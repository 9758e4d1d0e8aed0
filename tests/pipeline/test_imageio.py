"""The one reader per format: what its messages say about files that are not images."""

from __future__ import annotations

import pytest

from pipeline.core.errors import DatasetError
from pipeline.core.imageio import BadFile, load_label, load_photo, read_label, read_photo


@pytest.mark.parametrize("reader, what", [(read_photo, "photo"), (read_label, "label map")])
def test_empty_file_is_called_empty(tmp_path, reader, what):
    path = tmp_path / "x.png"
    path.write_bytes(b"")
    with pytest.raises(BadFile) as err:
        reader(path)
    assert str(err.value).startswith(f"{what} is empty (0 bytes)")
    assert "BytesIO" not in str(err.value)


@pytest.mark.parametrize("loader", [load_photo, load_label])
def test_not_an_image_names_the_file_not_a_buffer(tmp_path, loader):
    path = tmp_path / "notes.png"
    path.write_bytes(b"these are my notes, not a picture")
    with pytest.raises(DatasetError) as err:
        loader(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and "does not decode" in text and "corrupt or not an image" in text
    assert "BytesIO" not in text and "0x" not in text


def test_unreadable_path_is_a_bad_file_with_the_cause(tmp_path):
    with pytest.raises(BadFile, match=r"photo cannot be read \(Is a directory\)"):
        read_photo(tmp_path)

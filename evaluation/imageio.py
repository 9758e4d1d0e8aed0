"""Image and label-map reading for the metrics: the core readers, plus folder listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.errors import DatasetError
from pipeline.core.imageio import PHOTO_EXTS, load_label, load_photo

IMAGE_EXTS = PHOTO_EXTS


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 RGB array; DatasetError naming the file otherwise."""
    return load_photo(path)


def read_label_map(path: str | Path) -> np.ndarray:
    """Decode a grey label map (class ids 0..28) to an HxW uint8 array; DatasetError otherwise."""
    return load_label(path)


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files (jpg, jpeg, png) directly inside `folder`; DatasetError when none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DatasetError(f"{folder}: no .jpg/.jpeg/.png images in it")
    return files

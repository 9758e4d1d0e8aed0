"""Image and label-map reading shared by every metric (decoded once, handed to all)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.errors import DatasetError

IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 RGB array (PIL, like torch-fidelity's loader)."""
    try:
        with Image.open(path) as img:
            return np.array(img.convert("RGB"), dtype=np.uint8)  # writable: torch.from_numpy warns otherwise
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot be read as an image ({exc}); replace or remove it") from None


def read_label_map(path: str | Path) -> np.ndarray:
    """Decode a grey label map (values 0..28) to an HxW uint8 array."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot be read as a label map ({exc})") from None
    if arr.ndim == 3:
        # a grey map saved as RGB: every channel carries the class id
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise DatasetError(f"{path}: a label map must be grey (one class id per pixel), got colour")
        arr = arr[..., 0]
    if arr.dtype != np.uint8:
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files (jpg, jpeg, png) directly inside `folder`; DatasetError when none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DatasetError(f"{folder}: no .jpg/.jpeg/.png images in it")
    return files

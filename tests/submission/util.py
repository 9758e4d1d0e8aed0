"""Small stand-in test maps and generated folders for the submission tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core.artifacts import write_manifest

STEMS = ["1001", "20_b", "3a"]


def jpeg_bytes(seed: int = 0, size=(512, 384), mode: str = "RGB", fmt: str = "JPEG") -> bytes:
    """A small deterministic noise-and-gradient image encoded in memory."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = (np.linspace(0, 255, w)[None, :, None] + rng.integers(0, 40, (h, w, 3))).clip(0, 255)
    img = Image.fromarray(arr.astype(np.uint8), "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def make_labels(root: Path, stems=STEMS) -> Path:
    """A folder of grey label maps `<stem>.png` (plus the pairing json real folders carry)."""
    labels = root / "labels"
    labels.mkdir(parents=True)
    for i, stem in enumerate(stems):
        Image.fromarray(np.full((384, 512), i % 29, np.uint8), "L").save(labels / f"{stem}.png")
    (labels / "label_to_img.json").write_text("{}")
    return labels


def valid_files(stems=STEMS) -> dict[str, bytes]:
    """{file name: bytes} of a valid generated folder: one RGB 512x384 `<stem>.jpg` per stem."""
    return {f"{stem}.jpg": jpeg_bytes(i) for i, stem in enumerate(stems)}


def make_generated(root: Path, files: dict[str, bytes] | None = None, manifest: bool = True) -> Path:
    """A generated folder holding `files` (default `valid_files()`), then its generate manifest.

    A name ending in "/" makes a sub-folder.
    """
    gen = root / "generated"
    gen.mkdir(parents=True)
    for name, data in (valid_files() if files is None else files).items():
        if name.endswith("/"):
            (gen / name).mkdir()
        else:
            (gen / name).write_bytes(data)
    if manifest:
        write_manifest(gen, "generate", counts={"images": len(STEMS)})
    return gen

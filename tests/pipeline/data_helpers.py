"""Tiny datasets in the competition layout for the data tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.core.config import load_config

W, H = 64, 48


def tiny_config(**data):
    """The demo config at 48x32 (divisible by 2**num_up), one worker, plus data overrides."""
    sets = ["data.height=32", "data.width=48", "data.workers=1", "data.val_count=2"]
    sets += [f"data.{k}={json.dumps(v)}" for k, v in data.items()]
    return load_config(Path(__file__).resolve().parents[2] / "configs" / "demo.toml", sets)


def label_array(i: int, size=(W, H)) -> np.ndarray:
    w, h = size
    lab = np.full((h, w), 1, np.uint8)  # sky
    lab[h // 2:] = (5 + i) % 29
    lab[h - 6:, : w // 3] = 12
    return lab


def photo_array(i: int, size=(W, H)) -> np.ndarray:
    w, h = size
    rng = np.random.default_rng(i)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def make_dataset(root: Path, n_train: int = 8, n_test: int = 3, size=(W, H)) -> Path:
    """root/train/imgs/img{i}.jpg, root/train/labels/img{i}.png, root/test/labels/t{i}.png,
    root/test/label_to_img.json pairing test map i with photo i."""
    (root / "train" / "imgs").mkdir(parents=True)
    (root / "train" / "labels").mkdir(parents=True)
    (root / "test" / "labels").mkdir(parents=True)
    for i in range(n_train):
        Image.fromarray(photo_array(i, size)).save(root / "train" / "imgs" / f"img{i}.jpg", quality=90)
        Image.fromarray(label_array(i, size)).save(root / "train" / "labels" / f"img{i}.png")
    pairs = {}
    for i in range(n_test):
        Image.fromarray(label_array(i + 3, size)).save(root / "test" / "labels" / f"t{i}.png")
        pairs[f"t{i}.png"] = f"img{i}.jpg"
    (root / "test" / "label_to_img.json").write_text(json.dumps(pairs))
    return root

"""Helpers for the model/train/generate tests: a tiny config and a tiny preprocessed folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from pipeline.core.artifacts import atomic_write_json, write_manifest
from pipeline.core.config import load_config

# One OpenMP thread: on a shared 2-core machine spin-waiting threads make Jittor steps 10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

H, W = 32, 48
TINY = [
    f"data.height={H}", f"data.width={W}", "model.num_up=3", "model.ngf=8", "model.max_mult=4",
    "model.spade_hidden=8", "model.z_dim=8", "model.nef=4", "model.encoder_size=16",
    "model.ndf=8", "model.d_layers=2", "model.d_scales=2", "model.edge_nc=4",
    "train.batch_size=2", "train.epochs=2", "train.decay_epochs=2", "train.log_every=1",
    "train.sample_every=3", "train.checkpoint_every=4", "train.num_workers=0",
    "generate.batch_size=2", 'device="cpu"',
]


def tiny_config(*extra: str):
    """The demo config shrunk to 32x48 images and a few thousand parameters."""
    return load_config(Path(__file__).resolve().parents[2] / "configs" / "demo.toml",
                       TINY + list(extra))


def make_preprocessed(root: Path, n_train: int = 6, n_val: int = 2, seed: int = 0,
                      height: int = H, width: int = W) -> Path:
    """A preprocess-stage folder (same files as `landscape preprocess` writes) of sample scenes.

    Returns the folder; root/photos holds the photos (the references), root/data the arrays.
    """
    from pipeline.data.sample import sample_pair

    photos, data = root / "photos", root / "data"
    (data / "val" / "labels").mkdir(parents=True, exist_ok=True)
    photos.mkdir(parents=True, exist_ok=True)
    stems = {"train": [], "val": []}
    arrays = {s: {"images": [], "labels": [], "edges": []} for s in stems}
    for i in range(n_train + n_val):
        label, photo, _ = sample_pair(seed, i, "train", height=height, width=width)
        split = "train" if i < n_train else "val"
        stem = f"img_{i:04d}"
        stems[split].append(stem)
        cv2.imwrite(str(photos / f"{stem}.jpg"), photo[..., ::-1])
        arrays[split]["images"].append(photo)
        arrays[split]["labels"].append(label)
        arrays[split]["edges"].append(cv2.Canny(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), 100, 200))
        if split == "val":
            cv2.imwrite(str(data / "val" / "labels" / f"{stem}.png"), label)
    for split, parts in arrays.items():
        for name, items in parts.items():
            np.save(data / f"{split}_{name}.npy", np.stack(items).astype(np.uint8))
    paths = {"train_imgs": str(photos.resolve()), "test_labels": "", "pairs": ""}
    atomic_write_json(data / "index.json", {**stems, "paths": paths})
    atomic_write_json(data / "val_pairs.json", {f"{s}.png": f"{s}.jpg" for s in stems["val"]})
    write_manifest(data, "preprocess", extra={"paths": paths})
    return data

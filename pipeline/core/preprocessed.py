"""The preprocessed folder's format, owned here: every stage and test goes through this class.

`landscape preprocess --data DIR --out artifacts/data/<id>` writes::

    manifest.json          stage "preprocess"; config_hash = config_hash(cfg, "data")
    index.json             {"train": [stems], "val": [stems], "test": ["<map>.png"], "skipped": [...],
                            "dropped": [stems], "converted": [...], "paths": {...}}
    train_images.npy       uint8 (N, H, W, 3) RGB at data.height x data.width (INTER_AREA)
    train_labels.npy       uint8 (N, H, W) class ids (nearest)
    train_edges.npy        uint8 (N, H, W) 0/255 Canny edges of the resized photo
    val_images.npy, val_labels.npy, val_edges.npy
    class_stats.json       per-class pixel and image counts of each split
    val/labels/<stem>.png  validation maps at their original size (grey class ids)
    val_pairs.json         {"<stem>.png": "<train photo>"}: references drawn from the train split
    test_pairs.json        the checked label_to_img.json (absent without a test part)
    test/labels/*.png      only when test maps were skipped: the usable ones (paths.test_labels)

    folder = PreprocessedData.open(path)      # checks the manifest; ArtifactError otherwise
    folder.arrays("train")                    # {"images": memmap, "labels": ..., "edges": ...}
    PreprocessedData.at(tmp).array_path("val", "labels")   # where preprocess writes
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import manifest_hash, read_manifest
from .errors import ArtifactError

STAGE = "preprocess"
ARRAY_SPLITS = ("train", "val")
ARRAY_KINDS = ("images", "labels", "edges")
INDEX = "index.json"
CLASS_STATS = "class_stats.json"
VAL_LABELS = "val/labels"
TEST_LABELS = "test/labels"
PAIRS = {"val": "val_pairs.json", "test": "test_pairs.json"}


@dataclass(frozen=True)
class PreprocessedData:
    """A preprocess output folder: the names of its files and checked readers of them."""

    root: Path
    manifest: dict | None = None

    # ---------------------------------------------------------------- opening
    @classmethod
    def at(cls, root: str | Path) -> "PreprocessedData":
        """The layout of a folder being written (no checks): for the preprocess stage itself."""
        return cls(Path(root))

    @classmethod
    def open(cls, root: str | Path, *, config_hash: str | None = None) -> "PreprocessedData":
        """A finished preprocess folder; ArtifactError (saying how to remake it) otherwise."""
        root = Path(root)
        return cls(root, read_manifest(root, STAGE, config_hash=config_hash))

    # ---------------------------------------------------------------- names
    def array_path(self, split: str, kind: str) -> Path:
        if split not in ARRAY_SPLITS or kind not in ARRAY_KINDS:
            raise ValueError(f"no array {split}_{kind}: splits {ARRAY_SPLITS}, kinds {ARRAY_KINDS}")
        return self.root / f"{split}_{kind}.npy"

    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    @property
    def class_stats_path(self) -> Path:
        return self.root / CLASS_STATS

    @property
    def val_labels_dir(self) -> Path:
        return self.root / VAL_LABELS

    @property
    def test_labels_dir(self) -> Path:
        return self.root / TEST_LABELS

    def pairs_path(self, split: str) -> Path:
        return self.root / PAIRS[split]

    # ---------------------------------------------------------------- reading
    def fingerprint(self) -> str:
        """The folder's identity (its manifest's sha256): what later stages record as input."""
        return manifest_hash(self.root)

    @property
    def extra(self) -> dict:
        return (self.manifest or {}).get("extra", {})

    @property
    def paths(self) -> dict:
        """The dataset paths preprocess read (train_imgs, test_labels, pairs ...)."""
        return self.extra.get("paths", {})

    def index(self) -> dict:
        return json.loads(self.index_path.read_text(encoding="utf-8"))

    def stems(self, split: str) -> list[str]:
        return list(self.index().get(split, []))

    def has_split(self, split: str) -> bool:
        return all(self.array_path(split, k).is_file() for k in ARRAY_KINDS)

    def arrays(self, split: str, kinds: tuple[str, ...] = ARRAY_KINDS) -> dict[str, np.ndarray]:
        """The split's arrays, memory-mapped read-only (never pickles); ArtifactError when a file
        is missing or the arrays disagree on the image count."""
        out = {}
        for kind in kinds:
            path = self.array_path(split, kind)
            if not path.is_file():
                raise ArtifactError(f"{path}: missing from the preprocessed folder; re-run "
                                    "`landscape preprocess`")
            out[kind] = np.load(path, mmap_mode="r", allow_pickle=False)
        counts = {k: a.shape[0] for k, a in out.items()}
        if len(set(counts.values())) > 1:
            raise ArtifactError(f"{self.root}: {split} arrays disagree on the image count {counts}; "
                                "re-run `landscape preprocess`")
        return out

    def size(self) -> tuple[int, int]:
        """(height, width) of the stored arrays."""
        shape = self.arrays("train", ("labels",))["labels"].shape
        return int(shape[1]), int(shape[2])

"""The sample dataset on disk, in the competition's layout (stage "sample-data").

    DIR/train/imgs/<stem>.jpg         RGB photos
    DIR/train/labels/<stem>.png       grey label maps (class ids)
    DIR/train/styles.json             {"<photo>.jpg": "<style name>"}: each photo's global style
    DIR/test/labels/<stem>.png        test maps, without photos
    DIR/test/label_to_img.json        {"<test map>.png": "<train photo>.jpg"}: style references
    DIR/manifest.json                 written last

styles.json sits beside the photos it describes (also when there is no test part), so a reader
that knows the training photos folder (a preprocess manifest's paths.train_imgs) finds it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

from ...core.artifacts import atomic_write_json, check_replaceable, staged_folder, write_manifest
from ...core.classes import CLASS_NAMES, NUM_CLASSES
from ...core.errors import ArtifactError, DatasetError
from ...core.imageio import encode_jpeg
from .render import render_photo
from .scenes import make_scene
from .styles import STYLES

STAGE = "sample-data"
STYLES_JSON = "styles.json"  # in train/, beside imgs/ and labels/
SPLIT_CODE = {"train": 1, "test": 2}  # seeds: image i of a split depends only on (seed, split, i)
_REFERENCE_CODE = 3  # seeds the test maps' reference draws
JPEG_QUALITY = 92
PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 3]  # fast and still small: label maps are flat


def sample_pair(seed: int, index: int, split: str = "train", height: int = 384,
                width: int = 512) -> tuple[np.ndarray, np.ndarray, dict]:
    """Scene `index` of `split` for `seed`: (label uint8 HxW, photo uint8 HxWx3 RGB, info).

    info: {"scene": ..., "style": ..., "horizon": ...}. Depends only on its arguments.
    """
    rng = np.random.default_rng([int(seed), SPLIT_CODE[split], int(index)])
    label, part, info = make_scene(rng, height, width)
    style = STYLES[int(rng.integers(len(STYLES)))]
    photo = render_photo(label, part, info["horizon"], style, rng)
    info["style"] = style.name
    return label, photo, info


def _stem(split: str, index: int) -> str:
    return f"{split}_{index:05d}"


def _write_label(path: Path, label: np.ndarray) -> None:
    if not cv2.imwrite(str(path), label, PNG_FLAGS):
        raise OSError(f"{path}: could not write the label map")


def _check_request(out: Path, n_train: int, n_test: int, height: int, width: int) -> None:
    """Raise DatasetError for a request that cannot be made, before `out` is touched."""
    if n_train < 1:
        raise DatasetError(f"--train {n_train}: the sample dataset needs at least 1 training pair")
    if n_test < 0:
        raise DatasetError(f"--test {n_test}: must be >= 0")
    if height < 16 or width < 16:
        raise DatasetError(f"sample size {width}x{height}: width and height must be >= 16")
    try:
        check_replaceable(out, STAGE)
    except ArtifactError:
        raise DatasetError(f"{out}: exists and is not a sample-data folder; choose another --out "
                           "(or move the folder away yourself)") from None


def _write_train(root: Path, seed: int, n: int, height: int, width: int, bar) -> tuple[dict, dict, np.ndarray]:
    """Training photos and maps into root/train: ({stem: style}, {stem: scene}, class presence)."""
    styles, scenes, present = {}, {}, np.zeros(NUM_CLASSES, np.int64)
    for i in range(n):
        label, photo, info = sample_pair(seed, i, "train", height, width)
        stem = _stem("train", i)
        (root / "train/imgs" / f"{stem}.jpg").write_bytes(encode_jpeg(photo, JPEG_QUALITY))
        _write_label(root / "train/labels" / f"{stem}.png", label)
        styles[stem], scenes[stem] = info["style"], info["scene"]
        present += np.bincount(label.ravel(), minlength=NUM_CLASSES) > 0
        bar.update()
    atomic_write_json(root / "train" / STYLES_JSON, {f"{s}.jpg": v for s, v in styles.items()})
    return styles, scenes, present


def _write_test(root: Path, seed: int, n_train: int, n: int, height: int, width: int,
                bar) -> tuple[dict, np.ndarray]:
    """Test maps and their reference pairing into root/test (removed when n is 0):
    ({stem: scene}, class presence)."""
    pairs, scenes, present = {}, {}, np.zeros(NUM_CLASSES, np.int64)
    ref_rng = np.random.default_rng([int(seed), _REFERENCE_CODE])
    for i in range(n):
        rng = np.random.default_rng([int(seed), SPLIT_CODE["test"], i])
        label, _, info = make_scene(rng, height, width)
        stem = _stem("test", i)
        _write_label(root / "test/labels" / f"{stem}.png", label)
        pairs[f"{stem}.png"] = f"{_stem('train', int(ref_rng.integers(n_train)))}.jpg"
        scenes[stem] = info["scene"]
        present += np.bincount(label.ravel(), minlength=NUM_CLASSES) > 0
        bar.update()
    if n:
        atomic_write_json(root / "test/label_to_img.json", pairs)
    else:
        (root / "test/labels").rmdir()
        (root / "test").rmdir()
    return scenes, present


def write_sample_dataset(out: str | Path, n_train: int, n_test: int, seed: int = 0,
                         height: int = 384, width: int = 512, progress: bool = True) -> dict:
    """Write the sample dataset to `out` (replaced only if it is an earlier sample-data folder).

    Built in a temporary sibling folder and swapped into place when complete. Returns the
    manifest dict. DatasetError for an impossible request or a folder of something else.
    """
    from tqdm import tqdm

    out = Path(out)
    _check_request(out, n_train, n_test, height, width)
    with staged_folder(out, stage=STAGE) as tmp:
        for sub in ("train/imgs", "train/labels", "test/labels"):
            (tmp / sub).mkdir(parents=True)
        start = time.perf_counter()
        with tqdm(total=n_train + n_test, desc=STAGE, unit="pair", disable=not progress) as bar:
            styles, scenes, present = _write_train(tmp, seed, n_train, height, width, bar)
            test_scenes, test_present = _write_test(tmp, seed, n_train, n_test, height, width, bar)
        seconds = time.perf_counter() - start
        present += test_present
        params = {"seed": int(seed), "train": n_train, "test": n_test, "height": height, "width": width}
        manifest = write_manifest(
            tmp, STAGE,
            config_hash=hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest(),
            counts={"train": n_train, "test": n_test},
            extra={**params,
                   "classes": {CLASS_NAMES[c]: int(n) for c, n in enumerate(present) if n},
                   "styles": styles, "scenes": {**scenes, **test_scenes},
                   "seconds": round(seconds, 3)},
        )
    return manifest

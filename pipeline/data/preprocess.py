"""The preprocess stage: validate a dataset, resize it, make edge maps, split off validation.

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

Everything is built in a temporary sibling folder that replaces `out` when complete, so a
failed validation (without --skip-bad) leaves nothing behind. Arrays are streamed to disk one
image at a time (10,000 full-size photos are 5.9 GB). Re-running with the same data config,
seed and input files (names, sizes, mtimes) is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.artifacts import MANIFEST, atomic_write_json, manifest_hash, read_manifest, write_manifest
from ..core.config import Config, config_hash
from ..core.errors import ArtifactError, ConfigError, DatasetError
from ..core.classes import CLASS_NAMES, NUM_CLASSES
from .layout import (BadFile, DatasetParts, Problem, parallel_map, raise_problems, read_label,
                     read_photo, resolve_workers, scan_dataset, input_fingerprint)



def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ============================================================================ .npy files by rows
def _npy_header(dtype: np.dtype, shape: tuple[int, ...], size: int) -> bytes:
    """A version 1.0 .npy header padded to exactly `size` bytes."""
    text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                 "shape": tuple(shape)}).encode("latin1")
    pad = size - 10 - len(text) - 1
    if pad < 0:  # pragma: no cover - shapes here are 4 small integers
        raise ValueError("npy header does not fit")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", size - 10) + text + b" " * pad + b"\n"


class NpyRows:
    """A .npy file of `rows` items written row by row, by any process, in any order.

    The file is created at full size (sparse) with a fixed-size header; workers write rows
    through `write_row` (a shared memory map: no copy through the parent). `finish(keep)` moves
    the kept rows together, writes the header with the final count and truncates the rest, so
    `np.load(..., mmap_mode="r")` reads the result like any .npy file.
    """

    HEADER = 128

    def __init__(self, path: Path, rows: int, item_shape: tuple[int, ...], dtype=np.uint8):
        self.path, self.rows = Path(path), rows
        self.item_shape, self.dtype = tuple(item_shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.item_shape)) * self.dtype.itemsize
        with open(self.path, "wb") as fh:
            fh.write(_npy_header(self.dtype, (rows, *self.item_shape), self.HEADER))
            fh.truncate(self.HEADER + rows * self.row_bytes)

    def spec(self) -> tuple:
        """What a worker needs to open the file: (path, rows, item_shape, dtype)."""
        return (str(self.path), self.rows, self.item_shape, self.dtype.str)

    def finish(self, keep: list[int]) -> None:
        """Keep rows `keep` (ascending), in that order, as the file's whole content."""
        _close_maps()
        if list(keep) != list(range(self.rows)) and keep:
            mm = np.memmap(self.path, self.dtype, "r+", self.HEADER, (self.rows, *self.item_shape))
            for new, old in enumerate(keep):
                if new != old:
                    mm[new] = mm[old]
            del mm
        with open(self.path, "r+b") as fh:
            fh.write(_npy_header(self.dtype, (len(keep), *self.item_shape), self.HEADER))
            fh.truncate(self.HEADER + len(keep) * self.row_bytes)


_MAPS: dict[str, np.memmap] = {}  # open row files of this process (a worker keeps its maps)


def write_row(spec: tuple, row: int, item: np.ndarray) -> None:
    """Write `item` as row `row` of the NpyRows file described by `spec`."""
    path, rows, shape, dtype = spec
    mm = _MAPS.get(path)
    if mm is None:
        mm = _MAPS[path] = np.memmap(path, np.dtype(dtype), "r+", NpyRows.HEADER, (rows, *shape))
    if item.shape != tuple(shape):
        raise ValueError(f"{Path(path).name}: row of shape {item.shape}, expected {tuple(shape)}")
    mm[row] = item


def _close_maps() -> None:
    """Unmap this process's row files (no msync: the page cache already holds the data)."""
    _MAPS.clear()


# ============================================================================ per-file work
def _process_pair(task: tuple) -> dict:
    """Decode, check, resize and edge one training pair, writing its arrays. For `parallel_map`.

    task: (stem, photo, label, height, width, canny_low, canny_high, label_copy or None, row,
    {"images"|"labels"|"edges": NpyRows spec}). Returns {"stem", "problems": [Problem],
    "undecodable": [photo]} or {"stem", "row", "counts": class pixel counts, "note"}.
    """
    stem, photo, label, h, w, lo, hi, label_copy, row, specs = task
    problems, undecodable, img, lab, note = [], [], None, None, None
    try:
        img, note = read_photo(photo)
    except BadFile as exc:
        problems.append(Problem(photo, str(exc)))
        undecodable.append(photo)
    try:
        lab = read_label(label)
    except BadFile as exc:
        problems.append(Problem(label, str(exc)))
    if img is not None and lab is not None and img.shape[:2] != lab.shape:
        problems.append(Problem(photo, f"photo is {img.shape[1]}x{img.shape[0]} but its label map "
                                f"{Path(label).name} is {lab.shape[1]}x{lab.shape[0]}; "
                                "they must have the same size"))
    if problems:
        return {"stem": stem, "problems": problems, "undecodable": undecodable}
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        small = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    else:
        small = lab
    edges = cv2.Canny(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), lo, hi)
    write_row(specs["images"], row, img)
    write_row(specs["labels"], row, small)
    write_row(specs["edges"], row, edges)
    if label_copy:
        cv2.imwrite(label_copy, lab)
    # calcHist counts in float32: exact for the < 2**24 pixels of one image, 4x faster than bincount
    counts = cv2.calcHist([small], [0], None, [NUM_CLASSES], [0, NUM_CLASSES]).ravel().astype(np.int64)
    return {"stem": stem, "row": row, "counts": counts, "note": Problem(photo, note) if note else None}


def _check_file(task: tuple) -> dict:
    """Decode one test map ("label") or reference photo ("photo"). For `parallel_map`."""
    kind, path = task
    try:
        if kind == "label":
            read_label(path)
        else:
            read_photo(path)
    except BadFile as exc:
        return {"kind": kind, "path": path, "problems": [Problem(path, str(exc))]}
    return {"kind": kind, "path": path, "problems": []}


# ============================================================================ the stage
@dataclass
class PreprocessResult:
    out: Path
    manifest: dict
    noop: bool
    summary: str


def _read_drop_list(path_text: str, cfg: Config) -> tuple[set[str], Path | None]:
    """Stems listed in data.drop_list (relative to the working folder, else to the config file)."""
    if not path_text:
        return set(), None
    path = Path(path_text)
    if not path.is_absolute() and not path.is_file() and cfg.source:
        path = Path(cfg.source).parent / path_text
    if not path.is_file():
        raise ConfigError(f"data.drop_list: file {path_text!r} not found "
                          "(give a text file of stems, one per line)")
    stems = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            stems.add(Path(line).stem)
    return stems, path.resolve()


def _check_replaceable(out: Path) -> None:
    """Refuse to replace a folder that is not a (possibly unfinished) preprocess output."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ArtifactError(f"{out}: exists and is not a folder; choose another --out")
    if not any(out.iterdir()):
        return
    man = out / MANIFEST
    if man.is_file():
        try:
            if json.loads(man.read_text(encoding="utf-8")).get("stage") == "preprocess":
                return
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            pass
    elif (out / "index.json").is_file():
        return  # an unfinished earlier run
    raise ArtifactError(f"{out}: exists and is not a preprocess output folder; "
                        "choose another --out or remove it")


def _up_to_date(out: Path, chash: str, fingerprint: str) -> dict | None:
    try:
        manifest = read_manifest(out, "preprocess", config_hash=chash)
    except ArtifactError:
        return None
    return manifest if manifest.get("extra", {}).get("fingerprint") == fingerprint else None


def run_preprocess(parts: DatasetParts, out: str | Path, cfg: Config, *, skip_bad: bool = False,
                   progress: bool = True) -> PreprocessResult:
    """Validate and preprocess the dataset `parts` into `out` (see the module docstring).

    Raises DatasetError listing the problems (and writes nothing) when files are bad and
    `skip_bad` is False; with `skip_bad` they are skipped and listed in index.json.
    """
    start = time.perf_counter()
    out = Path(out).resolve()
    d = cfg.data
    h, w = d.height, d.width
    chash = config_hash(cfg, "data")
    drop, drop_file = _read_drop_list(d.drop_list, cfg)
    fp_rows = input_fingerprint(parts, [drop_file] if drop_file else [])
    fingerprint = hashlib.sha256(json.dumps(
        {"files": fp_rows, "seed": cfg.seed, "skip_bad": skip_bad, "parts": parts.to_dict()},
        sort_keys=True).encode()).hexdigest()
    done = _up_to_date(out, chash, fingerprint)
    if done is not None:
        s = done["extra"]["splits"]
        return PreprocessResult(out, done, True, f"preprocess: {out} is up to date (same inputs and "
                                f"data config: {s['train']} train, {s['val']} val, {s['test']} test); "
                                "nothing to do")
    _check_replaceable(out)

    # Cheap checks first: listing, matching, pairing json. Nothing is written if they fail.
    scan = scan_dataset(parts)
    problems = list(scan.problems)
    if problems and not skip_bad:
        raise_problems(problems)
    candidates = [s for s in scan.train if s not in drop]
    dropped = sorted(set(scan.train) & drop)
    if not candidates:
        raise DatasetError(f"{parts.train_imgs}: no usable training pairs"
                           + (" (all are in data.drop_list)" if dropped else ""))
    n_val = min(d.val_count, len(candidates) // 4)
    rng = np.random.default_rng(cfg.seed)
    val_set = {candidates[i] for i in rng.choice(len(candidates), n_val, replace=False)} if n_val else set()

    created = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
    try:
        (stage / "val" / "labels").mkdir(parents=True)
        order = {"train": [s for s in candidates if s not in val_set],
                 "val": [s for s in candidates if s in val_set]}
        files = {split: {k: NpyRows(stage / f"{split}_{k}.npy", len(order[split]), shape)
                         for k, shape in (("images", (h, w, 3)), ("labels", (h, w)), ("edges", (h, w)))}
                 for split in order}
        tasks = []
        for split, split_stems in order.items():
            specs = {k: f.spec() for k, f in files[split].items()}
            for row, s in enumerate(split_stems):
                copy = str(stage / "val" / "labels" / f"{s}.png") if split == "val" else None
                tasks.append((s, str(scan.train[s][0]), str(scan.train[s][1]), h, w, d.canny_low,
                              d.canny_high, copy, row, specs))
        tasks.sort(key=lambda t: t[0])  # decode in name order (directory order on disk)
        kept = {"train": [], "val": []}
        counts = {s: {"pixels": np.zeros(NUM_CLASSES, np.int64), "images": np.zeros(NUM_CLASSES, np.int64)}
                  for s in ("train", "val")}
        converted: list[Problem] = []
        bad_photos: set[str] = set()  # photos that do not decode: unusable as style references
        for r in parallel_map(_process_pair, tasks, d.workers, "preprocess", progress):
            if "problems" in r:
                problems += r["problems"]
                bad_photos.update(r["undecodable"])
                continue
            split = "val" if r["stem"] in val_set else "train"
            kept[split].append(r["row"])
            counts[split]["pixels"] += r["counts"]
            counts[split]["images"] += r["counts"] > 0
            if r["note"]:
                converted.append(r["note"])
        _close_maps()

        # Test maps and the reference photos that are not training pairs: decode-check them too.
        decoded = {str(scan.train[s][0]) for s in candidates}
        refs = sorted({str(parts.train_imgs / v) for v in scan.pairs.values()} - decoded)
        checks = [("label", str(p)) for p in scan.test_maps.values()] + [("photo", r) for r in refs]
        bad_maps = set()
        for r in parallel_map(_check_file, checks, d.workers, "check test maps", progress):
            problems += r["problems"]
            if r["problems"]:
                (bad_maps if r["kind"] == "label" else bad_photos).add(r["path"])
        if problems and not skip_bad:
            raise_problems(problems)
        if not kept["train"]:
            raise DatasetError(f"{parts.train_imgs}: no usable training pairs left after skipping bad files")
        stems = {}
        for split in ("train", "val"):
            rows = sorted(kept[split])
            for f in files[split].values():
                f.finish(rows)
            stems[split] = [order[split][i] for i in rows]

        # Test part: keep maps that decode and whose reference photo is usable.
        test_pairs, test_labels_dir = {}, parts.test_labels
        if parts.test_labels is not None:
            for name, ref in scan.pairs.items():
                ref_path = str(parts.train_imgs / ref)
                if str(scan.test_maps[name]) in bad_maps:
                    continue
                if ref_path in bad_photos:
                    problems.append(Problem(str(scan.test_maps[name]),
                                            f"its reference photo {ref} is unusable (see above)"))
                    continue
                test_pairs[name] = ref
            test_pairs = dict(sorted(test_pairs.items()))
            if not test_pairs:
                raise DatasetError(f"{parts.test_labels}: no usable test maps left after skipping bad files")
            if len(test_pairs) < len(scan.test_maps):  # skipped maps: a folder of exactly the usable ones
                (stage / "test" / "labels").mkdir(parents=True)
                for name in test_pairs:
                    shutil.copy2(scan.test_maps[name], stage / "test" / "labels" / name)
                test_labels_dir = out / "test" / "labels"
            atomic_write_json(stage / "test_pairs.json", test_pairs)

        # Validation references: drawn from the train split only, seeded.
        ref_rng = np.random.default_rng([cfg.seed, 1])
        train_photo_names = [scan.train[s][0].name for s in stems["train"]]
        val_pairs = {f"{s}.png": train_photo_names[int(ref_rng.integers(len(train_photo_names)))]
                     for s in stems["val"]}
        for stale in set(val_set) - set(stems["val"]):  # val maps whose pair was skipped
            (stage / "val" / "labels" / f"{stale}.png").unlink(missing_ok=True)
        atomic_write_json(stage / "val_pairs.json", dict(sorted(val_pairs.items())))

        paths = {"train_imgs": str(parts.train_imgs), "train_labels": str(parts.train_labels),
                 "test_labels": str(test_labels_dir) if test_labels_dir else None,
                 "pairs": str(parts.pairs) if parts.pairs else None}
        index = {"train": stems["train"], "val": stems["val"], "test": list(test_pairs),
                 "skipped": [p.to_dict() for p in problems], "dropped": dropped,
                 "converted": [p.to_dict() for p in converted], "paths": paths}
        atomic_write_json(stage / "index.json", index)
        atomic_write_json(stage / "class_stats.json", {
            "classes": list(CLASS_NAMES),
            **{s: {k: [int(v) for v in counts[s][k]] for k in ("pixels", "images")}
               for s in ("train", "val")},
        })
        splits = {"train": len(stems["train"]), "val": len(stems["val"]), "test": len(test_pairs)}
        inputs = {}
        if parts.root is not None and (parts.root / MANIFEST).is_file():
            try:
                upstream = json.loads((parts.root / MANIFEST).read_text(encoding="utf-8"))
                if upstream.get("stage") == "sample-data":
                    inputs["sample-data"] = manifest_hash(parts.root)
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                pass
        manifest = write_manifest(
            stage, "preprocess", config_hash=chash, inputs=inputs, counts=splits, hash_files=False,
            extra={"height": h, "width": w, "num_classes": NUM_CLASSES, "paths": paths, "splits": splits,
                   "seed": cfg.seed, "fingerprint": fingerprint, "skipped": len(problems),
                   "workers": resolve_workers(d.workers), "seconds": round(time.perf_counter() - start, 3)},
        )
        # Swap the finished folder into place.
        trash = None
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(trash / "old")
        stage.rename(out)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        _close_maps()
        shutil.rmtree(stage, ignore_errors=True)
        for p in created:  # leave no empty folders behind either
            try:
                p.rmdir()
            except OSError:
                break
        raise
    note = ""
    if problems:
        note += f"; skipped {len(problems)} bad file(s), listed in {out / 'index.json'}"
    if converted:
        note += f"; converted {len(converted)} non-RGB photo(s)"
    if dropped:
        note += f"; dropped {len(dropped)} (data.drop_list)"
    summary = (f"preprocess: {splits['train']} train + {splits['val']} val pairs at {w}x{h}, "
               f"{splits['test']} test maps -> {out}{note}")
    return PreprocessResult(out, manifest, False, summary)

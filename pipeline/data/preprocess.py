"""The preprocess stage: validate a dataset, resize it, make edge maps, split off validation.

`run_preprocess(cfg, parts, out)` writes the folder whose format `pipeline.core.preprocessed`
owns (every file name comes from `PreprocessedData`). It is built through `staged_folder`: a
temporary sibling folder that replaces `out` only when complete, under the folder's lock, so a
failed validation (without --skip-bad) leaves nothing behind and a second run is refused. Arrays
are streamed to disk one image at a time (10,000 full-size photos are 5.9 GB). Re-running with
the same data config, seed and input files (names, sizes, mtimes) is a no-op.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..core.artifacts import (FolderLock, StageResult, atomic_write_json, check_replaceable, read_manifest,
                              staged_folder, write_manifest)
from ..core.classes import CLASS_NAMES, NUM_CLASSES
from ..core.config import Config, config_hash
from ..core.errors import ArtifactError, DatasetError
from ..core.preprocessed import ARRAY_KINDS, STAGE, PreprocessedData
from .layout import (BadFile, DatasetParts, Problem, Scan, find_bad_files, input_fingerprint, parallel_map,
                     raise_problems, read_drop_list, read_label, read_photo, resolve_workers, scan_dataset)


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



# ============================================================================ the stage
@dataclass
class _Plan:
    """What the cheap checks decided, before anything is decoded or written."""

    scan: Scan
    order: dict[str, list[str]]  # split -> stems in row order
    dropped: list[str]
    problems: list[Problem]
    chash: str
    fingerprint: str
    start: float


@dataclass
class _Decoded:
    """What decoding the training pairs and the test files found."""

    kept: dict[str, list[int]] = field(default_factory=lambda: {"train": [], "val": []})
    counts: dict = field(default_factory=lambda: {
        s: {"pixels": np.zeros(NUM_CLASSES, np.int64), "images": np.zeros(NUM_CLASSES, np.int64)}
        for s in ("train", "val")})
    converted: list[Problem] = field(default_factory=list)
    bad_photos: set[str] = field(default_factory=set)  # photos that do not decode: unusable references
    bad_maps: set[str] = field(default_factory=set)


def _fingerprint(cfg: Config, parts: DatasetParts, skip_bad: bool, drop_file: Path | None) -> str:
    """Identity of everything the output depends on besides the data config: input files
    (names, sizes, mtimes), seed, --skip-bad and the parts' paths."""
    rows = input_fingerprint(parts, [drop_file] if drop_file else [])
    return hashlib.sha256(json.dumps(
        {"files": rows, "seed": cfg.seed, "skip_bad": skip_bad, "parts": parts.to_dict()},
        sort_keys=True).encode()).hexdigest()


def _up_to_date(out: Path, chash: str, fingerprint: str) -> dict | None:
    try:
        manifest = read_manifest(out, STAGE, config_hash=chash)
    except ArtifactError:
        return None
    return manifest if manifest.get("extra", {}).get("fingerprint") == fingerprint else None


def _plan(cfg: Config, parts: DatasetParts, drop: set[str], skip_bad: bool) -> tuple[Scan, dict, list]:
    """List and match the dataset, drop listed stems, draw the validation split (seeded).
    Returns (scan, {split: stems}, dropped stems); DatasetError when the cheap checks fail."""
    scan = scan_dataset(parts)
    if scan.problems and not skip_bad:
        raise_problems(scan.problems)
    candidates = [s for s in scan.train if s not in drop]
    dropped = sorted(set(scan.train) & drop)
    if not candidates:
        raise DatasetError(f"{parts.train_imgs}: no usable training pairs"
                           + (" (all are in data.drop_list)" if dropped else ""))
    n_val = min(cfg.data.val_count, len(candidates) // 4)
    rng = np.random.default_rng(cfg.seed)
    val_set = {candidates[i] for i in rng.choice(len(candidates), n_val, replace=False)} if n_val else set()
    order = {"train": [s for s in candidates if s not in val_set],
             "val": [s for s in candidates if s in val_set]}
    return scan, order, dropped


def _decode_pairs(cfg: Config, plan: _Plan, folder: PreprocessedData, progress: bool) -> tuple[_Decoded, dict]:
    """Decode, check, resize and edge every training pair into the folder's row files.
    Returns (what was found, {split: {kind: NpyRows}}) with the row files not yet finished."""
    d, h, w = cfg.data, cfg.data.height, cfg.data.width
    folder.val_labels_dir.mkdir(parents=True)
    shapes = {"images": (h, w, 3), "labels": (h, w), "edges": (h, w)}
    files = {split: {k: NpyRows(folder.array_path(split, k), len(stems), shapes[k]) for k in ARRAY_KINDS}
             for split, stems in plan.order.items()}
    tasks = []
    for split, stems in plan.order.items():
        specs = {k: f.spec() for k, f in files[split].items()}
        for row, s in enumerate(stems):
            copy = str(folder.val_labels_dir / f"{s}.png") if split == "val" else None
            photo, label = plan.scan.train[s]
            tasks.append((s, str(photo), str(label), h, w, d.canny_low, d.canny_high, copy, row, specs))
    tasks.sort(key=lambda t: t[0])  # decode in name order (directory order on disk)
    val_set = set(plan.order["val"])
    found = _Decoded()
    for r in parallel_map(_process_pair, tasks, d.workers, "preprocess", progress):
        if "problems" in r:
            plan.problems += r["problems"]
            found.bad_photos.update(r["undecodable"])
            continue
        split = "val" if r["stem"] in val_set else "train"
        found.kept[split].append(r["row"])
        found.counts[split]["pixels"] += r["counts"]
        found.counts[split]["images"] += r["counts"] > 0
        if r["note"]:
            found.converted.append(r["note"])
    _close_maps()
    return found, files


def _check_test_files(cfg: Config, plan: _Plan, found: _Decoded, parts: DatasetParts, progress: bool) -> None:
    """Decode the test maps and the reference photos that are not training pairs."""
    decoded = {str(plan.scan.train[s][0]) for split in plan.order.values() for s in split}
    refs = sorted({str(parts.train_imgs / v) for v in plan.scan.pairs.values()} - decoded)
    checks = [("label", str(p)) for p in plan.scan.test_maps.values()] + [("photo", r) for r in refs]
    bad = find_bad_files(checks, cfg.data.workers, "check test maps", progress)
    for kind, path in checks:
        if path in bad:
            plan.problems += bad[path]
            (found.bad_maps if kind == "label" else found.bad_photos).add(path)


def _finish_arrays(plan: _Plan, found: _Decoded, files: dict, folder: PreprocessedData) -> dict[str, list[str]]:
    """Compact the row files to the kept rows; drop the val maps of skipped pairs; return the
    stems of each split."""
    stems = {}
    for split in ("train", "val"):
        rows = sorted(found.kept[split])
        for f in files[split].values():
            f.finish(rows)
        stems[split] = [plan.order[split][i] for i in rows]
    for stale in set(plan.order["val"]) - set(stems["val"]):  # val maps whose pair was skipped
        (folder.val_labels_dir / f"{stale}.png").unlink(missing_ok=True)
    return stems


def _write_test_part(plan: _Plan, found: _Decoded, parts: DatasetParts, folder: PreprocessedData,
                     out: Path) -> tuple[dict[str, str], Path | None]:
    """Keep the test maps that decode and whose reference is usable: (pairs, maps folder)."""
    if parts.test_labels is None:
        return {}, None
    scan, test_pairs = plan.scan, {}
    for name, ref in scan.pairs.items():
        if str(scan.test_maps[name]) in found.bad_maps:
            continue
        if str(parts.train_imgs / ref) in found.bad_photos:
            plan.problems.append(Problem(str(scan.test_maps[name]),
                                         f"its reference photo {ref} is unusable (see above)"))
            continue
        test_pairs[name] = ref
    test_pairs = dict(sorted(test_pairs.items()))
    if not test_pairs:
        raise DatasetError(f"{parts.test_labels}: no usable test maps left after skipping bad files")
    labels_dir = parts.test_labels
    if len(test_pairs) < len(scan.test_maps):  # skipped maps: a folder of exactly the usable ones
        folder.test_labels_dir.mkdir(parents=True)
        for name in test_pairs:
            shutil.copy2(scan.test_maps[name], folder.test_labels_dir / name)
        labels_dir = PreprocessedData.at(out).test_labels_dir
    atomic_write_json(folder.pairs_path("test"), test_pairs)
    return test_pairs, labels_dir


def _write_val_pairs(cfg: Config, plan: _Plan, stems: dict, folder: PreprocessedData) -> None:
    """Validation references: drawn from the train split only, seeded."""
    rng = np.random.default_rng([cfg.seed, 1])
    names = [plan.scan.train[s][0].name for s in stems["train"]]
    pairs = {f"{s}.png": names[int(rng.integers(len(names)))] for s in stems["val"]}
    atomic_write_json(folder.pairs_path("val"), dict(sorted(pairs.items())))


def _write_index(cfg: Config, plan: _Plan, found: _Decoded, parts: DatasetParts, folder: PreprocessedData,
                 stems: dict, test: tuple[dict, Path | None]) -> dict:
    """index.json, class_stats.json, then the manifest (last); return the manifest."""
    test_pairs, test_labels_dir = test
    paths = {"train_imgs": str(parts.train_imgs), "train_labels": str(parts.train_labels),
             "test_labels": str(test_labels_dir) if test_labels_dir else None,
             "pairs": str(parts.pairs) if parts.pairs else None}
    atomic_write_json(folder.index_path, {
        "train": stems["train"], "val": stems["val"], "test": list(test_pairs),
        "skipped": [p.to_dict() for p in plan.problems], "dropped": plan.dropped,
        "converted": [p.to_dict() for p in found.converted], "paths": paths})
    atomic_write_json(folder.class_stats_path, {
        "classes": list(CLASS_NAMES),
        **{s: {k: [int(v) for v in found.counts[s][k]] for k in ("pixels", "images")} for s in ("train", "val")},
    })
    splits = {"train": len(stems["train"]), "val": len(stems["val"]), "test": len(test_pairs)}
    d = cfg.data
    return write_manifest(
        folder.root, STAGE, config_hash=plan.chash, inputs=parts.upstream_inputs(), counts=splits,
        hash_files=False,
        extra={"height": d.height, "width": d.width, "num_classes": NUM_CLASSES, "paths": paths,
               "splits": splits, "seed": cfg.seed, "fingerprint": plan.fingerprint,
               "skipped": len(plan.problems), "converted": len(found.converted), "dropped": len(plan.dropped),
               "workers": resolve_workers(d.workers), "seconds": round(time.perf_counter() - plan.start, 3)},
    )


def _build(cfg: Config, plan: _Plan, parts: DatasetParts, tmp: Path, out: Path, skip_bad: bool,
           progress: bool) -> dict:
    """Write the whole preprocessed folder into `tmp` (to become `out`); return its manifest."""
    folder = PreprocessedData.at(tmp)
    try:
        found, files = _decode_pairs(cfg, plan, folder, progress)
        _check_test_files(cfg, plan, found, parts, progress)
    finally:
        _close_maps()
    if plan.problems and not skip_bad:
        raise_problems(plan.problems)
    if not found.kept["train"]:
        raise DatasetError(f"{parts.train_imgs}: no usable training pairs left after skipping bad files")
    stems = _finish_arrays(plan, found, files, folder)
    test = _write_test_part(plan, found, parts, folder, out)
    _write_val_pairs(cfg, plan, stems, folder)
    return _write_index(cfg, plan, found, parts, folder, stems, test)


def _remove_created(created: list[Path], out: Path) -> None:
    """After a failure: remove the parent folders this run created (and the lock file it left
    in the deepest one), so that a refused run leaves nothing behind."""
    if created:  # the lock file is ours: its folder did not exist before this run
        FolderLock(out, STAGE).path.unlink(missing_ok=True)
    for p in created:  # deepest first
        try:
            p.rmdir()
        except OSError:
            break


def _summary(out: Path, manifest: dict, up_to_date: bool) -> list[str]:
    extra, s = manifest["extra"], manifest["extra"]["splits"]
    if up_to_date:
        return [f"preprocess: {out} is up to date (same inputs and data config: {s['train']} train, "
                f"{s['val']} val, {s['test']} test); nothing to do"]
    note = ""
    if extra.get("skipped"):
        note += f"; skipped {extra['skipped']} bad file(s), listed in {PreprocessedData.at(out).index_path}"
    if extra.get("converted"):
        note += f"; converted {extra['converted']} non-RGB photo(s)"
    if extra.get("dropped"):
        note += f"; dropped {extra['dropped']} (data.drop_list)"
    return [f"preprocess: {s['train']} train + {s['val']} val pairs at {extra['width']}x{extra['height']}, "
            f"{s['test']} test maps -> {out}{note}"]


def run_preprocess(cfg: Config, parts: DatasetParts, out: str | Path, *, skip_bad: bool = False,
                   progress: bool = True) -> StageResult:
    """Validate and preprocess the dataset `parts` into the folder `out`.

    Returns StageResult(manifest, summary lines, up_to_date). Raises DatasetError listing the
    problems (and writes nothing) when files are bad and `skip_bad` is False; with `skip_bad`
    they are skipped and listed in index.json. Refuses (ArtifactError) an `out` that is not a
    preprocess folder or that another run is writing.
    """
    start = time.perf_counter()
    out = Path(out).resolve()
    drop, drop_file = read_drop_list(cfg.data.drop_list, cfg.source)
    fingerprint, chash = _fingerprint(cfg, parts, skip_bad, drop_file), config_hash(cfg, "data")
    done = _up_to_date(out, chash, fingerprint)
    if done is not None:
        return StageResult(done, _summary(out, done, True), up_to_date=True)
    check_replaceable(out, STAGE)
    scan, order, dropped = _plan(cfg, parts, drop, skip_bad)  # cheap checks: nothing written if they fail
    plan = _Plan(scan, order, dropped, list(scan.problems), chash, fingerprint, start)
    created = [p for p in [out.parent, *out.parent.parents] if not p.exists()]
    held = False  # whether this run got the lock (a refused one must not touch the lock file)
    try:
        with staged_folder(out, stage=STAGE) as tmp:
            held = True
            manifest = _build(cfg, plan, parts, tmp, out, skip_bad, progress)
    except BaseException:
        if held:
            _remove_created(created, out)
        raise
    return StageResult(manifest, _summary(out, manifest, False))

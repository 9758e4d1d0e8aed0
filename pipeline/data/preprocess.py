"""The preprocess stage: validate a dataset, resize it, make edge maps, split off validation.

`run_preprocess(cfg, parts, out)` writes the folder whose format `pipeline.core.preprocessed`
owns (every file name comes from `PreprocessedData`). It is built through `staged_folder`: a
temporary sibling folder that replaces `out` only when complete, under the folder's lock, so a
failed validation (without --skip-bad) leaves nothing behind and a second run is refused. Arrays
are streamed to disk one image at a time (10,000 full-size photos are 5.9 GB). Re-running with
the same data config, seed and input files (names, sizes, mtimes) is a no-op.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from ..core.artifacts import (FolderLock, StageResult, atomic_write_json, check_replaceable, read_manifest,
                              staged_folder, write_manifest)
from ..core.classes import CLASS_NAMES, NUM_CLASSES
from ..core.config import Config, config_hash
from ..core.errors import ArtifactError, DatasetError
from ..core.preprocessed import ARRAY_KINDS, STAGE, PreprocessedData
from .layout import (BadFile, DatasetParts, Problem, Scan, decode_check, input_fingerprint, parallel_map,
                     raise_problems, read_drop_list, read_label, read_photo, resolve_workers, scan_dataset)
from .npy_rows import NpyRows, close_row_files, write_row


# ============================================================================ per-file work
def class_counts(labels: np.ndarray) -> np.ndarray:
    """Pixel count of each class id 0..NUM_CLASSES-1 in a uint8 label array, as int64."""
    flat = labels.reshape(1, -1)
    if flat.shape[1] % 2:
        hist = cv2.calcHist([flat], [0], None, [NUM_CLASSES], [0, NUM_CLASSES])
        return hist.ravel().astype(np.int64)
    # Counted as pixel pairs (a 29x29 joint histogram, then both marginals): a run of one class
    # makes each increment wait for the last one, and pairs halve the chain (0.47 -> 0.23 ms at
    # 512x384). calcHist counts in float32, exact below 2**24 pixels; the sums are float64.
    pairs = cv2.calcHist([flat.reshape(1, -1, 2)], [0, 1], None, [NUM_CLASSES] * 2, [0, NUM_CLASSES] * 2)
    return (pairs.sum(0, dtype=np.float64) + pairs.sum(1, dtype=np.float64)).astype(np.int64)


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
    small = lab
    if lab.shape != (h, w):
        small = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    counts = class_counts(small)
    write_row(specs["labels"], row, small)
    if label_copy:
        cv2.imwrite(label_copy, lab)
    if img.shape[:2] != (h, w):
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    write_row(specs["edges"], row, cv2.Canny(grey, lo, hi))
    write_row(specs["images"], row, img)
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


def _work(task: tuple) -> dict:
    """One task of the stage's single worker pool: ("pair", `_process_pair` task) or
    ("check", `decode_check` task); returns `_process_pair`'s dict or {"check": (kind, path, problems)}."""
    what, body = task
    return _process_pair(body) if what == "pair" else {"check": (body[0], *decode_check(body))}


def _tasks(cfg: Config, plan: _Plan, folder: PreprocessedData, files: dict, parts: DatasetParts) -> list:
    """Every decode of the stage, for one pool: the training pairs in name order (directory order
    on disk), then the test maps and the reference photos that are not training pairs (a photo
    is never decoded twice)."""
    d, h, w = cfg.data, cfg.data.height, cfg.data.width
    pairs = []
    for split, stems in plan.order.items():
        specs = {k: f.spec() for k, f in files[split].items()}
        for row, s in enumerate(stems):
            copy = str(folder.val_labels_dir / f"{s}.png") if split == "val" else None
            photo, label = plan.scan.train[s]
            pairs.append((s, str(photo), str(label), h, w, d.canny_low, d.canny_high, copy, row, specs))
    pairs.sort(key=lambda t: t[0])
    decoded = {str(plan.scan.train[s][0]) for split in plan.order.values() for s in split}
    refs = sorted({str(parts.train_imgs / v) for v in plan.scan.pairs.values()} - decoded)
    checks = [("label", str(p)) for p in plan.scan.test_maps.values()] + [("photo", r) for r in refs]
    return [("pair", t) for t in pairs] + [("check", c) for c in checks]


def _keep_freed_memory() -> None:
    """Let glibc's allocator keep freed memory in this process (Linux; a no-op elsewhere).

    Each pair allocates and frees about 2 MB (the decoded photo, Canny's work buffers...); by
    default glibc hands such blocks back to the OS and the next pair faults them in again (260
    page faults a pair at 512x384, an eighth of the stage's CPU time). This keeps up to 16 MB of
    free heap per allocator arena instead; the setting stays for the rest of the process.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 16 << 20)  # M_TRIM_THRESHOLD: free heap kept before returning it
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD: blocks below this come from the heap
    except (OSError, AttributeError):  # not glibc
        pass


@contextmanager
def _opencv_threads(n: int) -> Iterator[None]:
    """Run the block with OpenCV limited to `n` threads per call (restored after)."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _decode(cfg: Config, plan: _Plan, folder: PreprocessedData, parts: DatasetParts,
            progress: bool) -> tuple[_Decoded, dict]:
    """Decode, check, resize and edge every training pair into the folder's row files, and
    check the test files, in one worker pool. Returns (what was found, {split: {kind: NpyRows}})
    with the row files not yet finished."""
    h, w = cfg.data.height, cfg.data.width
    folder.val_labels_dir.mkdir(parents=True)
    shapes = {"images": (h, w, 3), "labels": (h, w), "edges": (h, w)}
    files = {split: {k: NpyRows(folder.array_path(split, k), len(stems), shapes[k]) for k in ARRAY_KINDS}
             for split, stems in plan.order.items()}
    val_set, found = set(plan.order["val"]), _Decoded()
    tasks = _tasks(cfg, plan, folder, files, parts)
    # the worker threads are the stage's parallelism: OpenCV's own threads would compete with
    # them for the same cores (and spin-wait), for no gain
    _keep_freed_memory()
    with _opencv_threads(1):
        results = list(parallel_map(_work, tasks, cfg.data.workers, "preprocess", progress))
    for r in results:
        if "check" in r:
            kind, path, problems = r["check"]
            if problems:
                plan.problems += problems
                (found.bad_maps if kind == "label" else found.bad_photos).add(path)
        elif "problems" in r:
            plan.problems += r["problems"]
            found.bad_photos.update(r["undecodable"])
        else:
            split = "val" if r["stem"] in val_set else "train"
            found.kept[split].append(r["row"])
            found.counts[split]["pixels"] += r["counts"]
            found.counts[split]["images"] += r["counts"] > 0
            if r["note"]:
                found.converted.append(r["note"])
    close_row_files()
    return found, files


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
        found, files = _decode(cfg, plan, folder, parts, progress)
    finally:
        close_row_files()
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

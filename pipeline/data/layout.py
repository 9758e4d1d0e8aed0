"""The competition's dataset layout: finding its parts, listing, decoding and validating them.

A dataset root holds::

    train/imgs/*.jpg                 photos
    train/labels/*.png               grey label maps, class ids 0..28
    test/val_B_labels_resized/*.png  test maps (also found as test/labels, val_B_labels_resized, labels)
    test/label_to_img.json           {"<map>.png": "<train photo>.jpg"} (also found in the root)

Each part may be given by its own path instead (`DatasetParts.find(..., train_imgs=...)`).
Every problem is reported as a `Problem(file, reason)`; the caller either stops
(`raise_problems`) or skips and lists them (`--skip-bad`).

Decoding is `pipeline.core.imageio`'s (one reader per format).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator


from ..core.config import CONFIG_DIR
from ..core.artifacts import MANIFEST, manifest_hash
from ..core.errors import ConfigError, DatasetError
from ..core.imageio import IMAGE_EXTS, LABEL_EXTS, PHOTO_EXTS, BadFile, read_label, read_photo  # noqa: F401 (re-exported)
from ..core.inputs import check_pairs, read_pairs_json

TEST_LABEL_DIRS = ("test/val_B_labels_resized", "test/labels", "val_B_labels_resized", "labels")
PAIRS_FILES = ("test/label_to_img.json", "label_to_img.json")
MAX_LISTED = 20  # problems quoted in one error message


@dataclass(frozen=True)
class Problem:
    """One validation finding: the file it is about and what is wrong with it."""

    file: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"

    def to_dict(self) -> dict:
        return {"file": self.file, "reason": self.reason}


SKIP_BAD_FIX = "Fix the files, or pass --skip-bad to skip them (they are then listed in index.json)"


def raise_problems(problems: list[Problem], what: str = "the dataset", fix: str = SKIP_BAD_FIX) -> None:
    """Raise one DatasetError quoting the first problems, or return when there are none."""
    if not problems:
        return
    head = "\n  ".join(str(p) for p in problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    raise DatasetError(f"{len(problems)} problem(s) in {what}; nothing was written. {fix}:\n  {head}{more}")


# ============================================================================ finding the parts
@dataclass(frozen=True)
class DatasetParts:
    """The folders and files of one dataset (absolute paths; test parts may be None)."""

    train_imgs: Path
    train_labels: Path
    test_labels: Path | None
    pairs: Path | None
    root: Path | None = None

    @classmethod
    def find(
        cls, data_dir: str | Path | None = None, *, train_imgs=None, train_labels=None,
        test_labels=None, pairs=None,
    ) -> "DatasetParts":
        """Locate each part under `data_dir` by the organisers' names, or take the explicit path.

        Raises DatasetError when a training folder is missing, an explicit path does not exist,
        or only one of test maps / pairing json is present.
        """
        root = Path(data_dir).resolve() if data_dir else None
        if root is not None and not root.is_dir():
            raise DatasetError(f"{root}: dataset folder not found (pass --data DIR)")

        def explicit(value, option: str, is_dir: bool) -> Path | None:
            if value is None:
                return None
            p = Path(value).resolve()
            if not (p.is_dir() if is_dir else p.is_file()):
                kind = "folder" if is_dir else "file"
                raise DatasetError(f"{p}: {option} {kind} not found")
            return p

        def required(value, option: str, default: str) -> Path:
            p = explicit(value, option, True)
            if p is not None:
                return p
            if root is None:
                raise DatasetError(f"no dataset given: pass --data DIR (or {option} DIR)")
            p = root / default
            if not p.is_dir():
                raise DatasetError(
                    f"{p}: folder not found; expected the competition layout under {root} "
                    f"({default}/), or pass {option} DIR"
                )
            return p

        t_imgs = required(train_imgs, "--train-imgs", "train/imgs")
        t_labels = required(train_labels, "--train-labels", "train/labels")
        te_labels = explicit(test_labels, "--test-labels", True)
        pairs_p = explicit(pairs, "--pairs", False)
        if root is not None:
            if te_labels is None:
                te_labels = next((root / d for d in TEST_LABEL_DIRS
                                  if (root / d).is_dir() and root / d != t_labels), None)
            if pairs_p is None:
                pairs_p = next((root / f for f in PAIRS_FILES if (root / f).is_file()), None)
        if te_labels is not None and pairs_p is None:
            raise DatasetError(
                f"{te_labels}: test label maps found but no label_to_img.json (looked for "
                f"{', '.join(PAIRS_FILES)} under {root}); pass --pairs FILE"
            )
        if pairs_p is not None and te_labels is None:
            raise DatasetError(
                f"{pairs_p}: pairing file found but no test label maps folder (looked for "
                f"{', '.join(TEST_LABEL_DIRS)} under {root}); pass --test-labels DIR"
            )
        return cls(t_imgs, t_labels, te_labels, pairs_p, root)

    def to_dict(self) -> dict:
        return {"train_imgs": str(self.train_imgs), "train_labels": str(self.train_labels),
                "test_labels": str(self.test_labels) if self.test_labels else None,
                "pairs": str(self.pairs) if self.pairs else None}

    def upstream_inputs(self) -> dict[str, str]:
        """{"sample-data": manifest hash} when the root is a `sample-data` folder, else {}: what
        the preprocess manifest records as its input."""
        if self.root is None or not (self.root / MANIFEST).is_file():
            return {}
        try:
            upstream = json.loads((self.root / MANIFEST).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}
        if isinstance(upstream, dict) and upstream.get("stage") == "sample-data":
            return {"sample-data": manifest_hash(self.root)}
        return {}


def read_drop_list(path_text: str, config_source: str | Path | None) -> tuple[set[str], Path | None]:
    """(stems, resolved file) of config data.drop_list: a text file of stems, one per line, '#'
    comments; relative to the working folder, else to the config file `config_source`."""
    if not path_text:
        return set(), None
    path = Path(path_text)
    if not path.is_absolute() and not path.is_file():
        # beside the config file, else beside the project's configs (where base.toml names it)
        for folder in ([Path(config_source).parent] if config_source else []) + [CONFIG_DIR]:
            if (folder / path_text).is_file():
                path = folder / path_text
                break
    if not path.is_file():
        raise ConfigError(f"data.drop_list: file {path_text!r} not found "
                          "(give a text file of stems, one per line)")
    stems = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            stems.add(Path(line).stem)
    return stems, path.resolve()


# ============================================================================ listing
def list_images(folder: Path, exts: tuple[str, ...], what: str) -> tuple[dict[str, Path], list[Problem]]:
    """Map stem -> file of the images in `folder` with an extension in `exts`.

    Problems: two files with one stem (both listed, the stem is dropped), and image files of
    another kind (e.g. a JPEG among label maps). Hidden and non-image files are ignored.
    Raises DatasetError for an empty folder.
    """
    by_stem: dict[str, list[Path]] = {}
    problems = []
    seen_any = False
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        p = Path(entry.path)
        ext = p.suffix.lower()
        if ext not in IMAGE_EXTS:
            continue
        seen_any = True
        if ext not in exts:
            if exts == LABEL_EXTS:
                reason = ("is not a PNG; label maps must be lossless grey PNGs "
                          "(JPEG compression changes class ids)")
            else:
                reason = f"unsupported photo format '{ext}'; use {', '.join(exts)}"
            problems.append(Problem(str(p), reason))
            continue
        by_stem.setdefault(p.stem, []).append(p)
    if not seen_any:
        raise DatasetError(f"{folder}: empty folder (no {'/'.join(exts)} files); expected the {what} here")
    out = {}
    for stem, files in by_stem.items():
        if len(files) == 1:
            out[stem] = files[0]
        else:
            names = ", ".join(f.name for f in files)
            problems.extend(Problem(str(f), f"duplicate stem '{stem}' ({names}); keep one file per stem")
                            for f in files)
    return out, problems


# ============================================================================ the cheap checks
@dataclass
class Scan:
    """What listing and matching found, before any decoding."""

    parts: DatasetParts
    train: dict[str, tuple[Path, Path]]  # stem -> (photo, label), sorted by stem
    photos: dict[str, Path]  # every listed photo by stem (possible references)
    test_maps: dict[str, Path]  # "<map>.png" -> file
    pairs: dict[str, str]  # "<map>.png" -> reference photo name
    problems: list[Problem] = field(default_factory=list)


def scan_dataset(parts: DatasetParts) -> Scan:
    """List every part, match photos with labels, check the pairing json (nothing decoded).

    Raises DatasetError for problems that make the whole part unusable (empty folder, pairing
    file that is not a JSON object); per-file problems are returned in `Scan.problems`.
    """
    problems: list[Problem] = []
    photos, p1 = list_images(parts.train_imgs, PHOTO_EXTS, "training photos")
    labels, p2 = list_images(parts.train_labels, LABEL_EXTS, "training label maps")
    problems += p1 + p2
    for stem in sorted(photos.keys() - labels.keys()):
        problems.append(Problem(str(photos[stem]),
                                f"photo without a label map (no {stem}.png in {parts.train_labels})"))
    for stem in sorted(labels.keys() - photos.keys()):
        problems.append(Problem(str(labels[stem]),
                                f"label map without a photo (no {stem}.jpg in {parts.train_imgs})"))
    train = {s: (photos[s], labels[s]) for s in sorted(photos.keys() & labels.keys())}

    test_maps: dict[str, Path] = {}
    pairs: dict[str, str] = {}
    if parts.test_labels is not None:
        maps, p3 = list_images(parts.test_labels, LABEL_EXTS, "test label maps")
        problems += p3
        test_maps = {p.name: p for p in sorted(maps.values())}
        raw = read_pairs_json(parts.pairs)
        photo_names = {p.name for p in photos.values()}
        photo_names |= {p.name for p in _all_photo_files(parts.train_imgs)}
        good, bad = check_pairs(raw, parts.pairs, set(test_maps), parts.train_imgs, photo_names)
        for file, reason in bad:
            problems.append(Problem(str(test_maps[file]) if file in test_maps else file, reason))
        pairs = good
    return Scan(parts, train, photos, test_maps, pairs, problems)


def _all_photo_files(folder: Path) -> Iterable[Path]:
    """Photos of `folder` by file name, duplicates included (a pair may name either file)."""
    return (Path(e.path) for e in os.scandir(folder)
            if e.is_file() and not e.name.startswith(".") and Path(e.name).suffix.lower() in PHOTO_EXTS)


def input_fingerprint(parts: DatasetParts, extra: Iterable[Path] = ()) -> list:
    """(path, size, mtime_ns) of every input file: equal listings mean unchanged inputs."""
    rows = []
    folders = [parts.train_imgs, parts.train_labels] + ([parts.test_labels] if parts.test_labels else [])
    for folder in folders:
        for e in sorted(os.scandir(folder), key=lambda e: e.name):
            if e.is_file():
                st = e.stat()
                rows.append([str(Path(e.path)), st.st_size, st.st_mtime_ns])
    for f in ([parts.pairs] if parts.pairs else []) + [Path(p) for p in extra]:
        st = Path(f).stat()
        rows.append([str(f), st.st_size, st.st_mtime_ns])
    return rows


# ============================================================================ parallel decoding
def resolve_workers(workers: int) -> int:
    """Config `data.workers` -> worker count (0 = every core this process may use)."""
    if workers > 0:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(func: Callable, items: list, workers: int, desc: str, progress: bool = True,
                 chunksize: int = 4) -> Iterator:
    """Yield func(item) for each item, in order, over `workers` threads, with a progress bar.

    Threads, not processes: the work is decoding, resizing, edges and writes in OpenCV, numpy and
    the OS, which all release the GIL, so threads use every core without a process start-up,
    without pickling each task and result, and without forking a process that already runs
    threads of its own (Jittor's, OpenCV's), which can deadlock the child. One worker (or very
    few items) runs in this thread.
    """
    from multiprocessing.pool import ThreadPool

    from tqdm import tqdm

    n = resolve_workers(workers)
    bar = tqdm(total=len(items), desc=desc, unit="file", disable=not progress, leave=False)
    try:
        if n <= 1 or len(items) < 2 * chunksize:
            for item in items:
                yield func(item)
                bar.update()
            return
        with ThreadPool(min(n, len(items))) as pool:
            for result in pool.imap(func, items, chunksize=chunksize):
                yield result
                bar.update()
    finally:
        bar.close()


# ============================================================================ decode checks
def decode_check(task: tuple[str, str]) -> tuple[str, list[Problem]]:
    """(path, problems) of decoding one file; task is ("label" | "photo", path). For `parallel_map`."""
    kind, path = task
    try:
        if kind == "label":
            read_label(path)
        else:
            read_photo(path)
    except BadFile as exc:
        return path, [Problem(path, str(exc))]
    return path, []


def find_bad_files(files: list[tuple[str, str]], workers: int, desc: str,
                   progress: bool = True) -> dict[str, list[Problem]]:
    """Decode every ("label" | "photo", path) of `files` (over `workers` threads); return
    {path: problems} of the ones that cannot be used (empty when all decode)."""
    return {path: problems for path, problems in parallel_map(decode_check, files, workers, desc, progress)
            if problems}

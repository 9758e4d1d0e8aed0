"""Where a stage's label maps, pairing json and photos are, and the checked reading of a pairing json.

`generate` (Jittor), `evaluate` (PyTorch) and `package` all use this module, so it stays pure
Python and numpy (and the image readers): no jittor, no torch.

    resolve_inputs(data_dir, split, labels=..., pairs=..., refs=..., need=...) -> SplitInputs
    resolve_split(data_dir, "val" | "test") -> SplitPaths
    load_pairs(pairs_json, labels_dir, refs_dir) -> {"<map>.png": "<photo>.jpg"}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import ConfigError, DatasetError
from .imageio import LABEL_EXTS, PHOTO_EXTS
from .preprocessed import PreprocessedData

SPLITS = ("val", "test")


@dataclass(frozen=True)
class SplitPaths:
    """The files of one split of a preprocessed dataset.

    labels_dir: the split's label maps (val: copies inside the preprocess folder; test: the
    dataset's test maps). pairs_json: {"<map>.png": "<reference photo>"} for every map.
    refs_dir: folder the references are named in (the training photos). train_photos_dir: the
    training photos (FID statistics). gt_photos_dir: ground-truth photos named by map stem
    (val: the training photos; test: None, the organisers keep them).
    """

    split: str
    labels_dir: Path
    pairs_json: Path
    refs_dir: Path
    train_photos_dir: Path
    gt_photos_dir: Path | None


def resolve_split(data_dir: str | Path, split: str) -> SplitPaths:
    """Paths of `split` ("val" or "test") of the preprocess folder `data_dir`.

    Checks the folder's manifest (raises ArtifactError when missing or stale) and that the
    folders it names still exist (raises DatasetError otherwise).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    data_dir = Path(data_dir)
    folder = PreprocessedData.open(data_dir)
    paths = folder.paths
    train_imgs = paths.get("train_imgs")
    if not train_imgs:
        raise DatasetError(f"{data_dir}/manifest.json: no paths.train_imgs; re-run `landscape preprocess`")
    train_imgs = Path(train_imgs)
    if split == "val":
        out = SplitPaths("val", folder.val_labels_dir, folder.pairs_path("val"), train_imgs, train_imgs, train_imgs)
    else:
        if not paths.get("test_labels") or not paths.get("pairs"):
            raise DatasetError(
                f"{data_dir}: preprocessed without a test part (no test label maps or "
                "label_to_img.json were found); re-run `landscape preprocess` with the test maps "
                "in DATA/test/labels (or --test-labels DIR --pairs FILE)"
            )
        out = SplitPaths("test", Path(paths["test_labels"]), folder.pairs_path("test"), train_imgs, train_imgs, None)
    for what, folder in (("label maps", out.labels_dir), ("training photos", train_imgs)):
        if not folder.is_dir():
            raise DatasetError(
                f"{folder}: the {split} split's {what} folder is gone (moved or deleted since "
                f"`landscape preprocess` ran on {data_dir}); restore it or re-run preprocess"
            )
    if not out.pairs_json.is_file():
        raise DatasetError(f"{out.pairs_json}: missing; re-run `landscape preprocess` on {data_dir}")
    return out


# ---------------------------------------------------------------------------- --data/--split or paths
# The parts a stage may need, each with the option that gives it explicitly (quoted in messages).
PARTS = {
    "labels": ("labels_dir", "--labels DIR", True),
    "pairs": ("pairs_json", "--pairs JSON", False),
    "refs": ("refs_dir", "--refs DIR", True),
    "train_photos": ("train_photos_dir", "--train-photos DIR", True),
    "gt_photos": ("gt_photos_dir", "--gt-photos DIR", True),
}


@dataclass(frozen=True)
class SplitInputs:
    """The label maps a stage works on and what goes with them; a part is None when it was not
    asked for and not found. split: "val", "test" or "" (explicit paths); data_dir: the
    preprocess folder they came from (None for explicit paths only)."""

    labels_dir: Path | None = None
    pairs_json: Path | None = None
    refs_dir: Path | None = None
    train_photos_dir: Path | None = None
    gt_photos_dir: Path | None = None
    split: str = ""
    data_dir: Path | None = None

    def load_pairs(self) -> dict[str, str]:
        """The checked pairing {"<map>.png": "<reference>"} (see `load_pairs`)."""
        return load_pairs(self.pairs_json, self.labels_dir, self.refs_dir)


def resolve_inputs(
    data_dir: str | Path | None = None, split: str | None = None, *,
    need: tuple[str, ...] = ("labels", "pairs", "refs"), default_split: str | None = None,
    **explicit: str | Path | None,
) -> SplitInputs:
    """The one rule for "--data DIR --split S, or explicit paths".

    explicit: labels=, pairs=, refs=, train_photos=, gt_photos= (None = not given). Each part is
    its explicit path when given, else the part of `split` of the preprocess folder `data_dir`
    (`resolve_split`). need: the parts the caller cannot do without. default_split: the split
    used when --data comes without --split (None: --split is required).
    Raises ConfigError for an incomplete or contradictory choice, DatasetError for an explicit
    path that does not exist, ArtifactError for a missing or stale preprocess folder.
    """
    unknown = set(explicit) - set(PARTS) or set(need) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown input part(s) {sorted(unknown)}; parts are {', '.join(PARTS)}")
    if split is not None and data_dir is None:
        raise ConfigError(f"--split {split} needs --data DIR (a preprocessed folder artifacts/data/<id>)")
    found: dict[str, Path | None] = {}
    if data_dir is not None:
        split = split or default_split
        if split is None:
            raise ConfigError("--data needs --split val|test (which split's maps to use)")
        sp = resolve_split(data_dir, split)
        found = {"labels": sp.labels_dir, "pairs": sp.pairs_json, "refs": sp.refs_dir,
                 "train_photos": sp.train_photos_dir, "gt_photos": sp.gt_photos_dir}
    fields = {}
    for part, (field_name, option, is_dir) in PARTS.items():
        value = explicit.get(part)
        if value is not None:
            path = Path(value)
            if not (path.is_dir() if is_dir else path.is_file()):
                raise DatasetError(f"{path}: {option.split()[0]} {'folder' if is_dir else 'file'} not found")
            fields[field_name] = path
        else:
            fields[field_name] = found.get(part)
    missing = [PARTS[p][1] for p in need if fields[PARTS[p][0]] is None]
    if missing:
        ways = " ".join(PARTS[p][1] for p in need)
        raise ConfigError(f"missing {', '.join(missing)}: give either --data DIR --split val|test, "
                          f"or {ways}")
    return SplitInputs(**fields, split=split or "", data_dir=Path(data_dir) if data_dir else None)


def unsafe_reference(value: str) -> bool:
    """True when a pairing value is not a plain relative path inside its folder."""
    if (not value or os.path.isabs(value) or PureWindowsPath(value).is_absolute()
            or value.startswith(("/", "\\"))):
        return True
    parts = PurePosixPath(value.replace("\\", "/")).parts
    return any(p in ("..", "") for p in parts) or ":" in parts[0]


def read_pairs_json(pairs_json: str | Path) -> dict:
    """Parse a pairing json into a dict of strings; raise DatasetError naming the file."""
    path = Path(pairs_json)
    shape = 'a JSON object {"<map>.png": "<train photo>.jpg", ...}'
    if not path.is_file():
        raise DatasetError(f"{path}: pairing file not found; it must be {shape}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason}); it must be {shape}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(
            f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            f"it must be {shape}"
        ) from None
    if not isinstance(obj, dict):
        raise DatasetError(f"{path}: holds a JSON {type(obj).__name__}, it must be {shape}")
    bad = [k for k, v in obj.items() if not isinstance(v, str)]
    if bad:
        raise DatasetError(f"{path}: the value of '{bad[0]}' is not a string; it must be {shape}")
    return obj


def check_pairs(
    pairs: dict, pairs_json: str | Path, map_names: set[str], refs_dir: str | Path,
    photo_names: set[str] | None = None,
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Split a parsed pairing into (good pairs, problems [(file, reason)]).

    map_names: label map file names that exist; photo_names: photo file names (relative, posix)
    that exist in refs_dir (None = look on disk). Every map must have a pair; every value must
    be a relative path inside refs_dir naming an existing photo.
    """
    refs_dir = Path(refs_dir)
    good, problems = {}, []
    for key, value in pairs.items():
        if key not in map_names:
            what = ("is a path outside the label maps folder; keys are map file names"
                    if unsafe_reference(key) or "/" in key or "\\" in key
                    else "names a label map that is not in the label maps folder")
            problems.append((str(pairs_json), f"'{key}' {what}"))
            continue
        if unsafe_reference(value):
            problems.append((str(pairs_json), f"'{key}' -> '{value}': a path outside {refs_dir}; "
                             "the reference must be a photo name inside it (no '../' or absolute paths)"))
            continue
        rel = value.replace("\\", "/")
        exists = rel in photo_names if photo_names is not None else (refs_dir / rel).is_file()
        if not exists or Path(rel).suffix.lower() not in PHOTO_EXTS:
            problems.append((str(pairs_json), f"'{key}' -> '{value}': no such photo in {refs_dir}"))
            continue
        good[key] = rel
    for name in sorted(map_names - set(pairs)):
        problems.append((name, f"has no entry in {pairs_json}; every map needs a reference photo"))
    return good, problems


def load_pairs(pairs_json: str | Path, labels_dir: str | Path, refs_dir: str | Path) -> dict[str, str]:
    """Read and check a pairing json against the maps in labels_dir and photos in refs_dir.

    Returns {"<map>.png": "<photo name>"} in sorted key order. Raises DatasetError naming the
    file (and the first few problems) when the json is not valid, names a missing map or photo,
    a path outside refs_dir, or leaves a map without a pair.
    """
    labels_dir, refs_dir = Path(labels_dir), Path(refs_dir)
    if not labels_dir.is_dir():
        raise DatasetError(f"{labels_dir}: label maps folder not found")
    if not refs_dir.is_dir():
        raise DatasetError(f"{refs_dir}: reference photos folder not found")
    pairs = read_pairs_json(pairs_json)
    maps = {p.name for p in labels_dir.iterdir()
            if p.is_file() and p.suffix.lower() in LABEL_EXTS and not p.name.startswith(".")}
    good, problems = check_pairs(pairs, pairs_json, maps, refs_dir)
    if problems:
        lines = [f"{file}: {reason}" if file != str(pairs_json) else reason for file, reason in problems[:5]]
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DatasetError(f"{pairs_json}: {len(problems)} pairing problem(s){more}: " + "; ".join(lines))
    return dict(sorted(good.items()))

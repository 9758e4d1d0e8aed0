"""What `evaluate` scores: where its inputs come from, the items it pairs up, and the checks every
input passes before anything is scored or written.

    resolve_inputs(generated, data_dir=..., split=... | labels_dir=..., pairs_json=..., ...)
    collect_items(inputs, need_maps, need_refs) -> [Item(stem, generated, map, ref)]
    check_items(items, need_maps, allow_any_size)   # DatasetError naming every failing file
    reference_photos(inputs, scored_stems)           # the FID/KID reference set: training split only

Generated images get the submission's checks (RGB, 512x384 unless `allow_any_size`), label maps
the dataset's (8-bit class ids 0..28): the readers of `pipeline.core.imageio` decide.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.core.errors import ConfigError, DatasetError
from pipeline.core.imageio import LABEL_EXTS, PHOTO_EXTS, SUBMISSION_SIZE, BadFile, read_label, read_photo
from pipeline.core.inputs import load_pairs, resolve_inputs as resolve_split_inputs
from pipeline.core.preprocessed import PreprocessedData

MAX_LISTED = 10  # failing files named in one message; the rest are counted
# Decoded arrays the check keeps for the scoring pass (one decode per file); past this many bytes
# (about 1,300 pairs of a 512x384 image and its map) the rest are decoded again when scored.
DECODED_KEEP_BYTES = 1 << 30


@dataclass(frozen=True)
class EvalInputs:
    """Where everything comes from; any part may be None when no metric needs it."""

    generated_dir: Path
    labels_dir: Path | None = None
    pairs_json: Path | None = None
    refs_dir: Path | None = None
    train_photos_dir: Path | None = None
    data_dir: Path | None = None
    split: str | None = None


def resolve_inputs(
    generated_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    split: str | None = None,
    labels_dir: str | Path | None = None,
    pairs_json: str | Path | None = None,
    refs_dir: str | Path | None = None,
    train_photos_dir: str | Path | None = None,
) -> EvalInputs:
    """The house rule (`pipeline.core.inputs.resolve_inputs`): explicit paths win, the rest come
    from a preprocessed folder's split (`--data DIR`, `--split` default val). Which parts are
    required depends on the metrics, so `collect_items` says what is missing."""
    found = resolve_split_inputs(data_dir, split, need=(), default_split="val", labels=labels_dir,
                                 pairs=pairs_json, refs=refs_dir, train_photos=train_photos_dir)
    return EvalInputs(Path(generated_dir), found.labels_dir, found.pairs_json, found.refs_dir,
                      found.train_photos_dir, found.data_dir, found.split or None)


def list_images(folder: str | Path) -> list[Path]:
    """Sorted photo files (jpg, jpeg, png) directly inside `folder`; DatasetError when none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_EXTS)
    if not files:
        raise DatasetError(f"{folder}: no .jpg/.jpeg/.png images in it")
    return files


@dataclass(frozen=True)
class Item:
    """One scored image: its stem, the generated file, its label map and style reference.

    decoded: the arrays `check_items` decoded ({"generated": HxWx3, "map": HxW}), kept for the
    scoring pass so each file is decoded once; the scorer pops them (not part of the identity)."""

    stem: str
    generated: Path
    map: Path | None = None
    ref: Path | None = None
    decoded: dict = field(default_factory=dict, compare=False, repr=False)


def _maps_and_pairs(inputs: EvalInputs, need_maps: bool, need_refs: bool) -> tuple[list[str], dict]:
    """The label map names to score and {map name: reference relative to refs_dir}."""
    if need_refs:
        missing = [n for n, v in (("--pairs", inputs.pairs_json), ("--refs", inputs.refs_dir),
                                  ("--labels", inputs.labels_dir)) if v is None]
        if missing:
            raise ConfigError(f"the style metric needs {', '.join(missing)} (or --data DIR --split val)")
        pairs = {Path(k).name: v for k, v in
                 load_pairs(inputs.pairs_json, inputs.labels_dir, inputs.refs_dir).items()}
        return sorted(pairs), pairs
    if inputs.labels_dir is None:
        raise ConfigError("mask-accuracy needs --labels DIR (or --data DIR --split val)")
    names = [p.name for p in list_images(inputs.labels_dir) if p.suffix.lower() in LABEL_EXTS]
    return names, {}


def _find_generated(folder: Path, stem: str) -> Path | None:
    for ext in PHOTO_EXTS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def collect_items(inputs: EvalInputs, need_maps: bool, need_refs: bool) -> list[Item]:
    """One Item per scored image: every map's stem (maps and pairs only when a metric needs them).

    DatasetError when a map has no generated image or there is nothing to score.
    """
    gen = inputs.generated_dir
    if not (need_maps or need_refs):
        return [Item(p.stem, p) for p in list_images(gen)]
    maps, pairs = _maps_and_pairs(inputs, need_maps, need_refs)
    items, absent = [], []
    for name in maps:
        stem = Path(name).stem
        g = _find_generated(gen, stem)
        if g is None:
            absent.append(stem)
            continue
        items.append(Item(stem, g, inputs.labels_dir / name if inputs.labels_dir else None,
                          inputs.refs_dir / pairs[name] if pairs else None))
    if absent:
        raise DatasetError(
            f"{gen}: {len(absent)} of {len(maps)} label maps have no generated image"
            f" (e.g. {', '.join(absent[:5])}.jpg); generate every map of the split first"
        )
    if not items:
        raise DatasetError(f"{gen}: no generated images to score")
    return items


def _checked_generated(path: Path, allow_any_size: bool):
    """(why it cannot be scored like a submission, or None; the decoded RGB array, or None)."""
    try:
        rgb, note = read_photo(path)
    except BadFile as exc:
        return f"{path}: {exc}", None
    if note is not None:
        return f"{path}: {note}; a generated image must be RGB, like the submission's", None
    h, w = rgb.shape[:2]
    if not allow_any_size and (w, h) != SUBMISSION_SIZE:
        return (f"{path}: {w}x{h} pixels, must be {SUBMISSION_SIZE[0]}x{SUBMISSION_SIZE[1]} (W x H)"
                " like the submission's; pass --allow-any-size to score a folder of another size"), None
    return None, rgb


def _check_item(item: Item, need_maps: bool, allow_any_size: bool) -> tuple[list[str], dict]:
    """(problems, {"generated": array, "map": array} of what decoded cleanly)."""
    problem, rgb = _checked_generated(item.generated, allow_any_size)
    found, arrays = [problem], {"generated": rgb}
    if need_maps:
        try:
            arrays["map"] = read_label(item.map)
        except BadFile as exc:
            found.append(f"{item.map}: {exc}")
    return [p for p in found if p], {k: v for k, v in arrays.items() if v is not None}


def check_items(items: list[Item], need_maps: bool, allow_any_size: bool = False,
                keep_bytes: int | None = None) -> None:
    """Decode every generated image (and label map when scored) with the core readers; raise one
    DatasetError naming every file that fails, before anything is scored. The decoded arrays are
    kept in `item.decoded` (up to `keep_bytes`, default DECODED_KEEP_BYTES, in all) for scoring."""
    problems, kept = [], 0
    keep_bytes = DECODED_KEEP_BYTES if keep_bytes is None else keep_bytes
    with ThreadPoolExecutor(max_workers=2) as pool:  # decoding releases the GIL
        for item, (found, arrays) in zip(items, pool.map(
                lambda it: _check_item(it, need_maps, allow_any_size), items)):
            problems += found
            size = sum(a.nbytes for a in arrays.values())
            if not problems and kept + size <= keep_bytes:
                item.decoded.update(arrays)
                kept += size
    if problems:
        for item in items:
            item.decoded.clear()
        shown = problems[:MAX_LISTED]
        more = f"\n  - ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise DatasetError(f"{len(problems)} input file(s) cannot be scored:\n  - "
                           + "\n  - ".join(shown) + more)


# ---------------------------------------------------------------------------- the FID/KID reference set
def names_identity(names: list[str]) -> dict:
    """{"count", "names_sha256"}: a set of file names' identity (sha256 of the sorted names, one a line)."""
    blob = "\n".join(sorted(names)).encode("utf-8")
    return {"count": len(names), "names_sha256": hashlib.sha256(blob).hexdigest()}


def _photo_of(folder: Path, stem: str) -> Path | None:
    for ext in PHOTO_EXTS:
        if (folder / f"{stem}{ext}").is_file():
            return folder / f"{stem}{ext}"
    return None


def _is_data_train_folder(inputs: EvalInputs) -> bool:
    """True when the training photos are the ones `--data` was preprocessed from."""
    if inputs.data_dir is None or inputs.train_photos_dir is None:
        return False
    recorded = PreprocessedData.open(inputs.data_dir).paths.get("train_imgs")
    return bool(recorded) and Path(recorded).resolve() == inputs.train_photos_dir.resolve()


def reference_photos(inputs: EvalInputs, scored_stems: list[str]) -> tuple[list[Path], dict]:
    """The FID/KID reference set and its identity: (sorted photo files, info).

    With `--data`, the training split only (the preprocess index's "train" stems): validation
    photos (the ground truth of the scored maps) and dropped photos stay out, or they would
    flatter the validation FID. With an explicit `--train-photos` folder: every photo in it
    except those named like a scored map. info: {"rule", "folder", "count", "names_sha256",
    "left_out"}. DatasetError when an indexed photo is missing or fewer than 2 remain.
    """
    folder = inputs.train_photos_dir
    if folder is None:
        raise ConfigError("fid needs the training photos: pass --train-photos DIR or --data DIR")
    if _is_data_train_folder(inputs):
        stems = PreprocessedData.open(inputs.data_dir).stems("train")
        files = [_photo_of(folder, s) for s in stems]
        missing = [s for s, f in zip(stems, files) if f is None]
        if missing:
            raise DatasetError(f"{folder}: {len(missing)} training photo(s) of {inputs.data_dir}/index.json"
                               f" are gone (e.g. {missing[0]}); restore them or re-run `landscape preprocess`")
        rule = f"the training split of {inputs.data_dir.resolve()} (val photos left out)"
    else:
        scored = set(scored_stems)
        files = [p for p in list_images(folder) if p.stem not in scored]
        rule = f"every photo of {folder.resolve()} except those named like a scored map"
    files = sorted(files)
    if len(files) < 2:
        raise DatasetError(f"{folder}: FID/KID need at least 2 reference photos, found {len(files)}")
    left_out = len(list_images(folder)) - len(files)
    return files, {"rule": rule, "folder": str(folder.resolve()), **names_identity([p.name for p in files]),
                   "left_out": left_out}

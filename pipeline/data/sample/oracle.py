"""The style oracle: every map of a pairing painted in its reference photo's style.

On the sample dataset the generator knows each training photo's style (train/styles.json), so
it can paint a validation map exactly as a perfect model would colour it: the ceiling of the
style term. The output is a folder like `generate`'s (one `<map stem>.jpg` per map, 512x384 by
default, a manifest), scored by `landscape evaluate` like any generated folder.

    write_style_oracle(labels_dir, pairs_json, styles_json, out, seed)   # the folder writer
    run_style_oracle(cfg, split_paths, out)                               # the stage entry point
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import cv2

from ...core.artifacts import (StageResult, sha256_file, staged_folder,
                               write_manifest)
from ...core.errors import DatasetError
from ...core.imageio import LABEL_EXTS, encode_jpeg, load_label
from ...core.inputs import SplitPaths, read_pairs_json
from .render import render_in_style
from .styles import STYLE_NAMES
from .write import STYLES_JSON

# The stage its folder is recorded under (`evaluate` accepts it as a generated folder).
STAGE = "style-oracle"
_ORACLE_CODE = 4  # seeds: map `stem` of the oracle depends only on (seed, stem)


def read_styles_json(path: str | Path) -> dict[str, str]:
    """{"<photo>.jpg": "<style name>"} from a sample dataset's styles.json; DatasetError naming
    the file when it is missing, not valid or names an unknown style."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: not found; only the built-in sample dataset (`landscape "
                           "sample-data`) records each photo's style, so the style oracle needs it")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc}); re-run `landscape sample-data`") from None
    if not isinstance(obj, dict):
        raise DatasetError(f'{path}: must be a JSON object {{"<photo>.jpg": "<style>"}}')
    bad = sorted(k for k, v in obj.items() if v not in STYLE_NAMES)
    if bad:
        raise DatasetError(f"{path}: '{bad[0]}' has style {obj[bad[0]]!r}, not one of "
                           f"{', '.join(STYLE_NAMES)}")
    return obj


def oracle_styles(labels_dir: str | Path, pairs_json: str | Path,
                  styles_json: str | Path) -> dict[str, str]:
    """{"<map>.png": "<style of its reference>"} in sorted order, after checking that every map in
    labels_dir has a pair, every pair names a map there, and every reference has a style.
    DatasetError listing the first problems otherwise."""
    labels_dir = Path(labels_dir)
    if not labels_dir.is_dir():
        raise DatasetError(f"{labels_dir}: label maps folder not found")
    pairs, styles = read_pairs_json(pairs_json), read_styles_json(styles_json)
    maps = {p.name for p in labels_dir.iterdir()
            if p.is_file() and p.suffix.lower() in LABEL_EXTS and not p.name.startswith(".")}
    problems = [f"{m}: has no entry in {pairs_json}" for m in sorted(maps - set(pairs))]
    problems += [f"{pairs_json}: '{k}' names a label map that is not in {labels_dir}"
                 for k in sorted(set(pairs) - maps)]
    problems += [f"{styles_json}: no style for '{ref}' (the reference of '{k}'); the pairing's "
                 "references must be photos of this sample dataset"
                 for k, ref in sorted(pairs.items()) if k in maps and ref not in styles]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise DatasetError(f"style oracle: {len(problems)} problem(s){more}: " + "; ".join(problems[:3]))
    return {k: styles[pairs[k]] for k in sorted(maps)}


def oracle_seed(seed: int, stem: str) -> list[int]:
    """The noise seed of map `stem`: independent of the other maps and of their order."""
    return [int(seed), _ORACLE_CODE, zlib.crc32(stem.encode("utf-8"))]


def write_style_oracle(labels_dir: str | Path, pairs_json: str | Path, styles_json: str | Path,
                       out: str | Path, seed: int = 0, *, size: tuple[int, int] | None = (512, 384),
                       jpeg_quality: int = 95, inputs: dict[str, str] | None = None,
                       progress: bool = False) -> dict:
    """Paint each map of the pairing in its reference's style into `out/<map stem>.jpg`.

    size: (width, height) of every image (the map is resized nearest first), or None for each
    map's own size. inputs: recorded in the manifest (e.g. {"data": preprocess manifest hash}).
    Checks every input first; the folder is built beside `out` and swapped in when complete.
    Returns the manifest.
    """
    from tqdm import tqdm

    labels_dir = Path(labels_dir)
    styles = oracle_styles(labels_dir, pairs_json, styles_json)
    params = {"seed": int(seed), "size": list(size) if size else None, "jpeg_quality": jpeg_quality,
              "pairs_sha256": sha256_file(pairs_json), "styles_sha256": sha256_file(styles_json)}
    with staged_folder(out, stage=STAGE) as tmp:
        for name, style in tqdm(styles.items(), desc="style-oracle", unit="img", disable=not progress):
            label = load_label(labels_dir / name)
            if size is not None and label.shape != (size[1], size[0]):
                label = cv2.resize(label, tuple(size), interpolation=cv2.INTER_NEAREST)
            stem = Path(name).stem
            image = render_in_style(label, style, oracle_seed(seed, stem))
            (tmp / f"{stem}.jpg").write_bytes(encode_jpeg(image, jpeg_quality))
        return write_manifest(
            tmp, STAGE,
            config_hash=hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest(),
            inputs=inputs, counts={"images": len(styles)},
            extra={"style_oracle": True, **params, "labels": str(labels_dir.resolve()),
                   "pairs": str(Path(pairs_json).resolve()),
                   "styles_json": str(Path(styles_json).resolve()), "styles": styles},
        )


def styles_json_for(split: SplitPaths) -> Path:
    """Where the sample dataset keeps its photos' styles: beside the training photos folder."""
    return split.refs_dir.parent / STYLES_JSON


def run_style_oracle(cfg: Any, split: SplitPaths, out: str | Path, *, progress: bool = True,
                     inputs: dict[str, str] | None = None) -> StageResult:
    """The style oracle of a preprocessed split (`resolve_split(data, "val")`): images at the
    config's generate size and JPEG quality, seeded by cfg.seed. Returns StageResult."""
    g = cfg.generate
    manifest = write_style_oracle(split.labels_dir, split.pairs_json, styles_json_for(split), out,
                                  cfg.seed, size=(g.out_width, g.out_height),
                                  jpeg_quality=g.jpeg_quality, inputs=inputs, progress=progress)
    n = manifest["counts"]["images"]
    return StageResult(manifest, [f"style-oracle: {n} {split.split} maps painted in their "
                                  f"references' styles ({g.out_width}x{g.out_height}) in {out}"])

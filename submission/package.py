"""The package stage: the upload zip, its manifest and the expert-vote picks.

`run_package` validates the generated folder (writing nothing if anything is wrong), writes a flat
zip of `<stem>.jpg` entries atomically and deterministically (same images -> same zip bytes),
re-opens it and checks every entry, picks the images for the expert vote from the evaluate
stage's `per_image.csv`, and ends with a manifest.

Outputs, for `--out artifacts/submission/<exp>.zip`:

    artifacts/submission/<exp>.zip                 the upload: <stem>.jpg entries only, stored
    artifacts/submission/<exp>/manifest.json       stage "package": sha256 of the zip and of
                                                   every image, the picks and their scores
    artifacts/submission/<exp>/expert/<stem>.jpg   the images picked for the expert vote

Pure Python + Pillow: needs neither jittor nor torch.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.artifacts import (
    MANIFEST,
    atomic_path,
    atomic_write_bytes,
    manifest_hash,
    read_manifest,
    sha256_bytes,
    sha256_file,
    write_manifest,
)
from pipeline.core.config import PackageConfig
from pipeline.core.errors import ArtifactError, DatasetError

from .validate import IMAGE_SUFFIX, SUBMISSION_SIZE, jpeg_problems, validate_generated

PER_IMAGE = "per_image.csv"
SCORES_JSON = "scores.json"
SCORE_COLUMNS = ("mask_accuracy", "style", "aesthetic")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # earliest date zip can store: fixed so the bytes are reproducible
EXPERT_DIR = "expert"


@dataclass(frozen=True)
class Pick:
    """One image picked for the expert vote and the scores that ranked it."""

    rank: int
    stem: str
    mask_accuracy: float
    style: float
    aesthetic: float

    @property
    def product(self) -> float:
        return self.mask_accuracy * self.style * self.aesthetic


def meta_dir_for(out_zip: str | Path) -> Path:
    """The folder beside `<exp>.zip` that holds its manifest and expert picks: `<exp>/`."""
    out_zip = Path(out_zip)
    return out_zip.with_suffix("")


def how_to_score(generated_dir: str | Path) -> str:
    """One sentence telling the user how to get per-image scores for `generated_dir`."""
    return (
        f"score this folder (`make score GEN={generated_dir} SPLIT=test`, or `landscape evaluate"
        f" --generated {generated_dir} --split test ...`) and package again with --scores <that evaluate folder>"
    )


# ---------------------------------------------------------------------------- scores
def read_per_image(path: str | Path) -> dict[str, tuple[float, float, float]]:
    """Read `per_image.csv` -> {stem: (mask_accuracy, style, aesthetic)}; DatasetError if malformed."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            columns = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read it as CSV ({exc})") from None
    if not rows:
        raise DatasetError(f"{path}: no rows; it should list one scored image per line")
    need = ("stem",) + SCORE_COLUMNS
    missing = [c for c in need if c not in columns]
    if missing:
        raise DatasetError(
            f"{path}: missing column(s) {', '.join(missing)}; per_image.csv needs"
            f" {', '.join(need)} (written by `landscape evaluate`)"
        )
    scores: dict[str, tuple[float, float, float]] = {}
    problems = []
    for line, row in enumerate(rows, start=2):
        stem = (row["stem"] or "").strip()
        if not stem:
            problems.append(f"line {line}: empty stem")
            continue
        if stem in scores:
            problems.append(f"line {line}: stem {stem!r} listed twice")
            continue
        try:
            values = tuple(float(row[c]) for c in SCORE_COLUMNS)
        except (TypeError, ValueError):
            problems.append(f"line {line}: {stem!r} has a non-numeric score")
            continue
        if not all(math.isfinite(v) for v in values):
            problems.append(f"line {line}: {stem!r} has a non-finite score")
            continue
        scores[stem] = values
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
        raise DatasetError(f"{path}: {shown}. Re-run `landscape evaluate` to rewrite it")
    return scores


def _scored_folder(scores_dir: Path) -> str | None:
    """The generated folder an evaluate output scored, from its scores.json (None if unknown)."""
    try:
        recorded = json.loads((scores_dir / SCORES_JSON).read_text(encoding="utf-8"))["inputs"]["generated"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return recorded if isinstance(recorded, str) and recorded else None


def check_scores_fresh(scores_dir: Path, evaluate: dict, generated_dir: Path, images: dict[str, Path]) -> None:
    """Refuse an evaluate folder that scored another folder, or these images before they changed.

    Fresh when the evaluate manifest recorded this folder's current generate manifest. A re-run of
    generate rewrites that manifest without touching finished images, so otherwise the scores
    still count when they are of this folder (scores.json's path) and no image is newer than them.
    """
    recorded = evaluate.get("inputs", {}).get("generated")
    if recorded and (generated_dir / MANIFEST).is_file() and recorded == manifest_hash(generated_dir):
        return
    scored = _scored_folder(scores_dir)
    if scored is not None and Path(scored).resolve() != generated_dir.resolve():
        raise ArtifactError(
            f"{scores_dir}: these scores are of {scored}, not of {generated_dir};"
            f" {how_to_score(generated_dir)}"
        )
    scored_at = (scores_dir / MANIFEST).stat().st_mtime
    newer = sorted(stem for stem, p in images.items() if p.stat().st_mtime > scored_at)
    if newer:
        raise ArtifactError(
            f"{scores_dir}: scored before {len(newer)} of the images in {generated_dir} were"
            f" generated again (e.g. {newer[0]}{IMAGE_SUFFIX}); {how_to_score(generated_dir)}"
        )


def load_scores(scores: str | Path, generated_dir: Path, images: dict[str, Path]) -> tuple[dict, dict]:
    """Per-image scores from an evaluate folder (manifest checked) or a per_image.csv file.

    images: the packaged images by stem. Returns (scores by stem, {"path", "manifest_hash"}
    describing the source). An evaluate folder that scored another folder, or these images
    before they were generated again, is refused (`check_scores_fresh`).
    """
    scores = Path(scores)
    if scores.is_file():
        return read_per_image(scores), {"path": str(scores), "manifest_hash": ""}
    if not scores.is_dir():
        raise DatasetError(
            f"{scores}: scores folder not found. Pass --scores an evaluate output folder"
            f" (artifacts/eval/<exp>/<split>) or its per_image.csv; to get one, {how_to_score(generated_dir)}"
        )
    evaluate = read_manifest(scores, "evaluate")
    check_scores_fresh(scores, evaluate, generated_dir, images)
    csv_path = scores / PER_IMAGE
    if not csv_path.is_file():
        raise DatasetError(f"{scores}: no {PER_IMAGE} in this evaluate folder; {how_to_score(generated_dir)}")
    return read_per_image(csv_path), {"path": str(csv_path), "manifest_hash": manifest_hash(scores)}


def pick_expert_images(
    scores: dict[str, tuple[float, float, float]], stems: list[str], count: int, source: str = "scores"
) -> list[Pick]:
    """The `count` packaged stems with the best mask_accuracy * style * aesthetic (ties by stem).

    Only stems in `stems` compete; raises DatasetError when the scores cover none of them.
    """
    covered = [s for s in stems if s in scores]
    if count and not covered:
        example = ", ".join(sorted(scores)[:3])
        raise DatasetError(
            f"{source}: scores none of the {len(stems)} packaged images (it lists e.g. {example});"
            " it is from another folder or split. Score the packaged folder and pass those scores"
        )
    ranked = sorted(covered, key=lambda s: (-(scores[s][0] * scores[s][1] * scores[s][2]), s))
    return [Pick(i + 1, s, *scores[s]) for i, s in enumerate(ranked[:count])]


# ---------------------------------------------------------------------------- zip
def _zip_info(name: str) -> zipfile.ZipInfo:
    """A zip entry header that does not depend on the file's time, the platform or the umask."""
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED  # JPEG does not compress further
    info.create_system = 3  # unix, whatever machine writes it
    info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
    return info


def write_zip(path: Path, files: dict[str, Path]) -> dict[str, str]:
    """Write a flat zip of `{entry name: file}` in sorted name order with fixed headers.

    Returns {entry name: sha256 of the bytes stored}. One file is in memory at a time.
    """
    digests = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(files):
            data = Path(files[name]).read_bytes()
            zf.writestr(_zip_info(name), data)
            digests[name] = sha256_bytes(data)
    return digests


def verify_zip(path: Path, expected: dict[str, str], size: tuple[int, int] = SUBMISSION_SIZE) -> list[str]:
    """Re-open the zip: entry names, CRCs, sha256 against `expected` {name: sha256}, decode, size.

    Returns the problems found (empty list = the zip is good).
    """
    problems = []
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if sorted(names) != sorted(expected) or len(names) != len(set(names)):
                extra = sorted(set(names) - set(expected))[:5]
                lost = sorted(set(expected) - set(names))[:5]
                problems.append(f"entries differ from the images (extra {extra}, missing {lost})")
            bad = zf.testzip()
            if bad is not None:
                problems.append(f"{bad}: CRC check failed")
            for name in names:
                if "/" in name or "\\" in name:
                    problems.append(f"{name}: entry is not at the top level")
                try:
                    data = zf.read(name)
                except (zipfile.BadZipFile, OSError) as exc:
                    problems.append(f"{name}: cannot read it back ({exc})")
                    continue
                if name in expected and sha256_bytes(data) != expected[name]:
                    problems.append(f"{name}: bytes differ from the source image")
                problems.extend(jpeg_problems(data, name, size))
    except (zipfile.BadZipFile, OSError) as exc:
        problems.append(f"cannot re-open the zip ({exc})")
    return problems


# ---------------------------------------------------------------------------- the stage
def run_package(
    generated_dir: str | Path,
    labels_dir: str | Path,
    out_zip: str | Path,
    scores_dir: str | Path | None = None,
    picks: int = PackageConfig.expert_picks,
    *,
    allow_unfinished: bool = False,
    scores_optional: bool = False,
    config_hash: str = "",
    size: tuple[int, int] = SUBMISSION_SIZE,
) -> dict:
    """Validate `generated_dir` against the maps in `labels_dir`, write `out_zip` and its manifest.

    scores_dir: an evaluate output folder (or its per_image.csv) scoring these images; the
    `picks` best by mask_accuracy * style * aesthetic are copied to `<exp>/expert/`. Without it
    no pick is made and the result says why. scores_optional: a missing, unfinished, stale or
    foreign `scores_dir` means no picks (and a note saying why) instead of an error.
    Returns the package manifest (also written to `<exp>/manifest.json`). Raises `DatasetError`
    / `ArtifactError` before writing anything when the inputs are wrong.
    """
    generated_dir, out_zip = Path(generated_dir), Path(out_zip)
    if out_zip.suffix != ".zip":
        raise DatasetError(f"--out {out_zip}: must be a .zip file name, e.g. artifacts/submission/<exp>.zip")
    meta = meta_dir_for(out_zip)
    if generated_dir.resolve() in (meta.resolve(), *meta.resolve().parents):
        raise DatasetError(f"--out {out_zip}: would write inside the generated folder {generated_dir}")
    folder = validate_generated(generated_dir, labels_dir, allow_unfinished=allow_unfinished, size=size)
    stems = list(folder.images)

    # Scores are checked before anything is written, so a wrong --scores leaves no output.
    scores_source, chosen = None, []
    note = f"no scores given, so the {picks} expert-vote images cannot be picked: {how_to_score(generated_dir)}"
    if scores_dir is not None:
        try:
            scores, scores_source = load_scores(scores_dir, generated_dir, folder.images)
            chosen = pick_expert_images(scores, stems, picks, scores_source["path"])
        except (DatasetError, ArtifactError) as exc:
            if not scores_optional:
                raise
            scores_source = None  # --scores-optional: package anyway, say why nothing was picked
            note = f"scores not used, so no expert-vote images picked: {exc}"
        else:
            covered = sum(s in scores for s in stems)
            note = (
                f"picked the {len(chosen)} best of {covered} scored images by mask_accuracy x style x aesthetic"
                + (f" ({len(stems) - covered} packaged images have no score)" if covered < len(stems) else "")
            )
    if picks == 0:
        note = "package.expert_picks = 0: no expert-vote images picked"

    files = {f"{stem}{IMAGE_SUFFIX}": p for stem, p in folder.images.items()}
    # Drop the old manifest first: a crash below leaves the package 'unfinished', never stale.
    (meta / MANIFEST).unlink(missing_ok=True)
    with atomic_path(out_zip) as tmp:
        digests = write_zip(tmp, files)
        problems = verify_zip(tmp, digests, size)
        if problems:
            raise ArtifactError(
                f"{out_zip}: the written zip failed its check ({'; '.join(problems[:5])});"
                " nothing was kept. Check the disk (space, errors) and run the command again"
            )
    zip_sha = sha256_file(out_zip)

    expert = meta / EXPERT_DIR
    if expert.exists():
        shutil.rmtree(expert)  # picks of an earlier run must not survive into this one
    with zipfile.ZipFile(out_zip) as zf:  # copy the verified bytes that are uploaded
        for pick in chosen:
            name = f"{pick.stem}{IMAGE_SUFFIX}"
            atomic_write_bytes(expert / name, zf.read(name))
    meta.mkdir(parents=True, exist_ok=True)

    inputs = {}
    if folder.manifest is not None:
        inputs["generated"] = manifest_hash(generated_dir)
    if scores_source and scores_source["manifest_hash"]:
        inputs["scores"] = scores_source["manifest_hash"]
    extra = {
        "zip": {
            "path": str(out_zip),
            "name": out_zip.name,
            "sha256": zip_sha,
            "size": out_zip.stat().st_size,
            "entries": digests,
        },
        "generated": str(generated_dir),
        "labels": str(folder.labels),
        "image_size": list(size),
        "allow_unfinished": allow_unfinished,
        "scores_optional": scores_optional,
        "scores": scores_source["path"] if scores_source else "",
        "expert_picks": [
            {
                "rank": p.rank,
                "stem": p.stem,
                "file": f"{EXPERT_DIR}/{p.stem}{IMAGE_SUFFIX}",
                "mask_accuracy": p.mask_accuracy,
                "style": p.style,
                "aesthetic": p.aesthetic,
                "product": p.product,
            }
            for p in chosen
        ],
        "expert_note": note,
        "notes": folder.notes,
    }
    return write_manifest(
        meta,
        "package",
        config_hash=config_hash,
        inputs=inputs,
        counts={"images": len(digests), "expert_picks": len(chosen)},
        extra=extra,
    )


def check_package(out_zip: str | Path) -> dict:
    """Re-check a finished package: manifest, expert files and the zip's sha256; return the manifest."""
    out_zip = Path(out_zip)
    manifest = read_manifest(meta_dir_for(out_zip), "package", deep=True)
    if not out_zip.is_file() or sha256_file(out_zip) != manifest["extra"]["zip"]["sha256"]:
        raise ArtifactError(
            f"{out_zip}: missing or changed since it was packaged; run `landscape package` again"
        )
    return manifest


__all__ = [
    "Pick",
    "check_package",
    "load_scores",
    "meta_dir_for",
    "pick_expert_images",
    "read_per_image",
    "run_package",
    "verify_zip",
    "write_zip",
]

"""The expert-vote picks: per-image scores from an evaluate folder (or its per_image.csv), checked
to be of the packaged images, and the best images by mask_accuracy x style x aesthetic.

Pure Python: needs neither jittor nor torch.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.artifacts import MANIFEST, manifest_hash, read_manifest
from pipeline.core.errors import ArtifactError, DatasetError

from .validate import IMAGE_SUFFIX

PER_IMAGE = "per_image.csv"
SCORES_JSON = "scores.json"
SCORE_COLUMNS = ("mask_accuracy", "style", "aesthetic")


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


def _picks_from(scores: str | Path, generated_dir: Path, images: dict[str, Path], count: int,
                scores_optional: bool) -> tuple[list[Pick], dict | None, str]:
    stems = list(images)
    try:
        table, source = load_scores(scores, generated_dir, images)
        chosen = pick_expert_images(table, stems, count, source["path"])
    except (DatasetError, ArtifactError) as exc:
        if not scores_optional:
            raise
        return [], None, f"scores not used, so no expert-vote images picked: {exc}"
    covered = sum(s in table for s in stems)
    note = (f"picked the {len(chosen)} best of {covered} scored images by mask_accuracy x style x aesthetic"
            + (f" ({len(stems) - covered} packaged images have no score)" if covered < len(stems) else ""))
    return chosen, source, note


def choose_picks(
    scores: str | Path | None, generated_dir: Path, images: dict[str, Path], count: int,
    scores_optional: bool = False,
) -> tuple[list[Pick], dict | None, str]:
    """(picks, scores source {"path", "manifest_hash"} or None, a note saying how they were made).

    images: the packaged images by stem. Without `scores` nothing is picked and the note says how
    to get scores. scores_optional: a missing, unfinished, stale or foreign `scores` means no
    picks and a note saying why, instead of the error. Raises before the caller writes anything.
    """
    if scores is None:
        chosen, source, note = [], None, (f"no scores given, so the {count} expert-vote images cannot"
                                          f" be picked: {how_to_score(generated_dir)}")
    else:
        chosen, source, note = _picks_from(scores, generated_dir, images, count, scores_optional)
    if count == 0:
        note = "package.expert_picks = 0: no expert-vote images picked"
    return chosen, source, note

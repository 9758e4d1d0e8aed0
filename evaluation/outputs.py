"""An evaluation's output folder: scores.json, per_image.csv, report.html, then manifest.json.

    manifest = write_evaluation(out, cfg, scores, items, per_image, inputs={...}, extra={...})

Opened with `claim_folder` (its own folders only, locked) only once every number is computed, so a
failed run leaves the previous scores as they were.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pipeline.core.artifacts import atomic_write_json, atomic_write_text, claim_folder, write_manifest
from pipeline.core.config import Config, config_hash

from .inputs import Item
from .registry import TERMS
from .report import build_report
from .summary import summary_lines


def per_image_csv(items: list[Item], per_image: dict[str, dict[str, float]]) -> str:
    """CSV text: stem, generated file, then one column per per-image term (TERMS order)."""
    cols = [t for t in TERMS if any(t in v for v in per_image.values())]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["stem", "generated", *cols])
    for it in items:
        vals = per_image[it.stem]
        w.writerow([it.stem, it.generated.name, *(f"{vals[c]:.6f}" if c in vals else "" for c in cols)])
    return buf.getvalue()


def write_evaluation(out: Path, cfg: Config, scores: dict, items: list[Item], per_image: dict,
                     *, inputs: dict[str, str], extra: dict | None = None) -> dict:
    """Claim `out` (stage "evaluate"), write scores.json, per_image.csv, report.html and the
    manifest last (inputs: {name: manifest hash}; extra added to its "extra"); return it."""
    texts = {"per_image.csv": per_image_csv(items, per_image),
             "report.html": build_report(scores, items, per_image, cfg.evaluate.report_rows)}
    with claim_folder(out, "evaluate") as folder:  # every number computed: only now touch --out
        atomic_write_json(folder / "scores.json", scores)
        for name, text in texts.items():
            atomic_write_text(folder / name, text)
        return write_manifest(
            folder, "evaluate", config_hash=config_hash(cfg, "evaluate"), inputs=inputs,
            counts={"images": scores["counts"]["images"]},
            extra={"score": scores["score"], "terms": scores["terms"], "stand_in": scores["stand_in"],
                   **(extra or {})},
        )


def evaluate_summary(scores: dict, out: Path) -> list[str]:
    """The lines `landscape evaluate` prints: the score and ceiling tables, the stand-in warning,
    the files."""
    lines = summary_lines(scores)
    if scores["warning"]:
        lines.append(f"warning: {scores['warning']}")
    lines.append(f"wrote {out}/scores.json, per_image.csv, report.html")
    return lines

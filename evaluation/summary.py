"""`python -m evaluation.summary EVAL_DIR [ZIP]`: the closing table of `make demo` / `make score`.

Reads `scores.json` (no torch import), prints the A-board score, each term with the model that
gave it, the generated / ceiling / ratio table (the ground truth through the same scorer; the style
oracle for style), the stand-in warning when there is one, and where the report and the zip are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .ceiling import table_lines


def ceiling_lines(scores: dict) -> list[str]:
    """The generated / ceiling / ratio table and its notes; one line saying why when there is none."""
    block = scores.get("ceiling")
    if not block:
        return ["ceiling: not recorded (scores.json from an older evaluate)"]
    if not block.get("available"):
        return [f"note: ceiling: {block['note']}"] if block.get("note") else []
    gt = block.get("ground_truth") or {}
    head = (f"vs the ceiling (ground truth: {gt.get('counts', {}).get('images', '?')} val photos, same scorer"
            + (", stand-in models" if gt.get("stand_in") else "") + ")") if gt else f"vs the ceiling ({block['note']})"
    return ["", head, *table_lines(block)]


def summary_lines(scores: dict) -> list[str]:
    """Terminal summary: the score, each term and its model, the ceiling table, stand-in notes."""
    lines = []
    s = scores["score"]
    lines.append(f"A-board score: {s:.4f}" if s is not None else f"A-board score: n/a ({scores['score_note']})")
    for name, info in scores["metrics"].items():
        flag = "  [STAND-IN]" if info["stand_in"] else ""
        lines.append(f"  {info['term']:<14} {info['value']:.4f}  ({name}: {info['variant']}){flag}")
        for term, value in info.get("informative", {}).items():
            lines.append(f"  {term:<14} {value:.6f}  (informative, not in the A formula)")
    t = scores["timing"]
    lines.append(f"  {scores['counts']['images']} images, {t['seconds']:.1f} s ({t['images_per_second']} img/s) on {scores['device']}")
    return lines + ceiling_lines(scores)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    eval_dir = Path(args[0])
    scores_path = eval_dir / "scores.json"
    if not scores_path.is_file():
        print(f"error: {scores_path} not found: run `make score` (or `make demo`) first", file=sys.stderr)
        return 2
    scores = json.loads(scores_path.read_text(encoding="utf-8"))
    print()
    print("\n".join(summary_lines(scores)))
    if scores.get("warning"):
        print(f"\n!! {scores['warning']}")
    print(f"\nreport:     {eval_dir / 'report.html'}")
    print(f"per image:  {eval_dir / 'per_image.csv'}")
    if len(args) > 1:
        print(f"submission: {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

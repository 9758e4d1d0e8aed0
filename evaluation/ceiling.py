"""The ceiling of every term: generated / ceiling / ratio, as a pure function of two scores.json.

The ceiling of mask accuracy, aesthetic, FID, KID and the A score is the validation split's own
ground-truth photos scored through the same scorer (`ground_truth.run_ground_truth`). Style is
the exception: the validation pairing gives each map a random training photo as its reference,
so the ground truth matches its reference's colours only by chance and its style term is no
ceiling. The style ceiling is a style oracle (each map painted in its reference's own style, which
only the sample dataset can make); without one it is unknown, and the block says why.

    block = ceiling_block(generated_scores, ground_truth_scores, ground_truth_source, style)
    ratio(generated, ceiling, higher_is_better)

Pure standard library: `summary` and `report` read the block without loading torch.
"""

from __future__ import annotations

import math
from typing import Any

# rows of the ceiling table, in order: the four A-board terms, KID, the A score
ROWS = ("mask_accuracy", "style", "aesthetic", "fid", "kid", "score")
LABELS = {"mask_accuracy": "mask_acc", "style": "style", "aesthetic": "aesthetic", "fid": "FID",
          "kid": "KID", "score": "A"}
HIGHER_IS_BETTER = {"mask_accuracy": True, "style": True, "aesthetic": True, "fid": False, "kid": False,
                    "score": True}

RATIO_RULE = (
    "ratio = generated / ceiling where higher is better (mask_accuracy, style, aesthetic, score);"
    " ratio = ceiling / generated where lower is better (fid, kid); so 1.0 = as good as the ceiling,"
    " below 1.0 = worse (0.5: half the ceiling's accuracy, or twice its distance), above 1.0 = better"
    " than the ceiling; null where either value is missing or not > 0 (a ratio of a sign-changing"
    " number says nothing)"
)
STYLE_NOT_A_CEILING = (
    "the ground truth's style term is not a ceiling: the validation pairing gives each map a random"
    " training photo as its style reference, so the ground-truth photo matches its reference's"
    " colours only by chance (its style term is the share of pairs that happen to share a style)"
)
STYLE_UNKNOWN = (
    "style ceiling unknown: " + STYLE_NOT_A_CEILING + ". On real data no image of each map in its"
    " reference's style exists, so the style term has no ceiling; on the built-in sample dataset"
    " `landscape style-oracle --data DIR --split val --out DIR` paints one: pass it as --style-ceiling DIR."
)
SCORE_NOTE = "the ground truth's A (its style term is the ground truth's, not a ceiling)"
KID_WITHIN_NOISE = ("the ceiling's KID is within noise of 0 (<= 2 x its std over subsets): the ground"
                    " truth is indistinguishable from the reference set at this N, so a ratio would only"
                    " measure noise; compare the generated KID with 0 instead")


def ratio(generated: float | None, ceiling: float | None, higher_is_better: bool) -> float | None:
    """generated / ceiling (higher is better) or ceiling / generated (lower is better); None when
    either is missing, not finite or not > 0. 1.0 = as good as the ceiling."""
    if generated is None or ceiling is None:
        return None
    g, c = float(generated), float(ceiling)
    if not (math.isfinite(g) and math.isfinite(c)) or g <= 0 or c <= 0:
        return None
    return g / c if higher_is_better else c / g


def _value(scores: dict | None, row: str) -> float | None:
    if scores is None:
        return None
    return scores.get("score") if row == "score" else scores.get("terms", {}).get(row)


def _spread(scores: dict, term: str) -> float:
    """The std over subsets recorded with an informative term (KID), 0 when none is recorded."""
    for info in scores.get("metrics", {}).values():
        detail = info.get("extra", {}).get(term)
        if isinstance(detail, dict) and "std" in detail:
            return float(detail["std"])
    return 0.0


def _row(row: str, generated: dict, gt: dict | None, style: dict | None) -> dict:
    """One row: generated, ceiling, ratio, where the ceiling comes from and a note."""
    g = _value(generated, row)
    note, source = "", "ground truth" if gt is not None else None
    c = _value(gt, row)
    if row == "style":
        c, source = (style["value"], "style oracle") if style else (None, None)
        note = "" if style else STYLE_UNKNOWN
    elif row == "score" and c is not None:
        note = SCORE_NOTE
    within_noise = row == "kid" and c is not None and c <= 2 * _spread(gt, row)
    if within_noise:
        note = KID_WITHIN_NOISE
    out = {"generated": g, "ceiling": c, "ratio": None if within_noise else ratio(g, c, HIGHER_IS_BETTER[row]),
           "higher_is_better": HIGHER_IS_BETTER[row], "ceiling_from": source, "note": note}
    if row == "style" and gt is not None:
        out["ground_truth_value"] = _value(gt, "style")  # shown, never used as the ceiling
    return out


def ground_truth_summary(gt: dict, source: dict) -> dict:
    """What the block keeps of the ground truth's own scores.json: its provenance and numbers."""
    return {**source, "score": gt.get("score"), "terms": gt.get("terms", {}), "counts": gt.get("counts", {}),
            "stand_in": gt.get("stand_in", False), "warning": gt.get("warning", ""),
            "reference_set": gt.get("reference_set")}


def ceiling_block(generated: dict, gt: dict | None, gt_source: dict | None, style: dict | None,
                  note: str = "") -> dict[str, Any]:
    """The "ceiling" block of scores.json.

    generated / gt: scores.json records (gt None when there is no ground truth); gt_source: its
    provenance (folder, manifest, data, split, key, scorer); style: the style ceiling
    {"value", "source", ...} or None; note: why there is no ground truth, when there is none.
    """
    rows = {r: _row(r, generated, gt, style) for r in ROWS if _value(generated, r) is not None}
    return {
        "available": gt is not None or style is not None,
        "note": note,
        "ratio_rule": RATIO_RULE,
        "ground_truth": ground_truth_summary(gt, gt_source or {}) if gt is not None else None,
        "style_ceiling": style if style else {"value": None, "note": STYLE_UNKNOWN},
        "rows": rows,
    }


def not_applicable(note: str) -> dict[str, Any]:
    """The block of an evaluation that has no ceiling (e.g. the ground truth's own)."""
    return {"available": False, "note": note, "ratio_rule": RATIO_RULE, "ground_truth": None,
            "style_ceiling": None, "rows": {}}


def ordered_rows(block: dict) -> list[tuple[str, dict]]:
    """The block's rows in table order (scores.json stores its keys sorted)."""
    return [(row, block["rows"][row]) for row in ROWS if row in block.get("rows", {})]


def _fmt(v: float | None, row: str) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2f}" if row == "fid" else f"{v:.5f}" if row == "kid" else f"{v:.4f}"


def table_lines(block: dict) -> list[str]:
    """The generated / ceiling / ratio table as text lines (empty when there is no ceiling)."""
    if not block or not block.get("rows"):
        return []
    lines = [f"  {'term':<10} {'generated':>10} {'ceiling':>10} {'ratio':>7}  ceiling from"]
    for row, r in ordered_rows(block):
        rt = "n/a" if r["ratio"] is None else f"{r['ratio']:.3f}"
        lines.append(f"  {LABELS[row]:<10} {_fmt(r['generated'], row):>10} {_fmt(r['ceiling'], row):>10}"
                     f" {rt:>7}  {r['ceiling_from'] or '-'}")
    lines.append("  ratio: generated / ceiling; FID, KID: ceiling / generated (1.0 = as good as the ceiling)")
    lines.extend(f"note: {LABELS[row]}: {r['note']}" for row, r in ordered_rows(block) if r["note"])
    return lines

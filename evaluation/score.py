"""The A-board score of the Jittor landscape track, from its four terms.

A = mask_acc * (aesthetic * 0.2 + (style * 0.5 + 0.5) * 0.3 + (100 - min(FID, 100)) / 100 * 0.5)

mask_acc, aesthetic in [0, 1]; style (a histogram correlation) in [-1, 1], mapped to [0, 1] by
(style * 0.5 + 0.5); FID >= 0, capped at `fid_cap` (100 on the board).
"""

from __future__ import annotations

WEIGHT_AESTHETIC = 0.2
WEIGHT_STYLE = 0.3
WEIGHT_FID = 0.5
FID_CAP = 100.0


def fid_to_term(fid: float, fid_cap: float = FID_CAP) -> float:
    """(cap - min(FID, cap)) / cap: 1 at FID 0, 0 at FID >= cap."""
    if fid < 0:
        raise ValueError(f"FID must be >= 0, got {fid}")
    return (fid_cap - min(fid, fid_cap)) / fid_cap


def a_board_score(
    mask_accuracy: float, aesthetic: float, style: float, fid: float, fid_cap: float = FID_CAP
) -> float:
    """The A-board score of the four terms (see the module docstring)."""
    inner = (
        aesthetic * WEIGHT_AESTHETIC
        + (style * 0.5 + 0.5) * WEIGHT_STYLE
        + fid_to_term(fid, fid_cap) * WEIGHT_FID
    )
    return mask_accuracy * inner


def score_parts(terms: dict[str, float], fid_cap: float = FID_CAP) -> dict[str, float] | None:
    """Each weighted contribution inside the bracket and the score; None if a term is missing."""
    if not all(k in terms for k in ("mask_accuracy", "aesthetic", "style", "fid")):
        return None
    parts = {
        "aesthetic_part": terms["aesthetic"] * WEIGHT_AESTHETIC,
        "style_part": (terms["style"] * 0.5 + 0.5) * WEIGHT_STYLE,
        "fid_part": fid_to_term(terms["fid"], fid_cap) * WEIGHT_FID,
    }
    parts["score"] = a_board_score(
        terms["mask_accuracy"], terms["aesthetic"], terms["style"], terms["fid"], fid_cap
    )
    return parts

"""tools/ablate.py: the row it records comes from the evaluation's own scores.json fields."""

from __future__ import annotations

from tools.ablate import _markdown, _row


def _scores() -> dict:
    rows = {"mask_accuracy": {"ratio": 0.9}, "style": {"ratio": 0.5}, "fid": {"ratio": 0.25},
            "kid": {"ratio": None}, "score": {"ratio": 0.75}}
    return {"terms": {"mask_accuracy": 0.81, "style": 0.3, "fid": 200.0, "kid": 0.1,
                      "aesthetic": 0.2},
            "score": 0.21, "ceiling": {"rows": rows}}


def test_row_takes_terms_score_and_ratios():
    row = _row("x", _scores())
    assert row["terms"] == {"mask_accuracy": 0.81, "style": 0.3, "fid": 200.0, "kid": 0.1,
                            "score": 0.21}
    assert row["ratios"]["style"] == 0.5 and row["ratios"]["kid"] is None


def test_markdown_row_shows_each_ratio_in_brackets():
    line = _markdown(_row("x", _scores()))
    assert line == ("| x | 0.8100 (0.900) | 0.3000 (0.500) | 200.0 (0.250) | 0.1000 "
                    "| 0.2100 (0.750) |")


def test_row_without_a_ceiling_has_no_ratios():
    scores = _scores()
    del scores["ceiling"]
    assert _row("x", scores)["ratios"] == {}
    assert "(" not in _markdown(_row("x", scores))

"""Regression check of validation scores against a committed baseline.

`python -m evaluation.regress SCORES_JSON BASELINE_JSON [--update]` prints a table
(term, baseline, now, delta, tolerance, verdict) and exits 1 when any term got worse than its
baseline by more than its tolerance. `--update` rewrites the baseline on purpose (keeping the
tolerances). Pure Python: reads two json files.

Baseline format:
    {"source": "...", "terms": {"score": {"value": 0.41, "tolerance": 0.05, "higher_is_better": true}, ...}}
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from pipeline.core.artifacts import atomic_write_json
from pipeline.core.errors import ArtifactError

# Default tolerances for a new baseline: absolute, in each term's own unit.
DEFAULT_TOLERANCES = {
    "score": (0.05, True),
    "mask_accuracy": (0.06, True),
    "style": (0.08, True),
    "aesthetic": (0.05, True),
    "fid": (25.0, False),
    "kid": (0.05, False),  # informative (not in the A formula); lower is better
}


def scores_to_terms(scores: dict) -> dict[str, float]:
    """The comparable numbers of a `scores.json`: the A-board score and each term's raw value."""
    out = {"score": float(scores["score"])}
    for name, term in scores["terms"].items():
        out[name] = float(term["value"] if isinstance(term, dict) else term)
    return out


def compare(now: dict[str, float], baseline: dict) -> tuple[list[dict], bool]:
    """Rows (term, baseline, now, delta, tolerance, verdict) and whether any term regressed."""
    rows, failed = [], False
    for name, ref in baseline["terms"].items():
        value = now.get(name)
        if value is None or not math.isfinite(value):
            rows.append(dict(term=name, baseline=ref["value"], now=value, delta=None,
                             tolerance=ref["tolerance"], verdict="MISSING"))
            failed = True
            continue
        delta = value - ref["value"]
        worse = -delta if ref["higher_is_better"] else delta
        if worse > ref["tolerance"]:
            verdict, failed = "REGRESSED", True
        elif -worse > ref["tolerance"]:
            verdict = "improved (run `make regress-update` to keep it)"
        else:
            verdict = "ok"
        rows.append(dict(term=name, baseline=ref["value"], now=value, delta=delta,
                         tolerance=ref["tolerance"], verdict=verdict))
    return rows, failed


def format_table(rows: list[dict]) -> str:
    def num(x):
        return "-" if x is None else f"{x:.4f}"

    lines = [f"{'term':<15}{'baseline':>11}{'now':>11}{'delta':>11}{'tolerance':>11}  verdict"]
    for r in rows:
        delta = "-" if r["delta"] is None else f"{r['delta']:+.4f}"
        lines.append(
            f"{r['term']:<15}{num(r['baseline']):>11}{num(r['now']):>11}{delta:>11}"
            f"{num(r['tolerance']):>11}  {r['verdict']}"
        )
    return "\n".join(lines)


def make_baseline(now: dict[str, float], source: str, old: dict | None = None) -> dict:
    """A baseline holding `now`, keeping the old file's tolerances where it had them."""
    terms = {}
    for name, value in now.items():
        tol, higher = DEFAULT_TOLERANCES.get(name, (0.05, True))
        if old and name in old.get("terms", {}):
            tol = old["terms"][name]["tolerance"]
            higher = old["terms"][name]["higher_is_better"]
        terms[name] = {"value": round(value, 6), "tolerance": tol, "higher_is_better": higher}
    return {"source": source, "terms": terms}


def _load(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: {what} is not valid JSON ({exc})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scores", type=Path, help="scores.json of the run to check")
    parser.add_argument("baseline", type=Path, help="committed baseline json")
    parser.add_argument("--update", action="store_true", help="rewrite the baseline from scores")
    args = parser.parse_args(argv)
    try:
        scores = _load(args.scores, "scores file (run `make regress` to make it)")
        now = scores_to_terms(scores)
        if args.update:
            old = _load(args.baseline, "baseline") if args.baseline.exists() else None
            atomic_write_json(args.baseline, make_baseline(now, str(args.scores), old))
            print(f"baseline rewritten: {args.baseline}")
            print(format_table(compare(now, _load(args.baseline, "baseline"))[0]))
            return 0
        baseline = _load(
            args.baseline, "baseline (create it on purpose with `make regress-update`)"
        )
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows, failed = compare(now, baseline)
    print(format_table(rows))
    print("REGRESSION: a term is outside its tolerance" if failed else "validation scores: ok")
    bad = sum(r["verdict"] in ("REGRESSED", "MISSING") for r in rows)
    print(f"regress: {len(rows) - bad} passed, {bad} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

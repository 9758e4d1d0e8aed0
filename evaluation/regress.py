"""Regression check of validation scores against a committed baseline.

`python -m evaluation.regress SCORES_JSON BASELINE_JSON [--update]` prints a table
(term, baseline, now, delta, tolerance, verdict) and exits 1 when any term got worse than its
baseline by more than its tolerance. `--update` rewrites the baseline on purpose (keeping the
tolerances). Pure Python: reads two json files.

The whole chain is deterministic on one machine (same seed: bit-identical weights, images and
scores; measured over repeated runs), so the baseline also records the platform it was made on
(`platform_fingerprint`: CPU model and flags, usable cores, library versions). On that same
platform every term must match within SAME_PLATFORM_TOLERANCE (the rounding of the stored
values): any change at all is a change of behaviour. Elsewhere another CPU's kernels round
differently, a short GAN run drifts, and each term's stated tolerance applies (the spread of the
chain over seeds, see docs/testing.md).

Baseline format:
    {"source": "...", "platform": {"id": "...", ...}, "same_platform_tolerance": 2e-06,
     "terms": {"score": {"value": 0.41, "tolerance": 0.05, "higher_is_better": true}, ...}}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from pipeline.core.artifacts import atomic_write_json
from pipeline.core.errors import ArtifactError

# Default tolerances for a new baseline: absolute, in each term's own unit; about twice the
# largest difference of seeds 1 and 2 from seed 0 at the CI setting (docs/benchmarks.md): the
# drift a run shows on another platform. On the baseline's own platform the check is exact.
DEFAULT_TOLERANCES = {
    "score": (0.02, True),
    "mask_accuracy": (0.05, True),
    "style": (0.09, True),
    "aesthetic": (0.035, True),
    "fid": (13.0, False),
    "kid": (0.03, False),  # informative (not in the A formula); lower is better
}


# Values are stored rounded to 6 decimals: on the baseline's own platform a term may differ by
# that rounding only.
SAME_PLATFORM_TOLERANCE = 2e-6
FINGERPRINT_PACKAGES = ("numpy", "torch", "torchvision", "torch-fidelity", "transformers",
                        "jittor", "opencv-python-headless", "opencv-python", "scipy", "pillow")


def _cpu_info() -> tuple[str, list[str]]:
    """The CPU's model name and feature flags (Linux /proc/cpuinfo; else platform's strings)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine(), []
    model, flags = platform.machine(), []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == platform.machine():
            model = value.strip()
        elif key.strip() in ("flags", "Features") and not flags:
            flags = sorted(value.split())
    return model, flags


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def platform_fingerprint() -> dict:
    """What decides the chain's exact floating-point results on a CPU: the CPU model and its
    instruction-set flags, the cores the process may use (thread count), the Python and library
    versions. `id` is the sha256 of the rest."""
    model, flags = _cpu_info()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": model, "cpu_flags_sha256": hashlib.sha256(" ".join(flags).encode()).hexdigest(),
            "cores": cores, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "python": platform.python_version(),
            "packages": {n: v for n in FINGERPRINT_PACKAGES if (v := _version(n)) is not None}}
    info["id"] = hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()
    return info


def same_platform(baseline: dict, here: dict) -> bool:
    """Whether the baseline was recorded on a platform with this fingerprint (every field)."""
    recorded = {k: v for k, v in baseline.get("platform", {}).items() if k != "id"}
    return recorded == {k: v for k, v in here.items() if k != "id"}


def scores_to_terms(scores: dict) -> dict[str, float]:
    """The comparable numbers of a `scores.json`: the A-board score and each term's raw value."""
    out = {"score": float(scores["score"])}
    for name, term in scores["terms"].items():
        out[name] = float(term["value"] if isinstance(term, dict) else term)
    return out


def compare(now: dict[str, float], baseline: dict, exact: bool = False) -> tuple[list[dict], bool]:
    """Rows (term, baseline, now, delta, tolerance, verdict) and whether any term regressed.

    exact: the check runs on the baseline's own platform, so every term's tolerance is the
    baseline's `same_platform_tolerance` (the stored values' rounding)."""
    rows, failed = [], False
    tight = baseline.get("same_platform_tolerance", SAME_PLATFORM_TOLERANCE)
    for name, ref in baseline["terms"].items():
        ref = dict(ref, tolerance=min(ref["tolerance"], tight)) if exact else ref
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


def make_baseline(now: dict[str, float], source: str, old: dict | None = None,
                  here: dict | None = None) -> dict:
    """A baseline holding `now` and the platform it was made on (`here`, default this one),
    keeping the old file's tolerances where it had them."""
    terms = {}
    for name, value in now.items():
        tol, higher = DEFAULT_TOLERANCES.get(name, (0.05, True))
        if old and name in old.get("terms", {}):
            tol = old["terms"][name]["tolerance"]
            higher = old["terms"][name]["higher_is_better"]
        terms[name] = {"value": round(value, 6), "tolerance": tol, "higher_is_better": higher}
    return {"source": source, "platform": here or platform_fingerprint(),
            "same_platform_tolerance": SAME_PLATFORM_TOLERANCE, "terms": terms}


def platform_line(baseline: dict, here: dict) -> str:
    """Which tolerances the check used, and why."""
    if same_platform(baseline, here):
        tight = baseline.get("same_platform_tolerance", SAME_PLATFORM_TOLERANCE)
        return (f"platform: the baseline's own ({here['cpu']}, {here['cores']} cores): exact check,"
                f" every term within {tight:g}")
    recorded = baseline.get("platform")
    if not recorded:
        return "platform: not recorded in the baseline: each term's stated tolerance"
    differs = [k for k in ("cpu", "cpu_flags_sha256", "cores", "omp_num_threads", "python",
                           "packages") if recorded.get(k) != here.get(k)]
    return (f"platform: differs from the baseline's ({', '.join(differs)}): each term's stated"
            " tolerance")


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
            print(format_table(compare(now, _load(args.baseline, "baseline"), exact=True)[0]))
            return 0
        baseline = _load(
            args.baseline, "baseline (create it on purpose with `make regress-update`)"
        )
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    here = platform_fingerprint()
    rows, failed = compare(now, baseline, exact=same_platform(baseline, here))
    print(format_table(rows))
    print(platform_line(baseline, here))
    print("REGRESSION: a term is outside its tolerance" if failed else "validation scores: ok")
    bad = sum(r["verdict"] in ("REGRESSED", "MISSING") for r in rows)
    print(f"regress: {len(rows) - bad} passed, {bad} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall time of each stage of one `make` run, and the split printed at its end.

    python -m pipeline.core.timing run --file artifacts/timings.json --run-id ID -- landscape train ...
    python -m pipeline.core.timing summary --file artifacts/timings.json --run-id ID [--expect "a,b"]

`run` starts the command, waits, appends one record {run_id, label, argv, start, seconds, exit}
to the file (under a lock, written atomically) and exits with the command's status. The label
is the `landscape` subcommand, plus its --split when it has one ("generate val"). `summary`
prints the records of one run id: each stage's seconds, share and start, the stages' total (and
the wall time they covered, when `make -j` ran some side by side), and, when the run id is the
run's start time (`date +%s.%N`), the whole run's elapsed time and the rest (set-up not
overlapped by a stage, Make itself). A stage listed in --expect that has no record did not run
(Make found it up to date) and counts 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .artifacts import atomic_write_json

KEEP_RUNS = 20  # older runs' records are dropped from the file


def stage_label(cmd: list[str]) -> str:
    """The label of a wrapped command: its subcommand (the first argument after the program that
    is not an option), plus " <split>" when it passes --split; else the program's name."""
    args = cmd[1:]
    sub = next((a for a in args if not a.startswith("-")), Path(cmd[0]).name if cmd else "?")
    split = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--split"), None)
    split = split or next((a.split("=", 1)[1] for a in args if a.startswith("--split=")), None)
    if "--ground-truth" in args:  # the ceiling's evaluate is its own stage in the split
        return f"{sub} ground-truth"
    return f"{sub} {split}" if split else sub


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside `path` (parallel `make -j` stages append to one file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no concurrent appends to guard
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_records(path: str | Path) -> list[dict]:
    """The file's records ([] when it is missing or unreadable: timings never stop a run)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def append_record(path: str | Path, record: dict) -> None:
    """Append `record` to the file, keeping the records of the last KEEP_RUNS run ids."""
    path = Path(path)
    with _locked(path):
        records = read_records(path) + [record]
        runs = list(dict.fromkeys(r.get("run_id") for r in records))[-KEEP_RUNS:]
        atomic_write_json(path, [r for r in records if r.get("run_id") in runs])


def run_timed(cmd: list[str], path: str | Path, run_id: str) -> int:
    """Run `cmd` (inheriting stdin/stdout/stderr), record its wall time; return its exit status."""
    start = time.time()
    t0 = time.perf_counter()
    try:
        code = subprocess.call(cmd)
    except KeyboardInterrupt:
        code = 130
    except OSError as exc:
        print(f"error: cannot run {cmd[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    record = {"run_id": run_id, "label": stage_label(cmd), "argv": cmd[1:], "start": round(start, 3),
              "seconds": round(time.perf_counter() - t0, 3), "exit": code}
    try:
        append_record(path, record)
    except OSError as exc:  # a timing that cannot be written never fails the stage
        print(f"warning: stage time not recorded in {path}: {exc}", file=sys.stderr)
    return code


def _run_start(run_id: str) -> float | None:
    """The run's start (seconds since the epoch) when the run id is a timestamp, else None."""
    try:
        start = float(run_id)
    except ValueError:
        return None
    return start if start > 1e9 else None


def busy_seconds(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by at least one of the (start, end) intervals: stages that ran side by
    side (`make -j`) count once."""
    busy, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return busy


def summary_lines(records: list[dict], run_id: str, expect: list[str], now: float | None = None) -> list[str]:
    """The time split of run `run_id`: one line per stage (expected ones first, 0 when they did
    not run; with the minute it started at when known), the stages' total, the wall time they
    covered (stages side by side count once) when it is less, and the whole run and its rest
    (elapsed - covered) when the run id is its start."""
    rows: dict[str, float] = {label: 0.0 for label in expect}
    first: dict[str, float] = {}
    failed = set()
    intervals = []
    for r in sorted((r for r in records if r.get("run_id") == run_id), key=lambda r: r.get("start", 0)):
        seconds = float(r.get("seconds", 0.0))
        rows[r["label"]] = rows.get(r["label"], 0.0) + seconds
        if "start" in r:
            first.setdefault(r["label"], float(r["start"]))
            intervals.append((float(r["start"]), float(r["start"]) + seconds))
        if r.get("exit"):
            failed.add(r["label"])
    total = sum(rows.values())
    covered = busy_seconds(intervals) if intervals else total
    start = _run_start(run_id)
    elapsed = ((now if now is not None else time.time()) - start) if start is not None else None
    whole = max(elapsed or 0.0, covered) or 1.0
    width = max([len(k) for k in rows] + [26])
    lines = [f"{'time by stage':<{width}}  {'seconds':>8}  share" + ("  started" if start is not None else "")]
    for label, seconds in rows.items():
        note = "  (failed)" if label in failed else ("  (up to date)" if seconds == 0 else "")
        at = (f"  {(first[label] - start) / 60:5.1f} min" if start is not None and label in first
              else "")
        lines.append(f"{label:<{width}}  {seconds:8.1f}  {seconds / whole:5.0%}{at}{note}")
    lines.append(f"{'stages':<{width}}  {total:8.1f}  {total / whole:5.0%}")
    if covered < total - 0.05:
        lines.append(f"{'stages, side by side once':<{width}}  {covered:8.1f}  {covered / whole:5.0%}")
    if elapsed is not None:
        rest = max(0.0, elapsed - covered)
        lines.append(f"{'set-up, checks and make':<{width}}  {rest:8.1f}  {rest / whole:5.0%}")
        lines.append(f"{'whole run':<{width}}  {elapsed:8.1f}  ({elapsed / 60:.1f} min)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.core.timing", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run a command and record its wall time")
    show = sub.add_parser("summary", help="print one run's time split by stage")
    for p in (run, show):
        p.add_argument("--file", required=True, help="the timings file, e.g. artifacts/timings.json")
        p.add_argument("--run-id", required=True, help="what groups one make run's records")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and its arguments")
    show.add_argument("--expect", default="",
                      help="comma list of stage labels shown even when they did not run")
    args = ap.parse_args(argv)
    if args.action == "run":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            ap.error("run: give the command after --")
        return run_timed(cmd, args.file, args.run_id)
    expect = [e.strip() for e in args.expect.split(",") if e.strip()]
    print("\n".join(summary_lines(read_records(args.file), args.run_id, expect)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""One ablation row on the demo data: train with some keys changed, generate val, score it.

    python -m tools.ablate NAME [--set section.key=value ...] [--config configs/demo.toml]
                           [--transfer none] [--data artifacts/data/sample] [--root artifacts]

Runs, as a user would (`landscape` commands, each in its own process):
  train     --data DATA --out ROOT/runs/ablate-NAME --config CONFIG --set ... (resumes)
  generate  --split val with generate.colour_transfer = --transfer (default none: the
            generator's own colours)
  evaluate  with the demo's scorer (ROOT/scorer/sample), the ground-truth ceiling
            (ROOT/eval/ground-truth/val) and the style oracle (ROOT/generated/style-oracle/val),
            which `make ceiling` makes
then prints one markdown row (each term and its ratio to the ceiling) and appends it, with the
overrides and wall times, to ROOT/ablations.jsonl. The demo's data, scorer and ceilings must
exist (`make demo` or `make ceiling` makes them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

LANDSCAPE = [sys.executable, "-m", "pipeline.cli"]
TERMS = ("mask_accuracy", "style", "fid", "kid", "score")


def _run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(LANDSCAPE + args, check=True)
    return time.perf_counter() - start


def _row(name: str, scores: dict) -> dict:
    terms = dict(scores["terms"], score=scores["score"])
    ceiling = scores.get("ceiling", {})
    ratios = {term: r.get("ratio") for term, r in ceiling.get("rows", {}).items()}
    return {"name": name, "terms": {t: terms.get(t) for t in TERMS}, "ratios": ratios}


def _markdown(row: dict) -> str:
    t, r = row["terms"], row["ratios"]

    def cell(term: str, fmt: str) -> str:
        value = t.get(term)
        ratio = r.get(term)
        text = "n/a" if value is None else format(value, fmt)
        return text if ratio is None else f"{text} ({ratio:.3f})"

    return (f"| {row['name']} | {cell('mask_accuracy', '.4f')} | {cell('style', '.4f')} "
            f"| {cell('fid', '.1f')} | {cell('kid', '.4f')} | {cell('score', '.4f')} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name")
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--config", default="configs/demo.toml")
    p.add_argument("--transfer", default="none")
    p.add_argument("--data", default="artifacts/data/sample")
    p.add_argument("--root", default="artifacts")
    a = p.parse_args(argv)
    root = Path(a.root)
    run, gen = root / "runs" / f"ablate-{a.name}", root / "generated" / f"ablate-{a.name}" / "val"
    out = root / "eval" / f"ablate-{a.name}" / "val"
    sets = [x for s in a.sets for x in ("--set", s)]
    times = {"train": _run(["train", "--data", a.data, "--out", str(run), "--config", a.config,
                            "--resume", "--set", f"evaluate.segformer={root}/scorer/sample",
                            *sets])}
    times["generate"] = _run(["generate", "--run", str(run), "--data", a.data, "--split", "val",
                              "--out", str(gen), "--set",
                              f"generate.colour_transfer={json.dumps(a.transfer)}"])
    times["evaluate"] = _run(["evaluate", "--generated", str(gen), "--data", a.data, "--split",
                              "val", "--out", str(out), "--config", a.config, "--set",
                              f"evaluate.segformer={root}/scorer/sample", "--ceiling",
                              str(root / "eval" / "ground-truth" / "val"), "--style-ceiling",
                              str(root / "generated" / "style-oracle" / "val"), "--quiet"])
    row = _row(a.name, json.loads((out / "scores.json").read_text()))
    row.update(overrides=a.sets, config=a.config, transfer=a.transfer,
               seconds={k: round(v, 1) for k, v in times.items()})
    with open(root / "ablations.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    print("| run | mask acc | style | FID | KID | A |  (ratio to the ceiling in brackets)")
    print(_markdown(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())

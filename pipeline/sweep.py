"""`landscape sweep`: choose the weights file and the colour transfer by the score, not by hand.

    run_sweep(cfg, run_dir, data_dir, out, transfers=[...], weights=[...], scorer=ScorerCall(...))

For each candidate weights file of the run (ema: the final EMA generator; best: the best scored
during training; average: `landscape average`'s file; or any weights file named by path) and
each colour transfer ("none", "reinhard-lab", "histogram-match", "reinhard-lab@0.5": a blend
strength), the validation split is generated (`run_generate`, into OUT/<weights>__<transfer>/
generated; OUT: --out, default artifacts/sweep/<run name>, outside the run, whose manifest
lists its files) and scored by `landscape evaluate` in a child process (OUT/.../eval). The table of
A and every term is printed, the best row marked, and the best choice is written into the run:

    RUN/choice.json   {"weights": "best.safetensors", "overrides": {"generate.colour_transfer":
                      "reinhard-lab", "generate.colour_strength": 0.5, ...}, "score": A, ...}

`landscape generate --run RUN` (and so `make submit`) uses it by default (`read_choice`):
the weights file unless --checkpoint is given, the overrides under any --set.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .average import AVERAGE_FILE
from .checkpoint import EMA_FILE, read_checkpoint, tensors_checksum
from .colour import parse_transfer, transfer_label
from .core.artifacts import (FolderLock, StageResult, atomic_write_json, manifest_hash, os_errors,
                             read_manifest, sha256_file)
from .core.config import Config, config_hash, config_to_dict
from .core.errors import ArtifactError, ConfigError
from .core.inputs import SplitInputs, resolve_inputs
from .train.scoring import BEST_FILE, run_scorer, selection_score

CHOICE_FILE = "choice.json"
DEFAULT_TRANSFERS = ("none", "reinhard-lab", "histogram-match", "reinhard-lab@0.5")
DEFAULT_WEIGHTS = ("ema", "best", "average")
NAMED_WEIGHTS = {"ema": EMA_FILE, "best": BEST_FILE, "average": AVERAGE_FILE}
WHY_ABSENT = {"best": "train with train.score_every > 0 and a scorer in place",
              "average": "make it with `landscape average --run RUN --last K`",
              "ema": "the run has not finished"}


# ---------------------------------------------------------------------------- choice.json
@dataclass(frozen=True)
class Choice:
    """A run's choice.json: the weights file and the generate keys the sweep chose."""

    path: Path
    weights: Path
    overrides: dict[str, Any]
    weights_sha256: str

    def sets(self) -> list[str]:
        """The overrides as `--set` strings (TOML values)."""
        return [f"{k}={json.dumps(v) if isinstance(v, (str, bool)) else repr(v)}"
                for k, v in self.overrides.items()]


def read_choice(run_dir: str | Path) -> Choice | None:
    """The run's choice.json (None when there is none); ArtifactError when it is damaged or
    names a weights file that is gone, saying how to fix it."""
    path = Path(run_dir) / CHOICE_FILE
    if not path.is_file():
        return None
    fix = f"re-run `landscape sweep --run {run_dir} --data DATA`, or delete {path}"
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        weights, overrides = obj["weights"], obj["overrides"]
        ok = (isinstance(weights, str) and isinstance(overrides, dict)
              and all(k.startswith("generate.") and isinstance(v, (str, int, float, bool))
                      for k, v in overrides.items()))
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ArtifactError(f"{path}: not a sweep choice (weights file + generate.* keys); {fix}")
    file = Path(weights) if Path(weights).is_absolute() else Path(run_dir) / weights
    if not file.is_file():
        raise ArtifactError(f"{path}: names the weights file {file}, which is gone; {fix}")
    return Choice(path, file, overrides, str(obj.get("weights_sha256", "")))


def choice_record(run_dir: Path, row: "Row", cfg_row: Config, base: Config, result: dict) -> dict:
    """What choice.json holds for the chosen row: the weights (relative to the run when inside
    it), every generate key that differs from the run's own config plus the transfer keys, the
    score and how it was made."""
    base_gen, row_gen = config_to_dict(base.generate), config_to_dict(cfg_row.generate)
    keys = {"colour_transfer", "colour_strength"} | {k for k in row_gen if row_gen[k] != base_gen[k]}
    try:
        weights = str(row.weights.resolve().relative_to(Path(run_dir).resolve()))
    except ValueError:
        weights = str(row.weights.resolve())
    return {"weights": weights, "weights_sha256": sha256_file(row.weights),
            "overrides": {f"generate.{k}": row_gen[k] for k in sorted(keys)},
            "score": result["A"], "formula": result["formula"], "terms": result["terms"],
            "row": row.name, "made_by": "landscape sweep",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


# ---------------------------------------------------------------------------- the rows
@dataclass(frozen=True)
class Row:
    """One candidate: a weights file (its label: ema, best, average or the file's stem) and a
    colour transfer at a strength."""

    label: str
    weights: Path
    method: str
    strength: float

    @property
    def transfer(self) -> str:
        return transfer_label(self.method, self.strength)

    @property
    def name(self) -> str:
        """The row's folder name under the sweep's --out."""
        return re.sub(r"[^A-Za-z0-9@._-]", "_", f"{self.label}__{self.transfer}")

    def config(self, cfg: Config) -> Config:
        """`cfg` with this row's colour transfer and strength."""
        gen = dataclasses.replace(cfg.generate, colour_transfer=self.method, colour_strength=self.strength)
        return dataclasses.replace(cfg, generate=gen)


def parse_transfers(specs: Sequence[str] | None) -> list[tuple[str, float]]:
    """(method, strength) of each spec (default DEFAULT_TRANSFERS), duplicates dropped;
    ConfigError naming what is allowed for a bad one."""
    out: list[tuple[str, float]] = []
    for spec in specs if specs is not None else DEFAULT_TRANSFERS:
        try:
            parsed = parse_transfer(spec)
        except ValueError as exc:
            raise ConfigError(f"--transfers: {exc}") from None
        if parsed not in out:
            out.append(parsed)
    if not out:
        raise ConfigError("--transfers: name at least one colour transfer, e.g. none,reinhard-lab")
    return out


def candidate_weights(run_dir: Path, names: Sequence[str] | None,
                      log: Callable[[str], None]) -> list[tuple[str, Path]]:
    """(label, file) of each candidate, every file read and verified. names: ema, best,
    average, or a weights file (a path inside the run, or any path); None = DEFAULT_WEIGHTS,
    where a missing file is left out with a note (a named one that is missing is an error).
    A file with the same tensors as an earlier one is left out with a note."""
    found: list[tuple[str, Path, str]] = []
    for name in names if names is not None else DEFAULT_WEIGHTS:
        if name in NAMED_WEIGHTS:
            label, path = name, run_dir / NAMED_WEIGHTS[name]
        else:
            p = Path(name)
            label, path = p.stem, p if p.is_absolute() or not (run_dir / p).exists() else run_dir / p
        if not path.is_file():
            why = f"no {path}" + (f" ({WHY_ABSENT[name]})" if name in WHY_ABSENT else "")
            if names is not None:
                raise ArtifactError(f"--weights {name}: {why}")
            log(f"note: sweep: {why}; left out")
            continue
        arrays, _ = read_checkpoint(path)  # every candidate verified before anything is generated
        checksum = tensors_checksum(arrays)
        same = next((lab for lab, _, c in found if c == checksum), None)
        if same is not None:  # e.g. best.safetensors when the best was the last scoring
            log(f"note: sweep: {path.name} holds the same weights as {same}; left out")
            continue
        found.append((label, path, checksum))
    if not found:
        raise ArtifactError(f"{run_dir}: none of the weights files {', '.join(names or DEFAULT_WEIGHTS)}"
                            " exists; train the run first")
    return [(label, path) for label, path, _ in found]


def generate_row(cfg_row: Config, run_dir: Path, maps: SplitInputs, weights: Path, out: Path,
                 progress: bool) -> None:
    """The row's images: the generate stage with `weights` (the run's choice.json ignored)."""
    from .generate import GenerateInputs, run_generate

    run_generate(cfg_row, GenerateInputs(run_dir, maps, weights, use_choice=False), out, progress=progress)


def scored_before(cfg: Config, generated: Path, evaluated: Path) -> dict | None:
    """The scores.json of an earlier evaluation of exactly these images with this scorer config
    (None when there is none: then it is scored)."""
    try:
        manifest = read_manifest(evaluated, "evaluate")
        same = (manifest.get("config_hash") == config_hash(cfg, "evaluate")
                and manifest.get("inputs", {}).get("generated") == manifest_hash(generated))
        return json.loads((evaluated / "scores.json").read_text(encoding="utf-8")) if same else None
    except (ArtifactError, OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- the sweep
@dataclass(frozen=True)
class Scorer:
    """How the scorer child process is called: its --config file and --set strings, and the
    function that calls it (`run_scorer`; replaceable in tests)."""

    config: Path
    sets: tuple[str, ...] = ()
    score_fn: Callable[..., dict] = run_scorer


def _result(row: Row, scores: dict, evaluated: Path) -> dict:
    value, formula = selection_score(scores)
    ratio = (scores.get("ceiling") or {}).get("rows", {}).get("score", {}).get("ratio")
    return {"row": row.name, "weights": row.label, "weights_file": str(row.weights),
            "transfer": row.transfer, "A": value, "formula": formula, "A_ratio": ratio,
            "terms": scores.get("terms", {}), "stand_in": bool(scores.get("stand_in")),
            "eval": str(evaluated)}


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table_lines(results: list[dict], best: int) -> list[str]:
    """The sweep's table: one row per candidate, A and each term, the best row marked '*'."""
    lines = [f"  {'':1} {'weights':<14} {'transfer':<20} {'A':>7} {'A/ceil':>7} {'mask_acc':>8}"
             f" {'style':>7} {'aesth':>7} {'FID':>8} {'KID':>8}"]
    for i, r in enumerate(results):
        t = r["terms"]
        lines.append(f"  {'*' if i == best else '':1} {r['weights']:<14} {r['transfer']:<20}"
                     f" {r['A']:>7.4f} {_fmt(r['A_ratio'], 3):>7} {_fmt(t.get('mask_accuracy')):>8}"
                     f" {_fmt(t.get('style')):>7} {_fmt(t.get('aesthetic')):>7}"
                     f" {_fmt(t.get('fid'), 2):>8} {_fmt(t.get('kid'), 5):>8}")
    lines.append(f"  A: {results[best]['formula']}; A/ceil: A over the ground truth's A (same scorer)")
    return lines


def plan_rows(run_dir: Path, transfers: Sequence[str] | None, weights: Sequence[str] | None,
              log: Callable[[str], None]) -> list[Row]:
    """Every (weights file, transfer) row, weights first; each input checked."""
    methods = parse_transfers(transfers)
    return [Row(label, path, m, s) for label, path in candidate_weights(run_dir, weights, log)
            for m, s in methods]


def run_sweep(cfg: Config, run_dir: str | Path, data_dir: str | Path, out: str | Path, scorer: Scorer, *,
              transfers: Sequence[str] | None = None, weights: Sequence[str] | None = None,
              progress: bool = True, log: Callable[[str], None] = print,
              generate_fn: Callable[..., None] = generate_row) -> StageResult:
    """Generate and score the val split of `data_dir` for every row (`plan_rows`), pick the best
    A (the first of equals), write RUN/choice.json and OUT/sweep.json. cfg: the run's config
    (`run_config(..., use_choice=False)`) with the sweep's --set. Returns StageResult(the
    choice record, the table and summary lines). The run's lock is held throughout."""
    from .generate import run_config

    run_dir, out = Path(run_dir), Path(out)
    base = run_config(run_dir, use_choice=False)
    rows = plan_rows(run_dir, transfers, weights, log)
    maps = resolve_inputs(data_dir, "val")
    results = []
    with os_errors(run_dir), FolderLock(run_dir, "sweep"):
        for i, row in enumerate(rows, 1):
            generated, evaluated = out / row.name / "generated", out / row.name / "eval"
            generate_fn(row.config(cfg), run_dir, maps, row.weights, generated, progress)
            scores = scored_before(cfg, generated, evaluated) or scorer.score_fn(
                generated, evaluated, scorer.config, scorer.sets, data=Path(data_dir), split="val")
            results.append(_result(row, scores, evaluated))
            log(f"sweep {i}/{len(rows)}: {row.label} + {row.transfer}: A {results[-1]['A']:.4f}")
        best = max(range(len(results)), key=lambda i: results[i]["A"])
        choice = choice_record(run_dir, rows[best], rows[best].config(cfg), base, results[best])
        atomic_write_json(out / "sweep.json", {"rows": results, "best": results[best]["row"]})
        atomic_write_json(run_dir / CHOICE_FILE, choice)
    summary = table_lines(results, best) + [
        f"sweep: best {rows[best].label} + {rows[best].transfer} (A {results[best]['A']:.4f})"
        f" -> {run_dir / CHOICE_FILE}; `landscape generate --run {run_dir}` (and `make submit`)"
        " now use it (--checkpoint / --set still override)"]
    if any(r["stand_in"] for r in results):
        summary.append("warning: scored with stand-in models (see the rows' scores.json): the"
                       " choice is only as good as the stand-ins")
    return StageResult(choice, summary)

"""Choosing by the score during training: rank 0 scores the EMA generator every
`train.score_every` steps and keeps the best weights.

    score_log.csv       one row per scoring: step, A, the formula it used, each term, best mark
    best.safetensors    EMA generator/encoder of the best A so far (a checkpoint: checksummed,
                        its header's "best" says step and scores); best.json beside it

Each scoring generates the first `train.score_maps` maps of the validation pairing (always the
same ones) with the live EMA generator, through the generate stage's own loop (so the images are
what `landscape generate` makes from the same weights and settings), into a temp folder, and
scores them with `landscape evaluate` in a child process: the Jittor side never loads the
PyTorch scorer, the two meet only through files. Its metrics are `train.score_metrics` (by
default the cheap ones: mask accuracy, style, FID/KID on the subset); A is the A-board score when
every term is scored, else the formula over the scored terms (`selection_score`).

A scorer that is not there (no SegFormer folder, no FID weights) or that fails turns scoring off
for the rest of the run, with one line saying why; training goes on.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

from ..checkpoint import network_state, save_checkpoint
from ..core.artifacts import atomic_write_json, atomic_write_text, sha256_file
from ..core.config import Config, config_to_toml
from ..core.errors import ArtifactError, LandscapeError
from ..core.inputs import SplitInputs, resolve_split

SCORE_LOG = "score_log.csv"
BEST_FILE = "best.safetensors"
BEST_INFO = "best.json"
SCORE_TERMS = ("mask_accuracy", "style", "aesthetic", "fid", "kid")
SCORE_COLUMNS = ["step", "A", "formula", *SCORE_TERMS, "images", "seconds", "best"]


class ScorerError(ArtifactError):
    """The scorer (`landscape evaluate` in a child process) failed; the message is its error line."""


# ---------------------------------------------------------------------------- the score
def selection_score(scores: dict) -> tuple[float, str]:
    """(A, formula) of a scores.json record: its A-board score when it has one; else the A-board
    formula over the scored terms, an unscored term left out (mask_acc taken as 1, the other
    parts as 0), so runs scored with the same metrics compare. ArtifactError when no term of the
    A formula was scored."""
    if scores.get("score") is not None:
        return float(scores["score"]), "A-board"
    terms = scores.get("terms", {})
    cap = float(scores.get("config", {}).get("fid_cap", 100.0))
    parts = {"aesthetic": lambda v: v * 0.2, "style": lambda v: (v * 0.5 + 0.5) * 0.3,
             "fid": lambda v: (cap - min(max(v, 0.0), cap)) / cap * 0.5}
    scored = [t for t in ("mask_accuracy", *parts) if t in terms]
    if not scored:
        raise ArtifactError("the scorer gave no term of the A formula (mask_accuracy, aesthetic,"
                            " style, fid): add one to the metric list")
    inner = sum(f(float(terms[t])) for t, f in parts.items() if t in terms)
    value = float(terms.get("mask_accuracy", 1.0)) * inner
    left_out = [t for t in ("mask_accuracy", "aesthetic", "style", "fid") if t not in terms]
    return value, ("A-board without " + ", ".join(left_out)) if left_out else "A-board"


# ---------------------------------------------------------------------------- the scorer, as a child process
def _error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or ["(no message)"])[-1]


def run_scorer(generated: Path, out: Path, config: Path, sets: Sequence[str] = (), *,
               data: Path | None = None, split: str = "val", labels: Path | None = None,
               pairs: Path | None = None, ceiling: bool = True) -> dict:
    """Score the folder `generated` with `landscape evaluate` in a child process and return the
    scores.json it wrote into `out`. config/sets: the scorer's --config and --set; data/split:
    the preprocessed folder's split; labels/pairs: a subset of it. ceiling=False: no ground
    truth computed when it is not cached. ScorerError with the scorer's error line on failure."""
    cmd = [sys.executable, "-m", "pipeline.cli", "evaluate", "--generated", str(generated),
           "--out", str(out), "--config", str(config), "--quiet"]
    cmd += [a for s in sets for a in ("--set", s)]
    for option, value in (("--data", data), ("--labels", labels), ("--pairs", pairs)):
        if value is not None:
            cmd += [option, str(value)]
    if data is not None:
        cmd += ["--split", split]
    if not ceiling:
        cmd.append("--no-ceiling")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ScorerError(f"the scorer (`landscape evaluate`) failed: {_error_line(proc.stderr)}")
    try:
        return json.loads((Path(out) / "scores.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScorerError(f"the scorer wrote no readable {out}/scores.json ({exc})") from None


def scorer_missing(cfg: Config, metrics: Sequence[str]) -> str:
    """Why the scorer cannot run with `metrics` here ('' when its model files are in place)."""
    e = cfg.evaluate
    if "mask-accuracy" in metrics and not Path(e.segformer).is_dir():
        return (f"no SegFormer folder at evaluate.segformer = {e.segformer} (fit one with"
                f" `landscape fit-segformer --data DATA --out {e.segformer}`, or set the key)")
    if "fid" in metrics and not Path(e.fid_weights).is_file():
        return (f"no FID weights at evaluate.fid_weights = {e.fid_weights} (`landscape weights"
                " --no-download` converts them)")
    return ""


# ---------------------------------------------------------------------------- the fixed subset
def subset_inputs(data_dir: Path, count: int, folder: Path) -> SplitInputs:
    """The first `count` maps of the validation pairing (sorted by name) as a split of their own
    in `folder`: labels/ (copies) and pairs.json; references and training photos stay where the
    preprocessed data says."""
    val = resolve_split(data_dir, "val")
    pairs = dict(sorted(json.loads(val.pairs_json.read_text(encoding="utf-8")).items())[:count])
    if len(pairs) < 2:
        raise ArtifactError(f"{data_dir}: {len(pairs)} validation map(s); scoring needs at least 2"
                            " (preprocess with a larger data.val_count)")
    labels = folder / "labels"
    labels.mkdir(parents=True)
    for name in pairs:
        shutil.copyfile(val.labels_dir / name, labels / name)
    atomic_write_json(folder / "pairs.json", pairs)
    return SplitInputs(labels, folder / "pairs.json", val.refs_dir, val.train_photos_dir, None,
                       "val", Path(data_dir))


def generate_subset(cfg: Config, trainer, maps: SplitInputs, folder: Path) -> None:
    """The EMA generator's images of `maps` into `folder`, by the generate stage's own loop."""
    from ..generate import _generate_missing

    _generate_missing(cfg, trainer.jt, trainer.model, maps, maps.load_pairs(), folder, progress=False)


# ---------------------------------------------------------------------------- score log and best
def read_score_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_score_log(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, SCORE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: r.get(k, "") for k in SCORE_COLUMNS} for r in rows)
    atomic_write_text(path, buf.getvalue())


def read_best(run_dir: Path) -> dict | None:
    """The "best" record in best.safetensors' header (step, A, terms), None when there is none
    (or it cannot be read: the next scoring replaces it)."""
    from safetensors import safe_open

    path = Path(run_dir) / BEST_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as f:
            best = json.loads((f.metadata() or {}).get("header", "{}")).get("best")
    except Exception:  # noqa: BLE001 - any unreadable file is "no best yet"
        return None
    return best if isinstance(best, dict) and "step" in best and "A" in best else None


def log_row(step: int, value: float, formula: str, scores: dict, seconds: float) -> dict:
    """A score_log.csv row of one scoring."""
    terms = scores.get("terms", {})
    row = {"step": step, "A": f"{value:.6f}", "formula": formula,
           "images": scores.get("counts", {}).get("images", ""), "seconds": f"{seconds:.1f}"}
    row.update({t: f"{terms[t]:.6f}" for t in SCORE_TERMS if t in terms})
    return row


class TrainScoring:
    """Rank 0's scoring of the EMA generator during training (see the module docstring).

    total_steps: the run's last step (None: unknown). score_fn(generated, out, config, sets,
    data=, labels=, pairs=, ceiling=) -> scores.json record, and generate_fn(cfg, trainer, maps,
    folder): replaceable (tests).
    """

    def __init__(self, run_dir: Path, cfg: Config, log: Callable[[str], None], *,
                 total_steps: int | None = None, score_fn=run_scorer, generate_fn=generate_subset):
        self.run, self.cfg, self.log = Path(run_dir), cfg, log
        # a run too short to reach a scoring is not scored, and says nothing about it
        short = total_steps is not None and total_steps < cfg.train.score_every
        self.every = 0 if short else cfg.train.score_every
        self.score_fn, self.generate_fn = score_fn, generate_fn
        self.off = not self.every
        self.best: dict | None = None

    def open(self, start_step: int) -> None:
        """Before the first step of a run starting after `start_step` steps: log rows after it
        dropped, a best of a later step removed; scoring turned off (said once) when the scorer
        is missing."""
        if self.off:
            return
        path = self.run / SCORE_LOG
        rows = read_score_log(path)
        if any(int(r["step"]) > start_step for r in rows):
            write_score_log(path, [r for r in rows if int(r["step"]) <= start_step])
        self.best = read_best(self.run)
        if self.best is not None and int(self.best["step"]) > start_step:
            self.log(f"note: {BEST_FILE} is from step {self.best['step']}, after the resumed step"
                     f" {start_step}: removed; the next scorings choose again")
            for name in (BEST_FILE, BEST_INFO):
                (self.run / name).unlink(missing_ok=True)
            self.best = None
        why = scorer_missing(self.cfg, self.cfg.train.score_metrics)
        if why:
            self._turn_off(why)

    def _turn_off(self, why: str) -> None:
        self.off = True
        self.log(f"note: scoring during training is off: {why}; training goes on")

    def step_done(self, trainer, data) -> None:
        """After each step: score when `train.score_every` divides the steps done."""
        if self.off or trainer.step % self.every:
            return
        try:
            self._score(trainer, data)
        except LandscapeError as exc:
            self._turn_off(str(exc))

    def _score(self, trainer, data) -> None:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="landscape-score-") as tmp:
            tmp = Path(tmp)
            maps = subset_inputs(data.prep.root, self.cfg.train.score_maps, tmp / "maps")
            (tmp / "generated").mkdir()
            self.generate_fn(self.cfg, trainer, maps, tmp / "generated")
            atomic_write_text(tmp / "config.toml", config_to_toml(self.cfg))
            sets = ["evaluate.metrics=" + json.dumps(list(self.cfg.train.score_metrics))]
            scores = self.score_fn(tmp / "generated", tmp / "eval", tmp / "config.toml", sets,
                                   data=maps.data_dir, labels=maps.labels_dir, pairs=maps.pairs_json,
                                   ceiling=False)
        value, formula = selection_score(scores)
        row = log_row(trainer.step, value, formula, scores, time.perf_counter() - t0)
        better = self.best is None or value > float(self.best["A"])
        if better:
            self._save_best(trainer, data.steps_per_epoch, row, scores)
        row["best"] = "*" if better else ""
        write_score_log(self.run / SCORE_LOG, read_score_log(self.run / SCORE_LOG) + [row])
        terms = ", ".join(f"{t} {row[t]}" for t in SCORE_TERMS if t in row)
        self.log(f"score at step {trainer.step}: A {value:.4f} ({formula}; {terms})"
                 + (f" -> new best, {BEST_FILE}" if better else f"; best stays step {self.best['step']}"))

    def _save_best(self, trainer, steps_per_epoch: int, row: dict, scores: dict) -> None:
        """best.safetensors (EMA networks, atomically, checksummed) then best.json beside it."""
        best = {"step": trainer.step, "A": float(row["A"]), "formula": row["formula"],
                "terms": scores.get("terms", {}), "images": row["images"],
                "metrics": list(self.cfg.train.score_metrics), "stand_in": scores.get("stand_in", False)}
        networks = trainer.ema_networks()
        header = {**trainer.checkpoint_header(steps_per_epoch), "optimizers": {},
                  "networks": networks, "best": best}
        save_checkpoint(self.run / BEST_FILE, network_state(trainer.model, networks), header)
        atomic_write_json(self.run / BEST_INFO, {**best, "weights": BEST_FILE,
                                                 "weights_sha256": sha256_file(self.run / BEST_FILE)})
        self.best = best

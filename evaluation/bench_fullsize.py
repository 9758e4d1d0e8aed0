"""`python -m evaluation.bench_fullsize` (in `make bench`): evaluate's full-size throughput.

Scores N built-in sample photos at full size (default 64 at 512x384) with the real-size scorer
architectures: the real weights when weights/ holds them, else a SegFormer-B5 and CLIP ViT-L/14
(+ the LAION head's shapes) built from their configs with random weights
(`tools/gpu_check_scorers.py`, in its own process), so time and memory are the real ones and the
scores mean nothing. The measured call is the real `run_evaluate` (no ceiling); its phases are
timed by wrapping the functions it calls, and every top-level model forward (torch's global
module hooks) is timed and charged to the metric whose code called it. Reports, per term,
seconds per image split into model forward and glue (everything else: decode, resize,
processors, histograms, statistics); the whole run's glue share (goal <= 20%); how many times
the input files were decoded (goal: once each); peak RSS; the projected time for 1,000 images
(the model loads once, the rest per image). --tiny: tiny scorers, for the test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from pipeline.core.artifacts import atomic_write_json
from pipeline.core.config import load_config

from . import evaluate as evaluate_mod
from . import scoring
from .bench import ROOT, _bin, _run
from .inputs import resolve_inputs
from .registry import Metric

GOAL_GLUE_SHARE = 0.20
PROJECT_TO = 1000


# ---------------------------------------------------------------------------- inputs
def make_inputs(work: Path, n: int, refs: int, size: tuple[int, int], env: dict) -> dict:
    """n generated images (sample photos) with their label maps, paired with `refs` other photos
    (each reference shared by several maps), which are also the FID reference set."""
    sample = work / "sample"
    _run([_bin("landscape"), "sample-data", "--out", str(sample), "--train", str(n + refs), "--test", "1",
          "--seed", "0", "--width", str(size[0]), "--height", str(size[1]), "--quiet"], env)
    photos = sorted((sample / "train" / "imgs").glob("*.jpg"))
    gen, labels, ref_dir = work / "generated", work / "labels", work / "refs"
    for d in (gen, labels, ref_dir):
        d.mkdir()
    pairs = {}
    for p in photos[n:]:
        shutil.copy(p, ref_dir / p.name)
    for i, p in enumerate(photos[:n]):
        shutil.copy(p, gen / p.name)
        shutil.copy(sample / "train" / "labels" / f"{p.stem}.png", labels / f"{p.stem}.png")
        pairs[f"{p.stem}.png"] = photos[n + i % refs].name
    (work / "pairs.json").write_text(json.dumps(pairs))
    return {"generated": gen, "labels": labels, "refs": ref_dir, "pairs": work / "pairs.json"}


def make_scorers(work: Path, weights: str, tiny: bool, env: dict) -> dict:
    """tools/gpu_check_scorers.py in its own process (its memory is not the evaluation's)."""
    cmd = [sys.executable, str(ROOT / "tools" / "gpu_check_scorers.py"), "--out", str(work / "scorers"),
           "--weights", weights, *(["--tiny"] if tiny else [])]
    _, out = _run(cmd, env)
    return json.loads(next(line for line in out.splitlines()[::-1] if line.startswith("{")))


# ---------------------------------------------------------------------------- timing
class ForwardTimer:
    """Wall time of every top-level module call (nested calls are inside it), charged to
    (phase, the metric whose method made the call)."""

    def __init__(self):
        self.depth, self.t0, self.owner = 0, 0.0, ""
        self.phase = "other"
        self.seconds: dict[tuple[str, str], float] = {}

    @staticmethod
    def _metric_on_stack() -> str:
        frame = sys._getframe(2)
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, Metric):
                return owner.name
            frame = frame.f_back
        return "(no metric)"

    def pre(self, module, args):
        if self.depth == 0:
            self.owner, self.t0 = self._metric_on_stack(), time.perf_counter()
        self.depth += 1

    def post(self, module, args, output):
        self.depth -= 1
        if self.depth == 0:
            key = (self.phase, self.owner)
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - self.t0

    def total(self, phase: str | None = None, metric: str | None = None) -> float:
        return sum(v for (p, m), v in self.seconds.items()
                   if (phase is None or p == phase) and (metric is None or m == metric))


@contextmanager
def instrumented(timer: ForwardTimer, record: dict):
    """run_evaluate with its phases timed: the functions it calls wrapped (and restored after),
    model forwards timed by global module hooks."""
    patched = []

    def wrap(module, name, phase, after=None):
        real = getattr(module, name)

        def timed(*args, **kwargs):
            timer.phase, t0 = phase, time.perf_counter()
            try:
                out = real(*args, **kwargs)
            finally:
                record["phases"][phase] = record["phases"].get(phase, 0.0) + time.perf_counter() - t0
                timer.phase = "other"
            if after:
                after(args, out)
            return out

        patched.append((module, name, real))
        setattr(module, name, timed)

    def after_check(args, items):
        record["items"] = items
        record["checked_decodes"] = sum(len(it.decoded) for it in items)

    def after_load(args, out):
        record["load_seconds"] = dict(out[1])

    def after_feed(args, decoder):
        record["update_seconds"] = {k: v - record["load_seconds"][k] for k, v in args[2].items()}
        record["loop_decodes"] = decoder.decodes

    wrap(evaluate_mod, "prepare_items", "check_and_decode", after_check)
    wrap(scoring, "load_metrics", "load_models", after_load)
    wrap(scoring, "feed_metrics", "scoring_loop", after_feed)
    def after_results(args, out):
        record["final_seconds"] = dict(args[1])

    wrap(scoring, "metric_results", "results", after_results)
    wrap(evaluate_mod, "write_evaluation", "write_outputs")
    hooks = [torch.nn.modules.module.register_module_forward_pre_hook(timer.pre),
             torch.nn.modules.module.register_module_forward_hook(timer.post)]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
        for module, name, real in reversed(patched):
            setattr(module, name, real)


# ---------------------------------------------------------------------------- the report
def _terms(scores: dict, rec: dict, timer: ForwardTimer, n: int) -> dict:
    """Per metric: load seconds (once), per-image forward and glue seconds (update + result)."""
    out = {}
    for name in scores["metrics"]:
        load = rec["load_seconds"][name]
        per_run = rec["final_seconds"][name] - load  # update + result, as the scorer measured them
        forward = timer.total("scoring_loop", name) + timer.total("results", name)
        out[name] = {"load_seconds": round(load, 3),
                     "load_forward_seconds": round(timer.total("load_models", name), 3),
                     "seconds_per_image": round(per_run / n, 4),
                     "forward_seconds_per_image": round(forward / n, 4),
                     "glue_seconds_per_image": round((per_run - forward) / n, 4)}
    return out


def summarise(scores: dict, rec: dict, timer: ForwardTimer, total: float, n: int) -> dict:
    forward, load = timer.total(), sum(rec["load_seconds"].values())
    distinct = len({str(p) for it in rec["items"] for p in (it.generated, it.map, it.ref) if p is not None})
    decodes = rec["checked_decodes"] + rec["loop_decodes"]
    per_image = (total - load) / n
    projected = load + per_image * PROJECT_TO
    fwd_per_image = (forward - timer.total("load_models")) / n
    phases = {k: round(v, 3) for k, v in rec["phases"].items()}
    phases["decode_in_scoring_loop_and_batching"] = round(
        rec["phases"]["scoring_loop"] - sum(rec["update_seconds"].values()), 3)
    return {
        "evaluate_seconds": round(total, 3), "forward_seconds": round(forward, 3),
        "glue_seconds": round(total - forward, 3), "glue_share": round((total - forward) / total, 4),
        "goal_glue_share": GOAL_GLUE_SHARE, "seconds_per_image": round(per_image, 4),
        "phases": phases, "terms": _terms(scores, rec, timer, n),
        "files": {"distinct": distinct, "decodes": decodes, "decoded_by_check_and_kept": rec["checked_decodes"],
                  "decoded_while_scoring": rec["loop_decodes"], "one_decode_per_file": decodes == distinct},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        f"projected_{PROJECT_TO}_images_seconds": round(projected, 1),
        f"projected_{PROJECT_TO}_images_glue_share": round(
            1 - (timer.total("load_models") + fwd_per_image * PROJECT_TO) / projected, 4),
    }


def measure(args, paths: dict, scorers: dict, work: Path) -> dict:
    sets = [f'evaluate.segformer="{scorers["segformer"]}"',
            f'evaluate.segformer_class_map="{scorers["segformer_class_map"]}"',
            f'evaluate.clip="{scorers["clip"]}"', f'evaluate.aesthetic_head="{scorers["aesthetic_head"]}"',
            f'evaluate.cache_dir="{work / "cache"}"', f'device="{args.device}"',
            f"evaluate.metrics={json.dumps(args.metrics.split(','))}"]
    if args.fid_weights:
        sets.append(f'evaluate.fid_weights="{args.fid_weights}"')
    if args.batch_size:
        sets.append(f"evaluate.batch_size={args.batch_size}")
    cfg = load_config(args.config, sets)
    inputs = resolve_inputs(paths["generated"], labels_dir=paths["labels"], pairs_json=paths["pairs"],
                            refs_dir=paths["refs"], train_photos_dir=paths["refs"])
    timer, rec = ForwardTimer(), {"phases": {}}
    any_size = (args.width, args.height) != (512, 384)
    with instrumented(timer, rec):
        t0 = time.perf_counter()
        evaluate_mod.run_evaluate(cfg, inputs, work / "eval", progress=False, allow_any_size=any_size,
                                  ceiling=None, log=lambda s: None)
        total = time.perf_counter() - t0
    scores = json.loads((work / "eval" / "scores.json").read_text())
    return {"batch_size": cfg.evaluate.batch_size, "terms_values": scores["terms"],
            **summarise(scores, rec, timer, total, args.images)}


# ---------------------------------------------------------------------------- command line
def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=64, help="generated images scored")
    ap.add_argument("--refs", type=int, default=16, help="reference photos (style pairs and the FID set)")
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=384)
    ap.add_argument("--tiny", action="store_true", help="tiny scorers of the same architectures (tests)")
    ap.add_argument("--config", default=str(ROOT / "configs" / "base.toml"))
    ap.add_argument("--metrics", default="mask-accuracy,color-hist-corr,aesthetic,fid")
    ap.add_argument("--batch-size", type=int, default=0, help="default: the config's evaluate.batch_size")
    ap.add_argument("--fid-weights", default="", help="default: the config's evaluate.fid_weights")
    ap.add_argument("--weights", default=str(ROOT / "weights"), help="real scorers used when present here")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "bench" / "evaluation_fullsize.json"))
    return ap.parse_args(argv)


def _print(r: dict, out_path: Path) -> None:
    print(f"evaluate at full size: {r['images']} images {r['size'][0]}x{r['size'][1]}, {r['device']},"
          f" {r['torch_threads']} torch threads, batch {r['batch_size']}, load average {r['load_average']}")
    print(f"  scorers: {r['scorers_note']}")
    print(f"  {'term':<16} {'load s':>8} {'s/image':>9} {'forward':>9} {'glue':>8}")
    for name, t in r["terms"].items():
        print(f"  {name:<16} {t['load_seconds']:8.2f} {t['seconds_per_image']:9.3f}"
              f" {t['forward_seconds_per_image']:9.3f} {t['glue_seconds_per_image']:8.3f}")
    print(f"  evaluate {r['evaluate_seconds']:.1f} s = {r['seconds_per_image']:.3f} s/image after the loads;"
          f" glue {r['glue_share']:.1%} of it (goal <= {r['goal_glue_share']:.0%})")
    f = r["files"]
    print(f"  files decoded {f['decodes']} times for {f['distinct']} files (once each: {f['one_decode_per_file']})")
    print(f"  peak RSS {r['peak_rss_mib']:.0f} MiB; {PROJECT_TO} images: about"
          f" {r[f'projected_{PROJECT_TO}_images_seconds'] / 60:.1f} min")
    print(f"wrote {out_path}")


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    work = Path(tempfile.mkdtemp(prefix="bench-fullsize-"))
    try:
        load_before = [round(x, 2) for x in os.getloadavg()]
        paths = make_inputs(work, args.images, args.refs, (args.width, args.height), env)
        scorers = make_scorers(work, args.weights, args.tiny, env)
        result = {"device": args.device, "images": args.images, "refs": args.refs,
                  "size": [args.width, args.height], "tiny": args.tiny, "cpu_count": os.cpu_count(),
                  "torch_threads": torch.get_num_threads(), "scorers": scorers,
                  "scorers_note": ("random weights: " + ", ".join(scorers["random"])) if scorers["random"]
                  else "the real weights", **measure(args, paths, scorers, work)}
        result["load_average"] = {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_path, result)  # never a half-written file
    _print(result, out_path)
    return result


if __name__ == "__main__":
    main()

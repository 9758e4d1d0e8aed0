"""`python -m evaluation.bench`: how fast is our scoring, next to torch-fidelity's CLI?

Measures, on the same two folders of 512x384 photos and the same Inception weights file:
1. torch-fidelity's CLI: `fidelity --fid --input1 A --input2 B --feature-extractor-weights-path W`
   (`--cpu` on CPU, `--no-cache`), wall time of the process;
2. ours: `landscape evaluate --generated A --train-photos B --set evaluate.metrics=["fid"]` with an
   empty statistics cache, wall time of the process; the ratio ours / theirs (goal <= 1.0);
3. ours again: the training statistics now come from the cache;
4. the whole evaluate (all four terms; a SegFormer of the config's [fit_segformer] sizes with
   random weights unless --segformer is given, since only its speed matters here): images/s.
Also the two FID values and their difference. The folders default to a fresh built-in sample
dataset (`landscape sample-data`); results are printed and written as json (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pipeline.core.artifacts import atomic_write_json
from pipeline.core.config import load_config

from .fit_segformer import build_model, make_processor

ROOT = Path(__file__).resolve().parent.parent


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _run(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench: command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return wall, proc.stdout + proc.stderr


def make_folders(work: Path, n_gen: int, n_train: int, seed: int, env: dict) -> tuple[Path, Path, Path]:
    """Built-in sample photos split into a 'generated' and a 'training' folder; also its test maps."""
    sample = work / "sample"
    _run([_bin("landscape"), "sample-data", "--out", str(sample), "--train", str(n_gen + n_train),
          "--test", "4", "--seed", str(seed), "--quiet"], env)
    photos = sorted((sample / "train" / "imgs").glob("*.jpg"))
    a, b = work / "generated", work / "train_photos"
    a.mkdir()
    b.mkdir()
    for i, p in enumerate(photos):
        shutil.copy(p, (a if i < n_gen else b) / p.name)
    return a, b, sample


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "demo.toml"))
    ap.add_argument("--generated", help="folder A (default: built-in sample photos)")
    ap.add_argument("--train-photos", help="folder B (default: built-in sample photos)")
    ap.add_argument("--n-gen", type=int, default=24)
    ap.add_argument("--n-train", type=int, default=48)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--fid-weights", default="", help="default: the config's evaluate.fid_weights")
    ap.add_argument("--segformer", default="", help="SegFormer folder for the whole-evaluate timing")
    ap.add_argument("--out", default=str(ROOT / "artifacts" / "bench" / "evaluation.json"))
    return ap.parse_args(argv)


def _fid_timings(args, a: Path, b: Path, weights: Path, cache: Path, work: Path, env: dict) -> dict:
    """torch-fidelity's CLI, then ours with a cold and a warm statistics cache: seconds and FIDs."""
    theirs_cmd = [_bin("fidelity"), "--fid", "--input1", str(a), "--input2", str(b),
                  "--feature-extractor-weights-path", str(weights), "--no-cache", "--json", "--silent"]
    theirs_cmd += ["--cpu"] if args.device == "cpu" else ["--gpu", "0"]
    t_theirs, out = _run(theirs_cmd, env)
    fid_theirs = json.loads(out[out.index("{"): out.rindex("}") + 1])["frechet_inception_distance"]
    ours_cmd = [_bin("landscape"), "evaluate", "--generated", str(a), "--train-photos", str(b),
                "--out", str(work / "eval_fid"), "--config", args.config, "--device", args.device,
                "--quiet", "--allow-any-size", "--set", 'evaluate.metrics=["fid"]',
                "--set", f'evaluate.cache_dir="{cache}"', "--set", f'evaluate.fid_weights="{weights}"']
    t_ours, _ = _run(ours_cmd, env)
    t_cached, _ = _run(ours_cmd, env)
    fid_ours = json.loads((work / "eval_fid" / "scores.json").read_text())["terms"]["fid"]
    return {
        "torch_fidelity_cli_seconds": round(t_theirs, 2),
        "ours_fid_seconds": round(t_ours, 2),
        "ratio_ours_over_torch_fidelity": round(t_ours / t_theirs, 3),
        "goal_ratio": 1.0,
        "ours_fid_cached_statistics_seconds": round(t_cached, 2),
        "fid_ours": fid_ours,
        "fid_torch_fidelity": fid_theirs,
        "fid_abs_difference": abs(fid_ours - fid_theirs),
    }


def _print(r: dict, out_path: Path) -> None:
    n_a, n_b = r["images"]["generated"], r["images"]["train_photos"]
    print(f"FID on {n_a} vs {n_b} images ({r['device']}):")
    print(f"  torch-fidelity CLI     {r['torch_fidelity_cli_seconds']:7.2f} s   FID {r['fid_torch_fidelity']:.4f}")
    print(f"  ours (cold cache)      {r['ours_fid_seconds']:7.2f} s   FID {r['fid_ours']:.4f}"
          f"   ratio {r['ratio_ours_over_torch_fidelity']:.3f} (goal <= 1.0)")
    print(f"  ours (cached stats)    {r['ours_fid_cached_statistics_seconds']:7.2f} s")
    print(f"  |FID difference|       {r['fid_abs_difference']:.2e}")
    if "whole_evaluate_images" in r:
        print(f"  whole evaluate: {r['whole_evaluate_images']} images in {r['whole_evaluate_seconds']:.2f} s"
              f" = {r['whole_evaluate_images_per_second']:.2f} images/s (whole process), in-process"
              f" {r['whole_evaluate_in_process_images_per_second']:.2f} images/s; segformer: {r['segformer']}")
    print(f"wrote {out_path}")


def main(argv: list[str] | None = None) -> dict:
    args = _parse(argv)
    cfg = load_config(args.config)
    weights = Path(args.fid_weights or cfg.evaluate.fid_weights)
    if not weights.is_file():
        raise SystemExit(f"bench: {weights} not found; run `landscape weights` first")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    try:
        if args.generated and args.train_photos:
            a, b, sample = Path(args.generated), Path(args.train_photos), None
        else:
            a, b, sample = make_folders(work, args.n_gen, args.n_train, 0, env)
        cache = work / "cache"
        result = {"device": args.device,
                  "images": {"generated": len(list(a.glob("*.jpg"))), "train_photos": len(list(b.glob("*.jpg")))},
                  "fid_weights": str(weights), **_fid_timings(args, a, b, weights, cache, work, env)}
        if sample is not None:
            result.update(_whole_evaluate(args, cfg, work, a, b, sample, weights, cache, env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_path, result)  # never a half-written file
    _print(result, out_path)
    return result


def _whole_evaluate(args, cfg, work: Path, a: Path, b: Path, sample: Path, weights: Path, cache: Path, env) -> dict:
    """All four terms on folder A scored against maps/refs made from the sample's own labels."""
    labels, refs = work / "labels", work / "refs"
    labels.mkdir()
    pairs = {}
    photos = sorted(b.glob("*.jpg"))
    for i, p in enumerate(sorted(a.glob("*.jpg"))):
        shutil.copy(sample / "train" / "labels" / f"{p.stem}.png", labels / f"{p.stem}.png")
        pairs[f"{p.stem}.png"] = photos[i % len(photos)].name
    (work / "pairs.json").write_text(json.dumps(pairs))
    seg = args.segformer
    if not seg:
        torch.manual_seed(0)
        seg = str(work / "segformer-random")
        build_model(cfg).save_pretrained(seg)
        make_processor(cfg.fit_segformer.height, cfg.fit_segformer.width).save_pretrained(seg)
    cmd = [_bin("landscape"), "evaluate", "--generated", str(a), "--labels", str(labels),
           "--pairs", str(work / "pairs.json"), "--refs", str(b), "--train-photos", str(b),
           "--out", str(work / "eval_all"), "--config", args.config, "--device", args.device, "--quiet",
           "--allow-any-size",
           "--set", f'evaluate.segformer="{seg}"', "--set", f'evaluate.cache_dir="{cache}"',
           "--set", f'evaluate.fid_weights="{weights}"']
    t, _ = _run(cmd, env)
    scores = json.loads((work / "eval_all" / "scores.json").read_text())
    n = scores["counts"]["images"]
    inproc = scores["timing"]["seconds"]  # run_evaluate: model loads, cached FID statistics, scoring, report
    return {
        "whole_evaluate_images": n,
        "whole_evaluate_seconds": round(t, 2),
        "whole_evaluate_images_per_second": round(n / t, 3),
        "whole_evaluate_in_process_images_per_second": round(n / inproc, 3) if inproc else None,
        "whole_evaluate_stand_in": scores["stand_in"],
        "segformer": args.segformer or "random-init, [fit_segformer] sizes (speed only)",
        "per_metric_seconds": {k: v["seconds"] for k, v in scores["metrics"].items()},
    }


if __name__ == "__main__":
    main()

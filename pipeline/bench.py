"""Speed of the model on this machine: seconds per training step, generated images/s, cold start.

    python -m pipeline.bench [--which demo,base] [--steps N] [--device cpu] [--no-cold] [--json FILE]

"demo" is configs/demo.toml (its size and batch), "base" is configs/base.toml at 512x384
(batch 1), on synthetic label maps and photos, so no dataset is needed. Each setting warms up
until its step time is steady (the last WARMUP_WINDOW steps within WARMUP_TOLERANCE of each
other; at most WARMUP_MAX_STEPS steps or WARMUP_MAX_SECONDS, then flagged NOT steady) and
reports the median of that window and of --steps more steps. With "demo", the plain SPADE
baseline (`model.kind = "spade"`) at the same size is timed too, as the reference of the goal:
an ECGAN training step costs at most ECGAN_GOAL times a SPADE step.

Cold start (the demo setting, unless --no-cold): a subprocess builds the model and runs one step
with Jittor's kernel folder pointed at an empty directory (the compiled core is reused), so
every kernel of a training step is compiled as on a fresh machine; it reports the count of
kernels compiled and the first-run time, whose excess over the warm build + steady step is the
compile time. It runs twice: without the kernels' precompiled header and compile driver
(pipeline/jt_pch.py, `LANDSCAPE_KERNEL_PCH=0`: Jittor as shipped) and with them (the project's
default).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .core.config import CONFIG_DIR, load_config

SETTINGS = {
    "demo": (CONFIG_DIR / "demo.toml", []),
    "demo-spade": (CONFIG_DIR / "demo.toml", ['model.kind="spade"']),
    "base": (CONFIG_DIR / "base.toml", ["train.batch_size=1"]),
}
ECGAN_GOAL = 2.0  # edge branch + semantic module may at most double the SPADE step
WARMUP_WINDOW = 3  # consecutive steps ...
WARMUP_TOLERANCE = 0.10  # ... within 10% of each other (slowest / fastest - 1) = steady
WARMUP_MAX_STEPS = 20
WARMUP_MAX_SECONDS = 180.0
COLD_TAG = "COLD-START "  # the child's result line


def _synthetic(batch: int, h: int, w: int, seed: int = 0) -> dict:
    """numpy batch of blocky label maps, matching flat-coloured photos and their edges."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 29, (batch, 6, 8)).astype(np.uint8)
    labels = np.stack([np.kron(m, np.ones((h // 6 + 1, w // 8 + 1), np.uint8))[:h, :w]
                       for m in small])
    palette = rng.integers(0, 256, (29, 3)).astype(np.uint8)
    images = palette[labels]
    edges = np.zeros_like(labels)
    edges[:, 1:] |= (labels[:, 1:] != labels[:, :-1]).astype(np.uint8) * 255
    return {"images": images, "labels": labels, "edges": edges}


# ============================================================================ timing helpers
def spread(times: list[float]) -> float:
    """Slowest over fastest, minus 1: 0.10 = the slowest took 10% longer."""
    return max(times) / min(times) - 1.0


def warm_up(step: Callable[[], None], window: int = WARMUP_WINDOW, tolerance: float = WARMUP_TOLERANCE,
            max_steps: int = WARMUP_MAX_STEPS, max_seconds: float = WARMUP_MAX_SECONDS,
            clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], bool]:
    """Run `step` until its last `window` durations are within `tolerance` of each other, or
    `max_steps` steps / `max_seconds` have passed. Returns (every duration, steady or not)."""
    times: list[float] = []
    start = clock()
    while len(times) < max_steps:
        t0 = clock()
        step()
        times.append(clock() - t0)
        if len(times) >= window and spread(times[-window:]) <= tolerance:
            return times, True
        if clock() - start >= max_seconds:
            break
    return times, False


def time_steps(step: Callable[[], None], n: int,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Durations of `n` calls of `step`."""
    times = []
    for _ in range(n):
        t0 = clock()
        step()
        times.append(clock() - t0)
    return times


def count_kernels(jit_dir: Path) -> int:
    """Compiled kernels in a Jittor kernel folder: one shared library each."""
    return sum(1 for p in Path(jit_dir).iterdir() if p.suffix in (".so", ".dll", ".pyd")) \
        if Path(jit_dir).is_dir() else 0


# ============================================================================ one setting
_THREADS: list[int] = []  # Jittor's CPU threads in this process: fixed by its first import


def _setting(name: str, device: str):
    """(config, jittor module) of a setting, Jittor set up for `device` and the config's threads."""
    from .jt_env import setup_jittor

    path, extra = SETTINGS[name]
    cfg = load_config(path, [f'device="{device}"', *extra])
    jt = setup_jittor(device, cfg.threads)
    if not _THREADS:
        _THREADS.append(int(os.environ.get("OMP_NUM_THREADS", "0") or 0))
    return cfg, jt


def _build(cfg, jt):
    """(trainer, Jittor batch) of a setting: the model, its optimisers and one synthetic batch."""
    from .train import Trainer, batch_to_vars

    h, w, b = cfg.data.height, cfg.data.width, cfg.train.batch_size
    trainer = Trainer(cfg, jt, h, w, log=lambda msg: None)
    return trainer, batch_to_vars(jt, _synthetic(b, h, w), cfg.model.num_classes)


def _generate_rate(cfg, jt, trainer, calls: int) -> tuple[float, float]:
    """(first generate call seconds, images/s over the median of the next `calls` calls)."""
    from .train import batch_to_vars

    gb, h, w = cfg.generate.batch_size, cfg.data.height, cfg.data.width
    gen = batch_to_vars(jt, _synthetic(gb, h, w, seed=1), cfg.model.num_classes)
    key = "refined" if cfg.model.kind == "ecgan" and cfg.model.semantic_module else "image"

    def run():
        trainer.model.generate(gen["seg"], gen["image"])[key].sync()

    first = time_steps(run, 1)[0]
    return first, gb / statistics.median(time_steps(run, max(1, calls)))


def bench_setting(name: str, steps: int, device: str) -> dict:
    """Time training steps (after a steady warm-up) and generation for one setting."""
    cfg, jt = _setting(name, device)
    t0 = time.perf_counter()
    trainer, batch = _build(cfg, jt)
    build = time.perf_counter() - t0

    def step():
        trainer.train_step(batch, 1.0)

    warm, steady = warm_up(step)
    # the steady window is steady-state already: it counts, with `steps` more after it
    timed = warm[-WARMUP_WINDOW:] + time_steps(step, steps)
    step_s = statistics.median(timed)
    gen_first, gen_rate = _generate_rate(cfg, jt, trainer, max(steps, 3))
    params = sum(int(np.prod(p.shape)) for p in trainer.model.generator_parameters())
    b = cfg.train.batch_size
    return {
        "setting": name, "device": device, "size": f"{cfg.data.width}x{cfg.data.height}", "train_batch": b,
        "threads": _THREADS[0],
        "generator_params": params, "build_s": round(build, 3), "first_step_s": round(warm[0], 2),
        "warmup_steps": len(warm), "steady": steady, "warmup_s": [round(t, 3) for t in warm],
        "train_step_s": round(step_s, 3), "timed_steps": len(timed), "timed_spread": round(spread(timed), 3),
        "train_images_per_s": round(b / step_s, 2),
        "generate_batch": cfg.generate.batch_size, "generate_first_s": round(gen_first, 2),
        "generate_images_per_s": round(gen_rate, 2),
    }


# ============================================================================ cold start
def _fresh_kernel_folder(jt, root: Path) -> Path:
    """Point Jittor's kernel compilation at `root` (an empty jit/ beside a copy of the generated
    headers the kernels include); the compiled core stays where it is. Returns root/jit."""
    shutil.copytree(Path(jt.flags.cache_path) / "gen", root / "gen")
    for sub in ("jit", "obj_files", "tmp"):
        (root / sub).mkdir()
    jt.flags.cache_path = str(root)
    return root / "jit"


def cold_child(name: str, device: str) -> None:
    """In a fresh process: build the setting and run one step with an empty kernel folder;
    print COLD_TAG + json {"kernels", "build_s", "first_step_s"}."""
    cfg, jt = _setting(name, device)
    root = Path(tempfile.mkdtemp(prefix="landscape-cold-kernels-"))
    try:
        jit = _fresh_kernel_folder(jt, root)
        t0 = time.perf_counter()
        trainer, batch = _build(cfg, jt)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        trainer.train_step(batch, 1.0)
        first = time.perf_counter() - t0
        print(COLD_TAG + json.dumps({"kernels": count_kernels(jit), "build_s": round(build, 2),
                                     "first_step_s": round(first, 2)}), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def cold_start(name: str, device: str, warm: dict, pch: bool = True) -> dict:
    """Run `cold_child` in a subprocess, with or without the kernels' precompiled header
    (pipeline/jt_pch.py); return its numbers plus compile_s: the cold build + first step over the
    warm build + steady step of the same setting (`warm`, from bench_setting)."""
    cmd = [sys.executable, "-m", "pipeline.bench", "--cold-child", name, "--device", device]
    env = dict(os.environ, LANDSCAPE_KERNEL_PCH="1" if pch else "0")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(COLD_TAG)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise RuntimeError(f"cold-start run of {name!r} failed (exit {proc.returncode}):\n{tail}")
    r = json.loads(lines[-1][len(COLD_TAG):])
    compile_s = r["build_s"] + r["first_step_s"] - warm["build_s"] - warm["train_step_s"]
    return {"setting": name, "pch": pch, "cold_kernels": r["kernels"], "cold_build_s": r["build_s"],
            "cold_first_step_s": r["first_step_s"], "compile_s": round(max(0.0, compile_s), 1),
            "cold_process_s": round(wall, 1)}


# ============================================================================ command
def _line(r: dict) -> str:
    warm = (f"after {r['warmup_steps']} warm-up steps" + ("" if r["steady"] else ", NOT steady")
            + f", first {r['first_step_s']:.1f} s")
    return (f"{r['setting']:>10} {r['size']:>8} {r['device']} ({r['threads']} threads):"
            f" train {r['train_step_s']:.3f} s/step (median of {r['timed_steps']},"
            f" spread {r['timed_spread']:.0%}, {warm}; batch {r['train_batch']},"
            f" {r['train_images_per_s']:.2f} img/s), generate {r['generate_images_per_s']:.2f} img/s"
            f" (batch {r['generate_batch']}), G params {r['generator_params']:,}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--which", default="demo,base",
                        help="comma list of: demo, base (demo also times demo-spade)")
    parser.add_argument("--steps", type=int, default=0,
                        help="timed steps after the steady warm-up window (default: 3 for demo, 0 for base)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--no-cold", action="store_true",
                        help="skip the cold-start (fresh kernel folder) run")
    parser.add_argument("--json", default="", help="also write the results to this file")
    parser.add_argument("--cold-child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_child:
        return cold_child(args.cold_child, args.device)
    names = args.which.split(",")
    for name in names:
        if name not in SETTINGS:
            parser.error(f"--which {name!r}: use demo and/or base")
    if "demo" in names and "demo-spade" not in names:
        names.insert(names.index("demo") + 1, "demo-spade")
    results = []
    for name in names:
        steps = args.steps if args.steps > 0 else (3 if name.startswith("demo") else 0)
        results.append(bench_setting(name, steps, args.device))
        print(_line(results[-1]), flush=True)
    by_name = {r["setting"]: r for r in results}
    if "demo" in by_name and "demo-spade" in by_name:
        ratio = by_name["demo"]["train_step_s"] / by_name["demo-spade"]["train_step_s"]
        verdict = "PASS" if ratio <= ECGAN_GOAL else "MISS"
        print(f"ecgan / spade training step at the demo size: {ratio:.2f}x"
              f" (goal <= {ECGAN_GOAL:.1f}x) {verdict}", flush=True)
        results.append({"ecgan_over_spade_step": round(ratio, 3), "goal": ECGAN_GOAL})
    if "demo" in by_name and not args.no_cold:
        for pch in (False, True):
            cold = cold_start("demo", args.device, by_name["demo"], pch)
            results.append(cold)
            how = "with" if pch else "without"
            print(f"cold start (demo, empty kernel folder, {how} the kernels' precompiled header"
                  " and compile driver):"
                  f" {cold['cold_kernels']} kernels compiled; build + first step"
                  f" {cold['cold_build_s'] + cold['cold_first_step_s']:.1f} s, of which compilation"
                  f" ~{cold['compile_s']:.1f} s", flush=True)
    if args.json:
        from .core.artifacts import atomic_write_json

        atomic_write_json(args.json, results)


if __name__ == "__main__":
    main()

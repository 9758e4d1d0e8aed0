"""Speed of the model on this machine: seconds per training step and generated images/s.

    python -m pipeline.bench [--which demo,base] [--steps N] [--device cpu] [--json FILE]

"demo" is configs/demo.toml (its size and batch), "base" is configs/base.toml at 512x384
(batch 1). Each is timed after one warm-up step (which includes Jittor's JIT compilation, shown
separately), on synthetic label maps and photos, so no dataset is needed. With "demo", the plain
SPADE baseline (`model.kind = "spade"`) at the same size is timed too, as the reference of the
goal: an ECGAN training step costs at most ECGAN_GOAL times a SPADE step.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from .core.config import CONFIG_DIR, load_config

SETTINGS = {
    "demo": (CONFIG_DIR / "demo.toml", []),
    "demo-spade": (CONFIG_DIR / "demo.toml", ['model.kind="spade"']),
    "base": (CONFIG_DIR / "base.toml", ["train.batch_size=1"]),
}
ECGAN_GOAL = 2.0  # edge branch + semantic module may at most double the SPADE step


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


def bench_setting(name: str, steps: int, device: str) -> dict:
    """Time training steps and generation for one setting; returns the numbers."""
    from .jt_env import setup_jittor
    from .train import Trainer, batch_to_vars

    path, extra = SETTINGS[name]
    cfg = load_config(path, [f'device="{device}"', *extra])
    jt = setup_jittor(device, cfg.threads)
    h, w, b = cfg.data.height, cfg.data.width, cfg.train.batch_size
    trainer = Trainer(cfg, jt, h, w, log=lambda msg: None)
    batch = batch_to_vars(jt, _synthetic(b, h, w), cfg.model.num_classes)
    t0 = time.perf_counter()
    trainer.train_step(batch, 1.0)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch, 1.0)
    step_s = (time.perf_counter() - t0) / steps

    gb = cfg.generate.batch_size
    gen = batch_to_vars(jt, _synthetic(gb, h, w, seed=1), cfg.model.num_classes)
    key = "refined" if cfg.model.kind == "ecgan" and cfg.model.semantic_module else "image"
    t0 = time.perf_counter()
    trainer.model.generate(gen["seg"], gen["image"])[key].sync()
    gen_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.model.generate(gen["seg"], gen["image"])[key].sync()
    gen_s = (time.perf_counter() - t0) / steps
    params = sum(int(np.prod(p.shape)) for p in trainer.model.generator_parameters())
    return {
        "setting": name, "device": device, "size": f"{w}x{h}", "train_batch": b,
        "generator_params": params, "first_step_s": round(first, 2),
        "train_step_s": round(step_s, 3), "train_images_per_s": round(b / step_s, 2),
        "generate_batch": gb, "generate_first_s": round(gen_first, 2),
        "generate_images_per_s": round(gb / gen_s, 2),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--which", default="demo,base",
                        help="comma list of: demo, base (demo also times demo-spade)")
    parser.add_argument("--steps", type=int, default=0,
                        help="timed steps after the warm-up (default: 3 for demo, 1 for base)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--json", default="", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    names = args.which.split(",")
    if "demo" in names and "demo-spade" not in names:
        names.insert(names.index("demo") + 1, "demo-spade")
    for name in names:
        if name not in SETTINGS:
            parser.error(f"--which {name!r}: use demo and/or base")
        steps = args.steps if args.steps > 0 else (3 if name == "demo" else 1)
        r = bench_setting(name, steps, args.device)
        results.append(r)
        print(f"{r['setting']:>10} {r['size']:>8} {r['device']}: train {r['train_step_s']:.3f} s/step"
              f" (batch {r['train_batch']}, {r['train_images_per_s']:.2f} img/s; first step incl."
              f" JIT {r['first_step_s']:.1f} s), generate {r['generate_images_per_s']:.2f} img/s"
              f" (batch {r['generate_batch']}), G params {r['generator_params']:,}", flush=True)
    by_name = {r["setting"]: r for r in results}
    if "demo" in by_name and "demo-spade" in by_name:
        ratio = by_name["demo"]["train_step_s"] / by_name["demo-spade"]["train_step_s"]
        verdict = "PASS" if ratio <= ECGAN_GOAL else "MISS"
        print(f"ecgan / spade training step at the demo size: {ratio:.2f}x"
              f" (goal <= {ECGAN_GOAL:.1f}x) {verdict}", flush=True)
        results.append({"ecgan_over_spade_step": round(ratio, 3), "goal": ECGAN_GOAL})
    if args.json:
        from .core.artifacts import atomic_write_json

        atomic_write_json(args.json, results)


if __name__ == "__main__":
    main()

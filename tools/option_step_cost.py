"""Time per training step of a config with each model option on vs all of them off, interleaved.

    python -m tools.option_step_cost [--config configs/demo.toml] [--rounds 3] [--steps 3]
                                     [--set section.key=value ...] [--device cpu]

One process builds a trainer per variant (all the ECGAN options off; each one on alone; all on),
compiles each with two warm-up steps, then runs `--rounds` rounds in which every variant (in an
order rotated each round) times `--steps` steps on the same random batch at the config's size.
Prints each variant's median seconds per step (and the range over the rounds) and its ratio to
the all-off variant: on a shared machine compare ratios, not seconds. Threads: the config's `threads` (OMP_NUM_THREADS if set).
"""

from __future__ import annotations

import argparse
import statistics
import time

OFF = {"loss.edge_gan": "0", "loss.contrastive": "0", "model.spectral_norm_g": "false",
       "model.init": '"default"', "loss.refined": "1"}
ON = {"loss.edge_gan": "1", "loss.contrastive": "1", "model.spectral_norm_g": "true",
      "model.init": '"xavier"', "loss.refined": "2"}


def variants() -> dict[str, list[str]]:
    """Name -> overrides: all off, each option on alone, all on."""
    off = [f"{k}={v}" for k, v in OFF.items()]
    out = {"all off": off}
    for key, value in ON.items():
        out[f"+ {key}={value}"] = [s for s in off if not s.startswith(key + "=")] + [f"{key}={value}"]
    out["all on"] = [f"{k}={v}" for k, v in ON.items()]
    return out


def _batch(jt, cfg):
    import numpy as np

    from pipeline.train import batch_to_vars

    rng = np.random.default_rng(0)
    b, h, w = cfg.train.batch_size, cfg.data.height, cfg.data.width
    labels = rng.integers(0, 29, (b, h // 8, w // 8)).repeat(8, 1).repeat(8, 2).astype(np.uint8)
    images = rng.integers(0, 255, (b, h, w, 3), dtype=np.uint8)
    edges = (rng.random((b, h, w)) < 0.05).astype(np.uint8) * 255
    return batch_to_vars(jt, {"images": images, "labels": labels, "edges": edges}, 29)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/demo.toml")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    from pipeline.core.config import load_config
    from pipeline.jt_env import setup_jittor

    base = load_config(args.config, args.sets)
    jt = setup_jittor(args.device, threads=base.threads)
    from pipeline.train import Trainer

    trainers, times = {}, {}
    batch = _batch(jt, base)
    for name, sets in variants().items():
        cfg = load_config(args.config, args.sets + sets)
        trainers[name] = Trainer(cfg, jt, cfg.data.height, cfg.data.width, log=lambda m: None)
        for _ in range(2):  # compile
            trainers[name].train_step(batch, 1.0)
        times[name] = []
    names = list(trainers)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            for _ in range(args.steps):
                trainers[name].train_step(batch, 1.0)
            times[name].append((time.perf_counter() - start) / args.steps)
    ref = statistics.median(times["all off"])
    print(f"| variant ({args.config}, batch {base.train.batch_size}) | s/step: median (min-max"
          f" of {args.rounds} rounds) | x all off |")
    print("| --- | --- | --- |")
    for name in names:
        med = statistics.median(times[name])
        print(f"| {name} | {med:.3f} ({min(times[name]):.3f}-{max(times[name]):.3f}) "
              f"| x{med / ref:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Jittor vs PyTorch on the same GAN training step, timed interleaved on this machine.

    python -m tools.step_bench [--which demo,half] [--threads 1,2] [--steps N] [--json FILE]
                               [--profile N] [--parts N] [--no-check]
                               [--jittor-previous upsample,fused,conv,winograd]

The Jittor side is the project's own Trainer (pipeline/train, pipeline/model) built as
pipeline/bench.py builds it; the PyTorch side is tools/torch_mirror.py, the same networks layer by
layer (state-dict keys and shapes asserted equal, outputs on the same weights compared unless
--no-check). The step: G + style encoder + multi-scale D forward, backward, Adam on G, then on
D, EMA update, loss values read back (hinge GAN, feature matching, KLD, edge BCE; no VGG).

Settings: "demo" = configs/demo.toml (128x96, batch 4); "half" = configs/base.toml at 256x192,
batch 1, every width halved; "tiny" = a toy size (the tests). Each framework runs in its own worker
process (OMP_NUM_THREADS set before its import), both driven in lockstep by this one: a Jittor step,
a PyTorch step (the order alternating), so both see the same machine load. Warm-up: until the last
WARMUP_WINDOW steps of both are within WARMUP_TOLERANCE (pipeline/bench.py's rule), then --steps
more; each time is the median of the steady window and those, and J/T the median of those rounds'
per-round Jittor/PyTorch ratios (steadier under a changing load). The machine's conv FLOP rate is a
large oneDNN conv in the PyTorch worker at the same threads (the best of before and after); each
framework's share of it = the step's conv FLOPs (3 x forward, counted with hooks) / its step time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.bench import WARMUP_MAX_SECONDS, WARMUP_MAX_STEPS, WARMUP_TOLERANCE, WARMUP_WINDOW, spread
from pipeline.core.config import CONFIG_DIR, load_config

from .step_bench_report import HEADER, print_parts, print_profile, summarize_profile, table_line, verdicts

ROOT = Path(__file__).resolve().parent.parent
MIRROR_TOLERANCE = 1e-3  # largest |torch - jittor| / largest |jittor| of an output
TAG = "STEP-BENCH "  # a worker's reply line
# The network mirrored, pinned: a new default elsewhere cannot change what is compared. The ECGAN
# recipe items of base.toml (spectral norm in G/E, edge discriminator, contrastive loss) are off:
# the network of issue 11's measurements; weights are copied from Jittor's, so `init` is moot.
PINNED = ['model.kind="ecgan"', 'model.param_free_norm="instance"', "model.use_vae=true",
          "model.edge_attention=true", "model.semantic_module=true", "model.class_hints=true",
          "model.hint_skip=true", "model.spectral_norm=true", 'model.upsample="nearest"',
          "model.style_shuffle=0", "model.style_modulation=false", "model.style_stats=false",
          "model.style_palette=0.0", "model.noise=false", "model.hint_texture=0",
          "model.hint_texture_learnt=false", "model.hint_texture_absent=0", "loss.vgg=0", 'loss.vgg_weights=""',
          "loss.colour_stats=0", "loss.colour_class=0", "loss.colour_lowpass=0", "loss.colour_hist=0",
          'device="cpu"']
# The recipe items: off in "demo" / "half" (issue 11's network), as base.toml has them in the
# "-recipe" settings (spectral norm in G and E, edge discriminator, pixel contrastive loss).
RECIPE_OFF = ["model.spectral_norm_g=false", "loss.edge_gan=0", "loss.contrastive=0"]
RECIPE_ON = ["model.spectral_norm_g=true", "loss.edge_gan=1.0", "loss.contrastive=1.0"]
HALF = ["data.height=192", "data.width=256", "train.batch_size=1", "model.ngf=32", "model.ndf=32",
        "model.nef=32", "model.edge_nc=32", "model.spade_hidden=64", "model.z_dim=128",
        "model.encoder_size=128"]
TINY = ["data.height=32", "data.width=48", "train.batch_size=2", "model.num_up=3", "model.ngf=8",
        "model.max_mult=4", "model.spade_hidden=8", "model.z_dim=8", "model.nef=4",
        "model.encoder_size=16", "model.ndf=8", "model.d_layers=2", "model.edge_nc=4"]
SETTINGS = {"demo": ("demo.toml", RECIPE_OFF), "half": ("base.toml", HALF + RECIPE_OFF),
            "tiny": ("demo.toml", TINY + RECIPE_OFF), "demo-recipe": ("demo.toml", RECIPE_ON),
            "half-recipe": ("base.toml", HALF + RECIPE_ON), "tiny-recipe": ("demo.toml", TINY + RECIPE_ON)}


# The model/loss keys tools/torch_mirror.py implements.
MIRRORED_MODEL_KEYS = {
    "kind", "num_classes", "ngf", "num_up", "max_mult", "spade_hidden", "param_free_norm", "use_vae",
    "z_dim", "nef", "encoder_size", "edge_attention", "edge_nc", "semantic_module", "class_hints",
    "hint_dropout", "hint_min_pixels", "hint_skip", "ndf", "d_layers", "d_scales", "spectral_norm",
    "init", "init_gain", "style_hist_bins", "spectral_norm_g"}  # init: weights copied; hist bins: unused
MIRRORED_LOSS_KEYS = {"gan", "feat", "kld", "edge", "vgg", "refined", "vgg_weights", "edge_gan",
                      "contrastive", "contrastive_temperature", "contrastive_pixels", "contrastive_scales",
                      "colour_lowpass_factor", "colour_hist_bins"}  # the last two: their terms off


def unmirrored_keys(cfg) -> list[str]:
    """'section.key' of every model/loss key neither mirrored nor pinned here (one the model
    gained since): the Jittor network might then not be the one mirrored."""
    pinned = {p.split("=")[0] for p in PINNED}
    return [f"{section}.{f.name}"
            for section, known in (("model", MIRRORED_MODEL_KEYS), ("loss", MIRRORED_LOSS_KEYS))
            for f in dataclasses.fields(getattr(cfg, section))
            if f.name not in known and f"{section}.{f.name}" not in pinned]


def setting_config(name: str, threads: int):
    """The config of a setting at `threads` CPU threads; refuses a key the mirror lacks."""
    path, extra = SETTINGS[name]
    cfg = load_config(CONFIG_DIR / path, [*PINNED, *extra, f"threads={threads}"])
    extra_keys = unmirrored_keys(cfg)
    if extra_keys:
        raise SystemExit(f"tools/step_bench.py: the model has keys the PyTorch mirror does not know:"
                         f" {', '.join(extra_keys)}; pin them (off) in PINNED or mirror them in"
                         " tools/torch_mirror.py")
    return cfg


# ============================================================================ worker process
def worker(framework: str, name: str, threads: int, previous: list[str]) -> None:
    """Build one side and answer the parent's commands (one json line each on stdin)."""
    from pipeline.bench import _synthetic

    cfg = setting_config(name, threads)
    batch = _synthetic(cfg.train.batch_size, cfg.data.height, cfg.data.width)
    t0 = time.perf_counter()
    if framework == "jittor":
        from .step_bench_jittor import JittorSide as Side
    else:
        from .step_bench_torch import TorchSide as Side
    side = Side(cfg, batch, previous) if previous else Side(cfg, batch)
    reply = {"state": side.state_shapes(), "build_s": time.perf_counter() - t0,
             "jittor_loaded": "jittor" in sys.modules, "torch_loaded": "torch" in sys.modules}
    print(TAG + json.dumps(reply), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            return
        t0 = time.perf_counter()
        if cmd["cmd"] == "step":
            losses = side.step()
            reply = {"s": time.perf_counter() - t0, "losses": losses}
        elif cmd["cmd"] == "parts":
            from .step_bench_parts import run_parts

            reply = {"result": run_parts(side, *cmd["args"])}
        else:  # dump / check / profile / conv_flops / conv_rate
            reply = {"result": getattr(side, cmd["cmd"])(*cmd.get("args", []))}
        print(TAG + json.dumps(reply), flush=True)


class Worker:
    """A worker process of one framework, its replies read line by line."""

    def __init__(self, framework: str, name: str, threads: int, previous: str = ""):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what pipeline.jt_env gives Jittor: both alike
        self.framework = framework
        self.label = framework + ("_previous" if previous else "")  # its key in the results
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.step_bench", "--worker", framework, "--which", name,
             "--threads", str(threads), "--jittor-previous", previous], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)

    def read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG):])
        self.log.seek(0)
        tail = "\n".join(self.log.read().splitlines()[-20:])
        raise RuntimeError(f"the {self.framework} worker ended (exit {self.proc.wait()}):\n{tail}")

    def send(self, cmd: str, *args) -> None:
        self.proc.stdin.write(json.dumps({"cmd": cmd, "args": list(args)}) + "\n")
        self.proc.stdin.flush()

    def ask(self, cmd: str, *args) -> dict:
        self.send(cmd, *args)
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ============================================================================ one setting
def compare_state(jittor: dict, torch: dict) -> int:
    """Raise unless both state dicts have the same keys and shapes; return the count of trained
    numbers (generator + encoder + discriminator, spectral-norm vectors left out)."""
    diff = sorted(set(jittor) ^ set(torch)) + sorted(k for k in jittor if k in torch and jittor[k] != torch[k])
    if diff:
        raise RuntimeError(f"tools/torch_mirror.py differs from pipeline/model at {len(diff)} entries,"
                           f" e.g. {diff[:6]}")
    return sum(math.prod(shape) for k, shape in jittor.items()
               if not k.startswith("ema_") and not k.endswith("_u"))


def lockstep(workers: list, steps: int, max_rounds: int, max_seconds: float) -> dict:
    """Rounds of one step of each worker (the order rotating every round) until all are steady,
    then `steps` more; the medians (by worker label) and the warm-up record."""
    times: dict[str, list[float]] = {w.label: [] for w in workers}
    steady, start, rounds = False, None, 0

    def one_round():
        k = rounds % len(workers)
        for w in workers[k:] + workers[:k]:
            times[w.label].append(w.ask("step")["s"])

    while rounds < max_rounds:
        one_round()
        rounds += 1
        start = start or time.perf_counter()  # the first round (kernel compilation) is not counted
        steady = rounds >= WARMUP_WINDOW and all(
            spread(v[-WARMUP_WINDOW:]) <= WARMUP_TOLERANCE for v in times.values())
        if steady or time.perf_counter() - start >= max_seconds:
            break
    warm = rounds
    for _ in range(steps):
        one_round()
        rounds += 1
    # the steady window and the timed rounds; never the first round (compilation) if others exist
    first = max(min(1, rounds - 1), rounds - WARMUP_WINDOW - steps)
    timed = {k: v[first:] for k, v in times.items()}
    # each round's steps ran back to back under the same machine load: the median of the
    # per-round ratios to PyTorch is steadier than the ratio of the medians
    paired = {f"{k}_paired_ratio": round(statistics.median(a / b for a, b in zip(v, timed["torch"])), 3)
              for k, v in timed.items() if k != "torch" and "torch" in timed}
    return {"warmup_rounds": warm, "steady": steady, "timed_from_round": first, **paired,
            **{f"{k}_s": round(statistics.median(v), 4) for k, v in timed.items()},
            **{f"{k}_spread": round(spread(v), 3) for k, v in timed.items()},
            **{f"{k}_all_s": [round(x, 3) for x in v] for k, v in times.items()}}


def bench_setting(name: str, threads: int, steps: int, check: bool, profile: int, parts: int = 0,
                  max_rounds: int = WARMUP_MAX_STEPS, max_seconds: float = 2 * WARMUP_MAX_SECONDS,
                  previous: str = "") -> dict:
    """Both workers of one setting at `threads`: mirror checks, conv FLOPs and rate, the
    interleaved timing (and --profile rows); one result row."""
    cfg = setting_config(name, threads)
    load0 = os.getloadavg()[0]
    j, t = Worker("jittor", name, threads), Worker("torch", name, threads)
    jp = Worker("jittor", name, threads, previous) if previous else None
    try:
        jr, tr = j.read(), t.read()
        if jp is not None:
            compare_state(jp.read()["state"], tr["state"])
        if jr["torch_loaded"] or tr["jittor_loaded"]:
            raise RuntimeError("a worker imported the other framework")
        params = compare_state(jr["state"], tr["state"])
        row = {"setting": name, "size": f"{cfg.data.width}x{cfg.data.height}",
               "batch": cfg.train.batch_size, "threads": threads, "params": params,
               "jittor_previous": previous,
               "build_s": {"jittor": round(jr["build_s"], 2), "torch": round(tr["build_s"], 2)}}
        if check:
            with tempfile.TemporaryDirectory(prefix="step-bench-") as tmp:
                j.ask("dump", f"{tmp}/jittor.npz")
                diffs = t.ask("check", f"{tmp}/jittor.npz")["result"]
            row["mirror_max_rel_diff"] = max(diffs.values())
            bad = {k: v for k, v in diffs.items() if v > MIRROR_TOLERANCE}
            if bad:
                raise RuntimeError(f"tools/torch_mirror.py computes other outputs than pipeline/model"
                                   f" on the same weights (max |diff| / max |value|): {bad}")
        flops = t.ask("conv_flops")["result"]["step"]
        rate = t.ask("conv_rate")["result"]
        if jp is not None:  # its outputs on the same weights: the project's ops change no value
            with tempfile.TemporaryDirectory(prefix="step-bench-") as tmp:
                jp.ask("dump", f"{tmp}/jittor.npz")
                row["previous_max_rel_diff"] = max(t.ask("check", f"{tmp}/jittor.npz")["result"].values())
        row.update(lockstep([j, t] + ([jp] if jp else []), steps, max_rounds, max_seconds))
        if jp is not None:
            row.update({"previous_ratio": row["jittor_previous_paired_ratio"],
                        "previous_speedup": round(statistics.median(
                            b / a for a, b in zip(row["jittor_all_s"][row["timed_from_round"]:],
                                                  row["jittor_previous_all_s"][row["timed_from_round"]:])), 3)})
        rate = max(rate, t.ask("conv_rate")["result"])
        row.update({"ratio": row["jittor_paired_ratio"],
                    "ratio_of_medians": round(row["jittor_s"] / row["torch_s"], 3),
                    "conv_gflop_step": round(flops / 1e9, 3),
                    "machine_conv_gflops": round(rate / 1e9, 1),
                    "jittor_conv_share": round(flops / row["jittor_s"] / rate, 3),
                    "torch_conv_share": round(flops / row["torch_s"] / rate, 3),
                    "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2)})
        if profile:
            row["profile"] = {w.framework: summarize_profile(w.ask("profile", profile)["result"])
                              for w in (j, t)}
        if parts:
            row["parts"] = time_parts(j, t, parts)
        return row
    finally:
        for w in (j, t, jp):
            if w is not None:
                w.close()


def time_parts(j: Worker, t: Worker, reps: int, rounds: int = 3) -> dict:
    """tools/step_bench_parts.py on both sides, `rounds` alternating rounds of `reps` calls each:
    {part: {"jittor": s, "torch": s}} (medians over the rounds)."""
    runs: dict[str, list[dict]] = {"jittor": [], "torch": []}
    for i in range(rounds):
        for w in ((j, t) if i % 2 == 0 else (t, j)):
            runs[w.framework].append(w.ask("parts", reps)["result"])
    return {part: {fw: round(statistics.median(r[part] for r in rs), 4) for fw, rs in runs.items()}
            for part in runs["jittor"][0]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--which", default="demo,half",
                        help="comma list of: demo, half, tiny, and each with -recipe (base.toml's ECGAN recipe on)")
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts (each framework alike)")
    parser.add_argument("--steps", type=int, default=6, help="timed rounds after the steady window")
    parser.add_argument("--max-rounds", type=int, default=WARMUP_MAX_STEPS, help="warm-up rounds at most")
    parser.add_argument("--profile", type=int, default=0, help="also profile N steps of each side")
    parser.add_argument("--parts", type=int, default=0,
                        help="also time the step's parts alone (tools/step_bench_parts.py), N calls each")
    parser.add_argument("--jittor-previous", default="",
                        help="comma list (upsample, fused, conv, winograd): also time, in the same lockstep,"
                             " a Jittor worker with jittor.nn's own (composed) ops in place of"
                             " pipeline/model/ops.py's, or (winograd) its direct convolution algorithm")
    parser.add_argument("--no-check", action="store_true", help="skip the mirror's output comparison")
    parser.add_argument("--json", default="", help="also write the rows to this file")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads = [int(x) for x in args.threads.split(",")]
    if args.worker:
        return worker(args.worker, args.which, threads[0],
                      [p for p in args.jittor_previous.split(",") if p])
    names = args.which.split(",")
    for name in names:
        if name not in SETTINGS:
            parser.error(f"--which {name!r}: use {', '.join(SETTINGS)}")
    print(f"jittor vs pytorch, same GAN step interleaved; load average {os.getloadavg()[0]:.2f}"
          f" on {os.cpu_count()} cores", flush=True)
    if args.jittor_previous:
        print(f"a third worker runs Jittor with what pipeline/model/ops.py replaced (jittor.nn's ops, the direct"
              f" conv algorithm):"
              f" {args.jittor_previous}", flush=True)
    print("conv %peak: the direct algorithm's conv FLOPs per second over the machine's measured conv rate;"
          " Jittor's 3x3 layers use Winograd (pipeline/model/ops.py), fewer multiplies, so its share"
          " can pass 100%", flush=True)
    print(HEADER, flush=True)
    rows = []
    for name in names:
        for n in threads:
            rows.append(bench_setting(name, n, args.steps, not args.no_check, args.profile,
                                      args.parts, max_rounds=args.max_rounds,
                                      previous=args.jittor_previous))
            print(table_line(rows[-1]), flush=True)
            print_profile(rows[-1])
            print_parts(rows[-1])
    for line in verdicts(rows):
        print(line, flush=True)
    if args.json:
        from pipeline.core.artifacts import atomic_write_json

        atomic_write_json(args.json, rows)


if __name__ == "__main__":
    main()

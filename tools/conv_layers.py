"""Each 3x3 stride-1 convolution layer of one training step, each pass timed with the direct and
with the Winograd algorithm: the measurement behind pipeline/model/ops.py's `winograd_passes`.

    python -m tools.conv_layers [--which demo|half|tiny] [--threads N] [--calls N] [--json FILE]

Runs one training step of the setting (tools/step_bench.py's configs, synthetic batch) to record
the distinct convolutions the networks call (input shape, weight shape, stride, padding, how many
calls), then times each 3x3 stride-1 layer's forward, input-gradient and weight-gradient pass
through the project's op (pipeline/model/csrc/landscape_conv_op.cc, with its layout reorders),
direct and Winograd, the mean of --calls calls after one. Prints one line per layer (times in
ms, and which passes the rule gives Winograd: W) and the step's totals over those layers (each
layer times its calls): all direct, all Winograd, the rule, and the best of the two per pass.
On a CPU without AVX-512, oneDNN has no Winograd kernel and both columns are the direct one.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path


def record_layers(side, ops) -> dict:
    """{(x shape, w shape, (stride h, stride w, pad h, pad w)): calls} of one training step."""
    seen = collections.Counter()
    real = ops._Conv.execute

    def recording(self, x, w):
        seen[(tuple(x.shape), tuple(w.shape), tuple(self.args))] += 1
        return real(self, x, w)

    ops._Conv.execute = recording
    try:
        side.step()
    finally:
        ops._Conv.execute = real
    return dict(seen)


def time_passes(jt, op, xs, ws, args, winograd: int, calls: int) -> list[float]:
    """ms per call of the forward, input-gradient and weight-gradient pass of one layer."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = jt.array(rng.random(xs, dtype=np.float32))
    w = jt.array(rng.random(ws, dtype=np.float32))
    y = op(x, w, 0, 0, 0, *args, 0)
    dy = jt.array(rng.random(tuple(y.shape), dtype=np.float32))
    passes = [lambda: op(x, w, 0, 0, 0, *args, winograd),
              lambda: op(w, dy, 1, xs[2], xs[3], *args, winograd),
              lambda: op(x, dy, 2, ws[2], ws[3], *args, winograd)]
    out = []
    for run in passes:
        run().sync()
        t = time.perf_counter()
        for _ in range(calls):
            run().sync()
        out.append((time.perf_counter() - t) / calls * 1e3)
    return out


def measure(which: str, threads: int, calls: int) -> dict:
    from pipeline.jt_env import setup_jittor

    jt = setup_jittor("cpu", threads)
    from pipeline.bench import _synthetic
    from pipeline.model import ops
    from tools.step_bench import setting_config
    from tools.step_bench_jittor import JittorSide

    if ops._conv_ops() is None:
        raise SystemExit("tools/conv_layers.py: the project's convolution op did not compile here")
    cfg = setting_config(which, threads)
    side = JittorSide(cfg, _synthetic(cfg.train.batch_size, cfg.data.height, cfg.data.width))
    layers = record_layers(side, ops)
    op = ops._conv_ops().landscape_conv
    rows, totals = [], dict.fromkeys(("direct", "winograd", "rule", "best"), 0.0)
    for (xs, ws, args), n in sorted(layers.items()):
        if ws[2:] != (3, 3) or args[:2] != (1, 1):
            continue
        direct = time_passes(jt, op, xs, ws, args, 0, calls)
        wino = time_passes(jt, op, xs, ws, args, 1, calls)
        rule = ops.winograd_passes(xs, ws, args[:2], args[2:])
        totals["direct"] += n * sum(direct)
        totals["winograd"] += n * sum(wino)
        totals["rule"] += n * sum(wino[i] if rule[i] else direct[i] for i in range(3))
        totals["best"] += n * sum(min(a, b) for a, b in zip(direct, wino))
        rows.append({"x": list(xs), "w": list(ws), "args": list(args), "calls": n, "direct_ms": direct, "winograd_ms": wino,
                     "rule": list(rule)})
    return {"setting": which, "threads": threads, "layers": rows,
            "totals_ms": {k: round(v, 2) for k, v in totals.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--which", default="half", choices=("demo", "half", "tiny"),
                        help="tools/step_bench.py's setting")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per pass, after one")
    parser.add_argument("--json", default="", help="also write the result to this file")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.calls < 1:
        parser.error("--threads and --calls: give 1 or more")
    if args.json and Path(args.json).is_dir():
        parser.error(f"--json {args.json}: a folder; give a file path (it is written whole, then renamed)")
    result = measure(args.which, args.threads, args.calls)
    print(f"3x3 stride-1 layers of one {args.which} step, {args.threads} thread(s);"
          " ms per call: forward / input gradient / weight gradient")
    for r in result["layers"]:
        fmt = " / ".join
        print(f"  x {tuple(r['x'])} w {tuple(r['w'])} x{r['calls']}: direct"
              f" {fmt(f'{v:.2f}' for v in r['direct_ms'])}, winograd {fmt(f'{v:.2f}' for v in r['winograd_ms'])}"
              f"  rule {''.join('W' if c else '.' for c in r['rule'])}")
    t = result["totals_ms"]
    print(f"step total over these layers: direct {t['direct']:.1f} ms, all winograd {t['winograd']:.1f},"
          f" the rule (ops.winograd_passes) {t['rule']:.1f}, best per pass {t['best']:.1f}")
    if args.json:
        from pipeline.core.artifacts import atomic_write_json

        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

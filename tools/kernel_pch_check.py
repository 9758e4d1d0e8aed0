"""Jittor's kernels compiled as shipped, with the precompiled header, and with it and the shell
compile driver: the same machine code? how fast?

    python -m tools.kernel_pch_check [--setting demo|tiny] [--device cpu] [--json FILE]

Runs the setting three times, each in a fresh process with an empty kernel folder (as
`pipeline.bench`'s cold start does): with `LANDSCAPE_KERNEL_PCH=0` (Jittor as shipped), with the
header alone (`LANDSCAPE_KERNEL_DIRECT=0`: every kernel through Jittor's asm_tuner), and as the
project runs (the header, and pipeline/jt_pch.py's compile driver in place of asm_tuner where a
kernel asks for no assembly rewrite). `demo` is one training step of the demo model (~300 kernels); `tiny` a
small graph with a convolution, element-wise ops, reductions and their gradients (what the test
runs). Then every kernel library of the second and third runs is compared with the first's on
its code: the `.text` section's bytes (objcopy), which do not depend on debug information or on
file paths. Prints the kernel counts, the first-run seconds of each and how many kernels are
byte-identical; exits 1 when any differs, or when the runs' outputs differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TAG = "PCH-CHECK "


def _tiny(jt):
    """A small graph touching the kernel kinds a training step compiles; returns its outputs."""
    import numpy as np

    jt.set_global_seed(0)
    rng = np.random.default_rng(0)
    x = jt.array(rng.standard_normal((2, 3, 12, 16)).astype("float32"))
    conv = jt.nn.Conv2d(3, 4, 3, padding=1)
    y = jt.nn.leaky_relu(conv(x), 0.2)
    m = y.mean(dims=(2, 3), keepdims=True)
    v = ((y - m) ** 2).mean(dims=(2, 3), keepdims=True)
    z = (y - m) / jt.sqrt(v + 1e-5)
    up = z.reindex([2, 4, 24, 32], ["i0", "i1", "i2/2", "i3/2"])
    loss = (up.tanh() * 0.7 + up.sigmoid()).sum() + jt.argsort(z.reshape(-1))[0].float32().sum()
    grads = jt.grad(loss, [x, conv.weight])
    # a broadcast with no reduction: Jittor's tuner asks for non-temporal stores in such kernels
    # (`//@begin replace` in the source), which asm_tuner writes into the assembly
    rows = jt.array(rng.standard_normal((8, 64)).astype("float32"))
    scaled = rows * jt.array(rng.standard_normal((8, 1)).astype("float32"))
    return [loss.numpy(), *[g.numpy() for g in grads], scaled.numpy()]


def child(setting: str, device: str, keep: str) -> None:
    """In a fresh process: run `setting` with an empty kernel folder kept at `keep`; print TAG +
    json {kernels, seconds, digest of the outputs}."""
    from pipeline.bench import _build, _fresh_kernel_folder, _setting, count_kernels
    from pipeline.jt_env import setup_jittor

    if setting == "tiny":
        jt = setup_jittor(device, 1)
    else:
        cfg, jt = _setting(setting, device)
    root = Path(keep)
    jit = _fresh_kernel_folder(jt, root)
    t0 = time.perf_counter()
    if setting == "tiny":
        outs = _tiny(jt)
    else:
        jt.set_global_seed(0)
        trainer, batch = _build(cfg, jt)
        losses = trainer.train_step(batch, 1.0)
        outs = [float(v) for v in losses.values()]
    seconds = time.perf_counter() - t0
    import numpy as np

    digest = hashlib.sha256(b"".join(np.asarray(o, dtype="float64").tobytes() for o in outs))
    print(TAG + json.dumps({"kernels": count_kernels(jit), "seconds": round(seconds, 2),
                            "reused": reused_assembly(jt.flags.cc_path, jit),
                            "digest": digest.hexdigest()}), flush=True)


def reused_assembly(cc_path: str, jit: Path) -> int:
    """Kernels in `jit` whose assembly the header's wrapper reused from one of identical source
    (pipeline/jt_pch.py): the lines of its reused.log naming that folder."""
    wrapper = Path(cc_path)
    if not wrapper.name.endswith("-cc"):
        return 0
    log = wrapper.with_name(wrapper.name[:-len("-cc")] + ".asm") / "reused.log"
    if not log.exists():
        return 0
    return sum(1 for line in log.read_text().splitlines() if line.startswith(f"{jit}/"))


def run_child(setting: str, device: str, keep: Path, pch: bool, direct: bool = True) -> dict:
    env = dict(os.environ, LANDSCAPE_KERNEL_PCH="1" if pch else "0",
               LANDSCAPE_KERNEL_DIRECT="1" if direct else "0")
    cmd = [sys.executable, "-m", "tools.kernel_pch_check", "--child", setting, "--device", device,
           "--keep", str(keep)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(TAG)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise RuntimeError(f"{setting} with pch={pch}, direct={direct} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(TAG):])


def text_section(lib: Path, tmp: Path) -> bytes:
    """The bytes of a shared library's .text section."""
    out = tmp / (lib.name + ".text")
    subprocess.run(["objcopy", "-O", "binary", "--only-section=.text", str(lib), str(out)],
                   check=True, capture_output=True)
    return out.read_bytes()


def compare(a: Path, b: Path, tmp: Path) -> tuple[int, list[str]]:
    """(kernels compiled in both folders, names whose .text differs)."""
    common = sorted({p.name for p in a.glob("*.so")} & {p.name for p in b.glob("*.so")})
    differ = [n for n in common if text_section(a / n, tmp) != text_section(b / n, tmp)]
    return len(common), differ


def refuse_keep(keep: str, writes: str) -> None:
    """`--keep` must name a new or empty folder (the check writes `writes` into it): a file or
    a folder holding anything is refused, untouched (FileExistsError)."""
    if keep and Path(keep).exists() and not Path(keep).is_dir():
        raise FileExistsError(f"--keep {keep}: not a folder; give a new or empty folder (the check"
                              f" writes {writes} into it)")
    if keep and Path(keep).exists() and any(Path(keep).iterdir()):
        raise FileExistsError(f"--keep {keep}: the folder is not empty; give a new or empty one"
                              f" (the check writes {writes} into it)")


def check(setting: str, device: str = "cpu", keep: str = "") -> dict:
    """The three runs and the comparisons; the result as a dict (see the module doc). `keep`:
    leave the kernel folders there (without/, with___/, direct_/) instead of removing them."""
    refuse_keep(keep, "without/, with___/, direct_/ and tmp/")
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="landscape-pch-check-"))
    try:
        # folder names of one length: Jittor's log macros (utils/log.h) point into __FILE__
        # past its folder, an offset baked into the code of kernels that log or assert
        off = run_child(setting, device, root / "without", pch=False)
        on = run_child(setting, device, root / "with___", pch=True, direct=False)
        fast = run_child(setting, device, root / "direct_", pch=True, direct=True)
        (root / "tmp").mkdir()
        common, differ = compare(root / "without" / "jit", root / "with___" / "jit", root / "tmp")
        common_d, differ_d = compare(root / "without" / "jit", root / "direct_" / "jit", root / "tmp")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return {"setting": setting, "kernels_without": off["kernels"], "kernels_with": on["kernels"],
            "seconds_without": off["seconds"], "seconds_with": on["seconds"], "reused_with": on["reused"],
            "compared": common, "identical": common - len(differ), "differ": differ,
            "outputs_equal": off["digest"] == on["digest"],
            "kernels_direct": fast["kernels"], "seconds_direct": fast["seconds"],
            "reused_direct": fast["reused"], "compared_direct": common_d,
            "identical_direct": common_d - len(differ_d), "differ_direct": differ_d,
            "outputs_equal_direct": off["digest"] == fast["digest"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--setting", default="demo", choices=["demo", "tiny"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default="")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    p.add_argument("--keep", default="", help="keep the two kernel folders in this new folder")
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.device, args.keep)
        return 0
    try:
        r = check(args.setting, args.device, args.keep)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"| {r['setting']}: first run, empty kernel folder | kernels | seconds |")
    print("| --- | --- | --- |")
    print(f"| Jittor as shipped | {r['kernels_without']} | {r['seconds_without']:.1f} |")
    print(f"| precompiled header, every kernel through asm_tuner | {r['kernels_with']}"
          f" ({r['reused_with']} of identical source, assembly reused) | {r['seconds_with']:.1f} |")
    print(f"| precompiled header and the compile driver (as the project runs) | {r['kernels_direct']}"
          f" ({r['reused_direct']} reused) | {r['seconds_direct']:.1f} |")
    for tag, suffix in (("header", ""), ("header + driver", "_direct")):
        print(f"{tag} vs as shipped: kernels in both {r['compared' + suffix]}; identical .text:"
              f" {r['identical' + suffix]}; outputs equal: {r['outputs_equal' + suffix]}")
        for name in r["differ" + suffix]:
            print(f"  DIFFERS: {name}")
    if args.json:
        from pipeline.core.artifacts import atomic_write_json

        atomic_write_json(args.json, r)
    ok = all(not r["differ" + x] and r["outputs_equal" + x] and r["compared" + x] for x in ("", "_direct"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

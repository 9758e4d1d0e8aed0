"""Jittor's core compiled as shipped and with the project's precompiled header and build pool
(pipeline/jt_pch.py, `patch_core_build`): how long each first import takes, and whether the two
cores compute the same.

    python -m tools.core_pch_check [--keep DIR] [--json FILE]

Runs two fresh processes, each with its own empty JITTOR_HOME (so each compiles Jittor's core,
its oneDNN and MPI ops and the kernels of a small graph from nothing): with
`LANDSCAPE_CORE_PCH=0` (Jittor's own build: its pool of one process per 3 GiB of memory, no
header) and as the project runs. Each times `setup_jittor("cpu")` (the core's build is most of
it), then runs `tools.kernel_pch_check`'s small graph (convolution, element-wise ops,
reductions, reindex, argsort, gradients). Prints the seconds of both, how many core objects
were compiled with the header, how many have the same `.text` bytes both ways (for information:
an object that includes more headers may inline or lay out its code differently) and whether
the outputs are equal; exits 1 when they differ or the header was not used. ~6 minutes on 2
cores.
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

from .kernel_pch_check import refuse_keep

TAG = "CORE-PCH-CHECK "


def child(home: str) -> None:
    """In a fresh process with JITTOR_HOME=home: time the first import, run the small graph;
    print TAG + json {seconds, objects, with_header, digest}."""
    os.environ["JITTOR_HOME"] = home
    from pipeline.jt_env import setup_jittor
    from tools.kernel_pch_check import _tiny

    t0 = time.perf_counter()
    jt = setup_jittor("cpu", 1)
    seconds = time.perf_counter() - t0
    import numpy as np

    outs = _tiny(jt)
    digest = hashlib.sha256(b"".join(np.asarray(o, dtype="float64").tobytes() for o in outs))
    keys = list(core_objects(Path(jt.flags.cache_path)).glob("*.o.key"))
    with_header = sum(1 for k in keys if "/landscape_pch/core_" in k.read_text().split("\n", 1)[0])
    print(TAG + json.dumps({"seconds": round(seconds, 1), "objects": len(keys),
                            "with_header": with_header, "digest": digest.hexdigest(),
                            "cache_path": jt.flags.cache_path}), flush=True)


def core_objects(cache_path: Path) -> Path:
    return cache_path / "obj_files"


def run_child(home: Path, pch: bool) -> dict:
    env = dict(os.environ, LANDSCAPE_CORE_PCH="1" if pch else "0")
    proc = subprocess.run([sys.executable, "-m", "tools.core_pch_check", "--child", str(home)],
                          capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(TAG)]
    if proc.returncode != 0 or not lines:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise RuntimeError(f"the import with LANDSCAPE_CORE_PCH={int(pch)} failed"
                           f" (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(TAG):])


def same_text(a: Path, b: Path, tmp: Path) -> tuple[int, int]:
    """(objects in both folders, those whose .text bytes are equal)."""
    from tools.kernel_pch_check import text_section

    names = sorted({p.name for p in a.glob("*.o")} & {p.name for p in b.glob("*.o")})
    equal = sum(text_section(a / n, tmp) == text_section(b / n, tmp) for n in names)
    return len(names), equal


def check(keep: str = "") -> dict:
    refuse_keep(keep, "shipped/, project/ and tmp/")
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="landscape-core-pch-"))
    try:
        shipped = run_child(root / "shipped", pch=False)
        ours = run_child(root / "project", pch=True)
        (root / "tmp").mkdir()
        compared, equal = same_text(core_objects(Path(shipped["cache_path"])),
                                    core_objects(Path(ours["cache_path"])), root / "tmp")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return {"seconds_shipped": shipped["seconds"], "seconds_project": ours["seconds"],
            "objects_shipped": shipped["objects"], "objects_project": ours["objects"],
            "with_header_shipped": shipped["with_header"], "with_header": ours["with_header"],
            "compared": compared, "same_text": equal,
            "outputs_equal": shipped["digest"] == ours["digest"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default="")
    p.add_argument("--keep", default="", help="keep both Jittor homes in this new folder")
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    try:
        r = check(args.keep)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("| first import, empty Jittor home | seconds | core objects | with the header |")
    print("| --- | --- | --- | --- |")
    print(f"| Jittor as shipped | {r['seconds_shipped']:.1f} | {r['objects_shipped']} |"
          f" {r['with_header_shipped']} |")
    print(f"| precompiled header, pool of one process per core | {r['seconds_project']:.1f} |"
          f" {r['objects_project']} | {r['with_header']} |")
    print(f"objects with the same .text both ways: {r['same_text']} of {r['compared']};"
          f" outputs of the small graph equal: {r['outputs_equal']}")
    if args.json:
        from pipeline.core.artifacts import atomic_write_json

        atomic_write_json(args.json, r)
    ok = r["outputs_equal"] and r["with_header"] >= r["objects_project"] // 2 and not r["with_header_shipped"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

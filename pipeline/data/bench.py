"""`python -m pipeline.data.bench`: speed of the data stages against their goals.

Prints a table:
- sample-data pairs/s at 512x384 on one core (goal >= 20), the whole command: drawing,
  rendering, JPEG and PNG encoding, writing;
- preprocess time over bare decode time of the same files (goal <= 2x): the bare decode is
  the faster of Pillow and OpenCV decoding every photo and label map once in one process,
  nothing else; preprocess is the full stage (listing, validation, decoding, resizing, Canny,
  class counts, writing) with the configured workers (`data.workers`, 0 = all cores).

Both sides are timed `--repeat` times (default 3), interleaved (decode, decode, preprocess,
decode, ...) so that both see the same background load, and each side's best wall time is
compared. The row also shows the CPU-seconds ratio (the stage's processes, workers included,
over the bare decode's): what the wall ratio becomes with one free core, and the load average.

Options: --pairs N (default 200), --size WxH (default 512x384), --workers N, --repeat N,
--keep DIR.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..core.config import load_config
from .layout import DatasetParts, resolve_workers
from .preprocess import run_preprocess
from .sample import write_sample_dataset


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its waited-for children (workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _pillow(f: Path) -> None:
    with Image.open(f) as im:
        np.asarray(im)


def _opencv(f: Path) -> None:
    cv2.imread(str(f), cv2.IMREAD_UNCHANGED)


DECODERS = (("Pillow", _pillow), ("OpenCV", _opencv))


def _timed(func, *args) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of func(*args)."""
    cpu, start = cpu_seconds(), time.perf_counter()
    func(*args)
    return time.perf_counter() - start, cpu_seconds() - cpu


def _decode_all(files: list[Path], decode) -> None:
    for f in files:
        decode(f)


def preprocess_over_decode(data: Path, out: Path, cfg, repeat: int) -> dict:
    """Time the bare decode of `data`'s training files (both decoders) and the preprocess stage
    into `out`, interleaved, `repeat` times each. Returns {"decode": (wall, cpu), "decoder",
    "preprocess": (wall, cpu)}: each side's best wall time and the CPU seconds of that run."""
    files = sorted((data / "train" / "imgs").iterdir()) + sorted((data / "train" / "labels").iterdir())
    for _, decode in DECODERS:  # warm the file cache: every timed pass reads from memory
        _decode_all(files, decode)
    best = {"decode": (float("inf"), 0.0), "preprocess": (float("inf"), 0.0), "decoder": ""}
    parts = DatasetParts.find(data)
    for _ in range(repeat):
        for name, decode in DECODERS:
            timed = _timed(_decode_all, files, decode)
            if timed[0] < best["decode"][0]:
                best["decode"], best["decoder"] = timed, name
        shutil.rmtree(out, ignore_errors=True)  # a fresh folder: no up-to-date shortcut
        timed = _timed(lambda: run_preprocess(cfg, parts, out, progress=False))
        best["preprocess"] = min(best["preprocess"], timed)
    return best


def run(pairs: int = 200, width: int = 512, height: int = 384, workers: int | None = None,
        keep: str | None = None, repeat: int = 3) -> list[tuple[str, str, str, bool]]:
    """Measure; return rows (what, measured, goal, passed)."""
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="landscape-bench-"))
    try:
        data = tmp / "sample"
        start = time.perf_counter()
        write_sample_dataset(data, pairs, 0, seed=0, height=height, width=width, progress=False)
        rate = pairs / (time.perf_counter() - start)

        sets = [f"data.height={height}", f"data.width={width}"]
        if workers is not None:
            sets.append(f"data.workers={workers}")
        cfg = load_config(None, sets)
        r = preprocess_over_decode(data, tmp / "pre", cfg, repeat)
        (pre, pre_cpu), (dec, dec_cpu) = r["preprocess"], r["decode"]
        n = resolve_workers(cfg.data.workers)
        load = os.getloadavg()[0]
        return [
            (f"sample-data pairs/s at {width}x{height} (1 core)", f"{rate:.1f}", ">= 20", rate >= 20),
            (f"preprocess / bare decode, {pairs} pairs ({n} worker{'s' * (n > 1)}, best of {repeat})",
             f"{pre:.2f}s / {dec:.2f}s ({r['decoder']}) = {pre / dec:.2f}x [cpu {pre_cpu / dec_cpu:.2f}x,"
             f" load {load:.1f}]", "<= 2x", pre / dec <= 2.0),
        ]
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pipeline.data.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--size", default="512x384", help="WxH")
    ap.add_argument("--workers", type=int, default=None,
                    help="data.workers (default: the config's, 0 = all cores)")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each side (best counts)")
    ap.add_argument("--keep", default=None, help="write the data here and keep it")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    w, h = (int(v) for v in args.size.lower().split("x"))
    rows = run(args.pairs, w, h, args.workers, args.keep, args.repeat)
    width = max(len(r[0]) for r in rows)
    mwidth = max(len(r[1]) for r in rows)
    head = f"{'data benchmark':<{width}}  {'measured':<{mwidth}}  {'goal':<6}  result"
    print(f"{head}  (cores: {os.cpu_count()})")
    for what, measured, goal, ok in rows:
        print(f"{what:<{width}}  {measured:<{mwidth}}  {goal:<6}  {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()

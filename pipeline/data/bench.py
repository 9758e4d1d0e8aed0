"""`python -m pipeline.data.bench`: speed of the data stages against their goals.

Prints a table:
- sample-data pairs/s at 512x384 on one core (goal >= 20), the whole command: drawing,
  rendering, JPEG and PNG encoding, writing;
- preprocess time over bare decode time of the same files (goal <= 2x): the bare decode is
  the faster of Pillow and OpenCV decoding every photo and label map once in one process,
  nothing else; preprocess is the
  full stage (listing, validation, decoding, resizing, Canny, writing) with the configured
  workers (`data.workers`, 0 = all cores).

Options: --pairs N (default 200), --size WxH (default 512x384), --workers N, --keep DIR.
"""

from __future__ import annotations

import argparse
import os
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


def bare_decode_seconds(root: Path) -> tuple[float, str]:
    """Seconds to decode every training photo and label map under `root` once, in one process,
    with the faster of Pillow (+ numpy array) and OpenCV: (seconds, which)."""
    files = sorted((root / "train" / "imgs").iterdir()) + sorted((root / "train" / "labels").iterdir())

    def pillow(f):
        with Image.open(f) as im:
            np.asarray(im)

    def opencv(f):
        cv2.imread(str(f), cv2.IMREAD_UNCHANGED)

    best = []
    for name, decode in (("Pillow", pillow), ("OpenCV", opencv)):
        for _ in range(2):  # the first pass also warms the file cache
            start = time.perf_counter()
            for f in files:
                decode(f)
            best.append((time.perf_counter() - start, name))
    return min(best)


def run(pairs: int = 200, width: int = 512, height: int = 384, workers: int | None = None,
        keep: str | None = None) -> list[tuple[str, str, str, bool]]:
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
        decode, decoder = bare_decode_seconds(data)
        start = time.perf_counter()
        run_preprocess(cfg, DatasetParts.find(data), tmp / "pre", progress=False)
        pre = time.perf_counter() - start
        n = resolve_workers(cfg.data.workers)
        return [
            (f"sample-data pairs/s at {width}x{height} (1 core)", f"{rate:.1f}", ">= 20", rate >= 20),
            (f"preprocess / bare decode, {pairs} pairs ({n} worker{'s' * (n > 1)})",
             f"{pre:.2f}s / {decode:.2f}s ({decoder}) = {pre / decode:.2f}x", "<= 2x", pre / decode <= 2.0),
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
    ap.add_argument("--keep", default=None, help="write the data here and keep it")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    rows = run(args.pairs, w, h, args.workers, args.keep)
    width = max(len(r[0]) for r in rows)
    mwidth = max(len(r[1]) for r in rows)
    head = f"{'data benchmark':<{width}}  {'measured':<{mwidth}}  {'goal':<6}  result"
    print(f"{head}  (cores: {os.cpu_count()})")
    for what, measured, goal, ok in rows:
        print(f"{what:<{width}}  {measured:<{mwidth}}  {goal:<6}  {'PASS' if ok else 'MISS'}")


if __name__ == "__main__":
    main()

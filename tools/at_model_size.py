"""A folder of photos as a model of a given size would see and return them: each image resized
to the model's size (area) and back to its own size (cubic, as `landscape generate` upsizes),
then JPEG-encoded at generate's quality. Scored like any folder, it is the ceiling at that
resolution: what a perfect generator at that size could reach under the same scorer.

    python -m tools.at_model_size SRC OUT --size 128x96 [--names FOLDER] [--quality 95]

SRC: the photos (e.g. the sample dataset's train/imgs, or a style-oracle folder); --names:
take only the names of the .jpg files in FOLDER (e.g. a generated val folder, whose names are
the validation maps'). OUT must not exist; it is written under a temporary name and renamed
when complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import cv2

from pipeline.core.imageio import BadFile, encode_jpeg, read_photo


def at_size(rgb, width: int, height: int):
    """`rgb` resized to width x height (area) and back to its own size (cubic)."""
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_CUBIC)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--size", required=True, help="WIDTHxHEIGHT of the model, e.g. 128x96")
    p.add_argument("--names", type=Path, default=None)
    p.add_argument("--quality", type=int, default=95)
    a = p.parse_args(argv)
    try:
        width, height = (int(v) for v in a.size.lower().split("x"))
    except ValueError:
        p.error(f"--size {a.size!r}: give WIDTHxHEIGHT, e.g. 128x96")
    if a.out.exists():
        p.error(f"{a.out} exists; give a new folder")
    names = sorted(x.name for x in (a.names or a.src).glob("*.jpg"))
    if not names:
        p.error(f"no .jpg files in {a.names or a.src}")
    tmp = a.out.with_name(a.out.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True)
    try:
        for name in names:
            try:
                rgb, _ = read_photo(a.src / name)
            except BadFile as exc:
                raise SystemExit(f"error: {a.src / name}: {exc}; replace or remove it") from None
            (tmp / name).write_bytes(encode_jpeg(at_size(rgb, width, height), a.quality))
        tmp.rename(a.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"{len(names)} images at {width}x{height} and back in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

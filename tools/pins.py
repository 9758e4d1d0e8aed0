"""The project's requirement strings, read from pyproject.toml, for the Makefile's set-up.

    python tools/pins.py jittor  Jittor and numpy: installed first of all, so that Jittor's core
                                 compile can start while the rest installs
    python tools/pins.py train   what preprocessing, training and generation need (Jittor,
                                 numpy, Pillow, OpenCV, ...): installed first, so that Jittor's
                                 core compiles and training starts while PyTorch installs
    python tools/pins.py rest    the other dependencies (PyTorch, the scorers' packages, pytest)
    python tools/pins.py all     every dependency

One requirement per line, exactly as pyproject.toml writes it (environment markers included).
Standard library only: it runs before anything is installed, on Python 3.10 too (no tomllib).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# the distributions `landscape sample-data / preprocess / train / generate / package` import
# (tests/test_pins.py runs them with every other one blocked)
TRAIN = ("jittor", "jittor-offline", "numpy", "pillow", "opencv-python", "click", "tqdm",
         "safetensors", "tomli")
JITTOR = ("jittor", "jittor-offline", "numpy")


def dependencies(text: str) -> list[str]:
    """The requirement strings of [project] dependencies = [...]."""
    block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, re.S | re.M)
    if block is None:
        raise ValueError(f"{PYPROJECT}: no [project] dependencies list")
    return re.findall(r'^\s*"([^"]+)"\s*,?\s*$', block.group(1), re.M)


def name(requirement: str) -> str:
    """The distribution name of a requirement string, normalised (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"{PYPROJECT}: cannot read a package name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def select(requirements: list[str], group: str) -> list[str]:
    if group == "all":
        return requirements
    if group == "jittor":
        return [r for r in requirements if name(r) in JITTOR]
    if group not in ("train", "rest"):
        raise ValueError(f"group {group!r}: use jittor, train, rest or all")
    return [r for r in requirements if (name(r) in TRAIN) == (group == "train")]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        chosen = select(dependencies(PYPROJECT.read_text()), argv[0])
    except OSError as exc:
        print(f"tools/pins.py: cannot read {PYPROJECT} ({exc.strerror}); run it from a checkout of "
              "the project", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"tools/pins.py: {exc}", file=sys.stderr)
        return 2
    print("\n".join(chosen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

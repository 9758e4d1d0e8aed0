"""Shared test set-up: Jittor's environment before anything imports it, and common fixtures."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("FIX_TORCH_ERROR", "0")
os.environ.setdefault("cache_name", "default")
os.environ.setdefault("JITTOR_HOME", str(ROOT / ".cache"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if os.system("nvidia-smi -L >/dev/null 2>&1") != 0:
    os.environ["nvcc_path"] = ""


def pytest_collection_modifyitems(config, items):
    """Skip `gpu` tests where no GPU is visible."""
    if os.environ.get("nvcc_path") == "":
        skip = pytest.mark.skip(reason="no GPU visible")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


# ---------------------------------------------------------------------------- shared test data
# Built once per test run with the real stages (`landscape sample-data` + `landscape preprocess`),
# never by writing the preprocessed folder by hand: the folder's format has one owner.
SAMPLE_SIZE = (128, 96)  # (width, height) of the shared sample dataset
SAMPLE_SETS = ["data.height=32", "data.width=48", "data.workers=1", "data.val_count=4"]


def run_cli(*args: str) -> None:
    """Run a `landscape` command in-process; a non-zero exit fails the calling fixture/test."""
    from pipeline.core.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise AssertionError(f"landscape {' '.join(args)} exited {exc.code}") from None


@pytest.fixture(scope="session")
def sample_raw(tmp_path_factory) -> Path:
    """A raw sample dataset in the competition layout: 24 training pairs, 4 test maps, 128x96."""
    out = tmp_path_factory.mktemp("shared") / "sample_raw"
    run_cli("sample-data", "--out", str(out), "--train", "24", "--test", "4", "--seed", "0",
            "--width", str(SAMPLE_SIZE[0]), "--height", str(SAMPLE_SIZE[1]), "--quiet")
    return out


@pytest.fixture(scope="session")
def sample_preprocessed(sample_raw, tmp_path_factory) -> Path:
    """`sample_raw` preprocessed at 48x32 with the demo config (4 validation pairs). Read-only:
    a test that changes it must copy it first."""
    out = tmp_path_factory.mktemp("shared") / "sample_data"
    sets = [a for s in SAMPLE_SETS for a in ("--set", s)]
    run_cli("preprocess", "--data", str(sample_raw), "--out", str(out),
            "--config", str(ROOT / "configs" / "demo.toml"), *sets, "--quiet")
    return out

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

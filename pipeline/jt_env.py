"""Jittor set-up: device choice and the environment Jittor needs before its first import.

Only `pipeline` modules that run models import this; importing it does not import jittor.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .core.errors import ConfigError

# Jittor's compiled kernels live here unless JITTOR_HOME says otherwise (the Makefile sets it too).
DEFAULT_JITTOR_HOME = Path(__file__).resolve().parent.parent / ".cache"


def gpu_available() -> bool:
    """True when an NVIDIA GPU is visible (checked with nvidia-smi, without importing jittor)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; 'cuda' without a GPU is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device {device!r}: use auto, cpu or cuda")
    has_gpu = gpu_available()
    if device == "cuda" and not has_gpu:
        raise ConfigError("--device cuda: no NVIDIA GPU is visible (nvidia-smi); use --device cpu")
    if device == "auto":
        return "cuda" if has_gpu else "cpu"
    return device


def setup_jittor(device: str = "auto"):
    """Import jittor for `device` ('auto', 'cpu' or 'cuda') and return the module.

    Without a GPU, `nvcc_path` is emptied before the import: a stub or broken nvcc on the PATH
    otherwise makes jittor's import fail. `FIX_TORCH_ERROR=0` keeps jittor from importing torch.
    """
    device = resolve_device(device)
    os.environ.setdefault("FIX_TORCH_ERROR", "0")
    os.environ.setdefault("cache_name", "default")
    os.environ.setdefault("JITTOR_HOME", str(DEFAULT_JITTOR_HOME))
    # Jittor's [i ...]/[w ...] lines (compiler, cache) only with `landscape -v`; errors always show
    if os.environ.get("LANDSCAPE_VERBOSE") != "1":
        os.environ.setdefault("log_silent", "1")
    if device == "cpu":
        os.environ["nvcc_path"] = ""
    import jittor as jt

    jt.flags.use_cuda = 1 if device == "cuda" else 0
    return jt

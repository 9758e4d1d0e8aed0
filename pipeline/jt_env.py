"""Jittor set-up: device choice and the environment Jittor needs before its first import.

Only `pipeline` modules that run models import this; importing it does not import jittor.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from .core.atomic import atomic_write_text
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


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity mask (taskset, cgroup cpusets), else all."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def local_ranks() -> int:
    """Processes of this MPI job on this host (1 outside mpirun)."""
    for var in ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_LOCAL_SIZE"):
        if os.environ.get(var, "").isdigit():
            return max(1, int(os.environ[var]))
    return 1


def resolve_threads(threads: int = 0) -> tuple[int, str]:
    """The CPU thread count for Jittor's kernels and why: (n, reason).

    threads > 0: exactly that. 0 (auto): OMP_NUM_THREADS when the user set it, else the cores of
    the affinity mask divided among this host's MPI ranks (at least 1 each).
    """
    if threads > 0:
        return threads, "config threads"
    env = os.environ.get("OMP_NUM_THREADS", "")
    ours = os.environ.get("_LANDSCAPE_OMP_SET") == env and os.environ.get("_LANDSCAPE_OMP_WHY") != "user"
    if env.isdigit() and int(env) > 0 and not ours:
        return int(env), "OMP_NUM_THREADS"
    cores, ranks = available_cores(), local_ranks()
    if ranks > 1:
        return max(1, cores // ranks), f"{cores} cores / {ranks} local MPI ranks"
    return cores, f"{cores} cores available"


def setup_threads(threads: int = 0) -> tuple[int, str]:
    """Set OMP_NUM_THREADS for Jittor (before its import) from `resolve_threads`; return (n, why).
    Once jittor is imported its OpenMP pool is fixed, so later calls only report."""
    n, why = resolve_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["_LANDSCAPE_OMP_SET"] = str(n)  # a later resolve knows whether it was the user's
    os.environ["_LANDSCAPE_OMP_WHY"] = "user" if why == "OMP_NUM_THREADS" else "auto"
    # Waiting threads sleep instead of spinning: with other processes on the cores, spinning
    # OpenMP threads made a 2-thread step 8x slower than a 1-thread one (docs/benchmarks.md).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return n, why


def pin_jittor_home(home: str | os.PathLike) -> None:
    """Record `home` as JITTOR_HOME in Jittor's per-user ~/.cache/jittor/config.json, atomically
    (temp file + rename), before jittor is imported.

    At import, Jittor reads that file and, when its JITTOR_HOME differs from the environment's,
    rewrites it in place (truncate, then write). Two processes importing at once (MPI ranks,
    step_bench's workers, two clones with their own caches) then race: one can read the file
    while the other has just emptied it, and its import fails with a JSONDecodeError. With the
    file already holding our home, Jittor has nothing to write; readers see a whole file, old or
    new. An unreadable file is replaced."""
    home = os.path.abspath(str(home))
    path = Path.home() / ".cache" / "jittor" / "config.json"
    try:
        data = json.loads(path.read_text())
        data = data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        data = {}
    if data.get("JITTOR_HOME") == home:
        return
    data["JITTOR_HOME"] = home
    atomic_write_text(path, json.dumps(data))


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def setup_jittor(device: str = "auto", threads: int | None = None, log=None):
    """Import jittor for `device` ('auto', 'cpu' or 'cuda') and return the module.

    threads: CPU threads (config `threads`; 0 = auto, see `resolve_threads`); None leaves
    OMP_NUM_THREADS as it is. `log` (a print function) gets one line: device and threads.

    Without a GPU, `nvcc_path` is emptied before the import: a stub or broken nvcc on the PATH
    otherwise makes jittor's import fail. With one, `jt_cuda.prepare_cuda` first adapts Jittor
    to CUDA >= 13 and cuDNN >= 9 where they are installed. `FIX_TORCH_ERROR=0` keeps jittor from importing torch.
    """
    device = resolve_device(device)
    if threads is not None:
        n, why = setup_threads(threads)
        if log is not None:
            log(f"jittor: {device}, {n} CPU thread(s) ({why})")
    os.environ.setdefault("FIX_TORCH_ERROR", "0")
    os.environ.setdefault("cache_name", "default")
    os.environ.setdefault("JITTOR_HOME", str(DEFAULT_JITTOR_HOME))
    try:
        pin_jittor_home(os.environ["JITTOR_HOME"])
    except OSError:  # a read-only home: Jittor's import reports its own error, if any
        pass
    # Jittor's [i ...]/[w ...] lines (compiler, cache) only with `landscape -v`; errors always show
    if os.environ.get("LANDSCAPE_VERBOSE") != "1":
        os.environ.setdefault("log_silent", "1")
    if device == "cpu":
        os.environ["nvcc_path"] = ""
    else:
        from .jt_cuda import prepare_cuda

        # cutlass (attention kernels, unused here) is downloaded at Jittor's CUDA import: offline
        # machines fail there
        os.environ.setdefault("use_cutlass", "0")
        prepare_cuda(os.environ["JITTOR_HOME"], log)
    if local_ranks() == 1 and "OMPI_COMM_WORLD_SIZE" not in os.environ:
        # one process needs no NCCL; with mpicc present Jittor would fetch and build it at import
        os.environ.setdefault("use_nccl", "0")
    if device == "cpu":
        from .jt_pch import patch_core_build

        # Jittor's core compiles (first import only) against a precompiled header of its headers
        patch_core_build(log or _to_stderr, available_cores())
    import jittor as jt

    # Jittor's SIGCHLD handler exits this process when ANY child dies of a signal (it watches its
    # own loader workers, which we do not use): a killed helper process must not take us down.
    if hasattr(signal, "SIGCHLD"):
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    jt.flags.use_cuda = 1 if device == "cuda" else 0
    if device == "cpu":
        from .jt_pch import use_kernel_pch

        use_kernel_pch(jt, log)
    return jt

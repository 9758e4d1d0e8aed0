"""Thread resolution: the config, OMP_NUM_THREADS, the affinity mask and MPI ranks decide how
many cores Jittor's kernels use; a command started on 2 cores really uses 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.jt_env import available_cores, resolve_threads


@pytest.fixture
def clean_env(monkeypatch):
    """No thread variables set; whatever a test (or setup_threads) sets is undone afterwards."""
    for var in ("OMP_NUM_THREADS", "_LANDSCAPE_OMP_SET", "_LANDSCAPE_OMP_WHY", "OMP_WAIT_POLICY",
                "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MV2_COMM_WORLD_LOCAL_SIZE"):
        monkeypatch.setenv(var, "")  # records the original value (or its absence) for the undo
        monkeypatch.delenv(var)
    return monkeypatch


def test_config_value_wins(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "7")
    assert resolve_threads(3) == (3, "config threads")


def test_user_omp_num_threads_is_honoured(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "1")
    assert resolve_threads(0) == (1, "OMP_NUM_THREADS")


def test_auto_uses_the_affinity_mask(clean_env):
    n, why = resolve_threads(0)
    assert n == len(os.sched_getaffinity(0)) == available_cores() and "cores" in why


def test_cores_are_divided_among_local_mpi_ranks(clean_env):
    clean_env.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
    n, why = resolve_threads(0)
    assert n == max(1, available_cores() // 2) and "2 local MPI ranks" in why


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or os.cpu_count() < 2, reason="needs 2 cores")
def test_jittor_started_on_two_cores_runs_two_threads(clean_env):
    """Under an affinity of 2 cores the auto setting gives Jittor's OpenMP pool 2 threads."""
    code = ("import os; os.sched_setaffinity(0, {0, 1}); "
            "from pipeline.jt_env import setup_jittor; jt = setup_jittor('cpu', threads=0, log=print); "
            "import ctypes, ctypes.util; "
            "omp = ctypes.CDLL(ctypes.util.find_library('gomp') or 'libgomp.so.1'); "
            "print('omp_max_threads', omp.omp_get_max_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "2 CPU thread(s)" in out.stdout and "omp_max_threads 2" in out.stdout


def test_a_child_killed_by_a_signal_does_not_end_a_jittor_process():
    """Jittor's own SIGCHLD handler quits the whole process when any child dies of a signal;
    setup_jittor removes it (a killed worker or tool must not take a training run down)."""
    code = ("import subprocess, sys, time; from pipeline.jt_env import setup_jittor; setup_jittor('cpu'); "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
            "time.sleep(0.5); p.kill(); p.wait(); time.sleep(0.5); print('survived')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "survived" in out.stdout, out.stderr[-1000:]


def test_a_second_setup_keeps_reporting_the_users_value(clean_env):
    from pipeline.jt_env import setup_threads

    clean_env.setenv("OMP_NUM_THREADS", "1")
    assert setup_threads(0) == (1, "OMP_NUM_THREADS")
    assert setup_threads(0) == (1, "OMP_NUM_THREADS")
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"

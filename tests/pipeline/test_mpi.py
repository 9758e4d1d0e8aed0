"""Training on several processes, the parts that need no mpirun: learning-rate scaling, the
data order carried over a world-size change, the launch checks before Jittor's import, and
Jittor's compiler pool under a signal to the process group (the runs: test_mpi_runs.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import ConfigError
from pipeline.train import run_train
from pipeline.train.data import carry_schedule_step, steps_per_epoch
from pipeline.train.distributed import check_launch, launcher_world_size, lr_world_factor

from .model_testutil import tiny_config

ROOT = Path(__file__).resolve().parents[2]
MPICC = shutil.which("mpicc")


# ---------------------------------------------------------------------------- pure parts
def test_lr_world_factor():
    assert [lr_world_factor("none", 4), lr_world_factor("linear", 4),
            lr_world_factor("sqrt", 4)] == [1.0, 4.0, 2.0]
    assert lr_world_factor("linear", 1) == lr_world_factor("sqrt", 1) == 1.0
    with pytest.raises(ConfigError, match="lr_scaling"):
        lr_world_factor("cubic", 2)
    assert tiny_config().train.lr_scaling == "none"
    with pytest.raises(ConfigError, match="lr_scaling"):
        tiny_config('train.lr_scaling="cubic"')


@pytest.mark.parametrize("count,batch,old,new", [(20, 1, 2, 1), (20, 2, 1, 2), (23, 2, 3, 2),
                                                 (20, 1, 1, 3), (9, 1, 4, 1)])
def test_carry_schedule_step_reads_no_item_twice(count, batch, old, new):
    """Against the items read: a step s of world w reads positions [s*w*B, (s+1)*w*B) of its
    epoch's order; after the carry, nothing read before is read again and fewer than new*B
    items of the epoch are skipped."""
    old_spe, new_spe = steps_per_epoch(count, batch, old), steps_per_epoch(count, batch, new)
    for done in range(0, 3 * old_spe):
        carried = carry_schedule_step(done, count, batch, old, new)
        epoch, offset = divmod(done, old_spe)
        new_epoch, new_offset = divmod(carried, new_spe)
        read_before = offset * old * batch  # positions 0 .. read_before-1 of `epoch`
        if new_epoch == epoch:
            first_new = new_offset * new * batch
            assert read_before <= first_new < read_before + new * batch
        else:
            assert new_epoch == epoch + 1 and new_offset == 0
            assert read_before + new * batch > new_spe * new * batch


def test_launch_checks_before_jittor(monkeypatch):
    """N processes that Jittor cannot join into one job are refused before Jittor's import."""
    env = {"PATH": os.environ.get("PATH", "")}
    assert check_launch(env) == 1 and launcher_world_size(env) == (1, "")
    with pytest.raises(ConfigError, match="OpenMPI's mpirun"):
        check_launch({**env, "PMI_SIZE": "4"})  # MPICH/Intel/Slurm: Jittor would not see it
    with pytest.raises(ConfigError, match="no MPI support.*make mpi-setup"):
        check_launch({**env, "OMPI_COMM_WORLD_SIZE": "2", "mpicc_path": ""})
    with pytest.raises(ConfigError, match="no MPI support"):
        check_launch({**env, "OMPI_COMM_WORLD_SIZE": "2", "use_mpi": "0"})
    if MPICC:
        assert check_launch({**env, "OMPI_COMM_WORLD_SIZE": "2"}) == 2


def test_launched_as_two_but_jittor_alone_is_refused(sample_preprocessed, tmp_path, monkeypatch):
    """mpirun's variables say 2 processes but this Jittor is not in MPI mode (imported without
    them): refused before the run folder is made, saying what to install."""
    import jittor as jt

    assert not jt.in_mpi
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="every copy would train .*as rank 0") as info:
        run_train(tiny_config(), sample_preprocessed, tmp_path / "run", progress=False)
    assert "mpi-setup" in str(info.value) and not (tmp_path / "run").exists()


GROUP_SIGNAL_CHILD = """
import os, signal, sys, time
import jittor_utils as ju
from pipeline.jt_env import setup_jittor
from pipeline.train.stopping import StopFlag, protect_compiler_pool
setup_jittor("cpu")
ju.run_cmds([], "", "")  # a running pool, as Jittor's import starts one with a cold cache
before = {w.pid for w in ju.p._pool}
protect_compiler_pool()
ju.run_cmds([], "", "")  # Jittor's next compilation: a new pool
workers = list(ju.p._pool)
assert workers and not before & {w.pid for w in workers}
deadline = time.monotonic() + 30  # the workers run their initializer as they start
while any(os.getpgid(w.pid) != w.pid for w in workers) and time.monotonic() < deadline:
    time.sleep(0.05)
with StopFlag() as stop:
    os.killpg(0, signal.SIGTERM)  # what mpirun does (a terminal's Ctrl-C: SIGINT, the same way)
    time.sleep(0.5)
print(stop.signum, sum(w.is_alive() for w in workers), len(workers), flush=True)
"""


def test_compiler_pool_outlives_a_signal_to_the_process_group(tmp_path):
    """Ctrl-C and mpirun signal the whole process group: Jittor's kernel-compiler workers must
    outlive it (a killed one hangs the step it compiles for, or the exit), and the process must
    still exit at once afterwards. In a child in its own session, so the signal stays there."""
    done = subprocess.run([sys.executable, "-c", GROUP_SIGNAL_CHILD], cwd=ROOT, timeout=120,
                          capture_output=True, text=True, start_new_session=True)
    assert done.returncode == 0, done.stderr[-2000:]
    signum, alive, total = map(int, done.stdout.split()[-3:])
    assert signum == signal.SIGTERM and alive == total > 0

"""Several training processes (Jittor's MPI mode, `mpirun -np N`): who we are, and agreeing.

Jittor turns MPI on at import when OpenMPI's `mpirun` started the process (it reads
OMPI_COMM_WORLD_SIZE) and it finds `mpicc` to build its MPI ops; its optimisers then average the
gradients over the ranks and its BatchNorm averages the batch statistics. What Jittor does not
do, and this module does: refuse N copies that would each think they are rank 0 (another
launcher, or no `mpicc`), check that every rank starts from the same checkpoint and data, and
let the ranks agree on when to stop.

Importing this module loads no Jittor; `Comm` is given the imported module.
"""

from __future__ import annotations

import math
import os
import shutil

import numpy as np

from ..core.errors import ConfigError

# Per-process variables that launchers set: (variable, launcher). Jittor follows the first only.
LAUNCHER_SIZE_VARS = (
    ("OMPI_COMM_WORLD_SIZE", "OpenMPI's mpirun"),
    ("PMI_SIZE", "an MPICH / Intel MPI / Slurm PMI launcher"),
    ("MV2_COMM_WORLD_SIZE", "MVAPICH's launcher"),
    ("SLURM_STEP_NUM_TASKS", "srun"),
)
INSTALL_HINT = ("install OpenMPI with its compiler wrapper (`make mpi-setup`, or"
                " `sudo apt-get install openmpi-bin libopenmpi-dev`), check that `mpicc --version`"
                " works, and start again with `mpirun -np N ...`")


def launcher_world_size(environ=os.environ) -> tuple[int, str]:
    """(processes the launcher started, which launcher); (1, "") outside any launcher."""
    for var, who in LAUNCHER_SIZE_VARS:
        value = environ.get(var, "")
        if value.isdigit() and int(value) > 1:
            return int(value), f"{who} ({var}={value})"
    return 1, ""


def jittor_finds_mpicc(environ=os.environ) -> bool:
    """Whether Jittor's import will build its MPI ops: it uses $mpicc_path when set (empty: none),
    else `mpicc` on the PATH; use_mpi=0 turns MPI off."""
    if environ.get("use_mpi", "1") != "1":
        return False
    if "mpicc_path" in environ:
        return bool(environ["mpicc_path"]) and os.path.isfile(environ["mpicc_path"])
    return shutil.which("mpicc", path=environ.get("PATH")) is not None


def check_launch(environ=os.environ) -> int:
    """Before Jittor's import: the world size the launcher asked for (1 without one).
    ConfigError when N > 1 processes were started that Jittor cannot join into one job."""
    world, who = launcher_world_size(environ)
    if world == 1:
        return 1
    if "OMPI_COMM_WORLD_SIZE" not in environ:
        raise ConfigError(
            f"started as {world} processes by {who}, but Jittor's MPI mode works with OpenMPI's"
            f" mpirun only: every copy would train alone as rank 0 and write the same files."
            f" Use OpenMPI's mpirun (`mpirun -np {world} ...`), or start one process")
    if not jittor_finds_mpicc(environ):
        raise ConfigError(
            f"started by mpirun as {world} processes, but Jittor has no MPI support here (no"
            f" mpicc to build its MPI ops, or use_mpi=0): every copy would train alone as rank 0"
            f" and write the same files. To train on {world} processes, {INSTALL_HINT};"
            " or start one process without mpirun")
    return world


def rank_and_world(jt, expected_world: int) -> tuple[int, int]:
    """After Jittor's import: (rank, world size), checked against what the launcher asked for."""
    rank, world = (int(jt.rank), int(jt.world_size)) if jt.in_mpi else (0, 1)
    if world != expected_world:
        raise ConfigError(
            f"started as {expected_world} processes, but Jittor sees a world of {world}"
            f" (MPI {'on' if jt.in_mpi else 'off'}): every copy would train as rank 0 and write"
            f" the same files. To train on {expected_world} processes, {INSTALL_HINT};"
            " or start one process without mpirun")
    return rank, world


def lr_world_factor(rule: str, world: int) -> float:
    """Learning-rate factor for `world` processes (effective batch world x train.batch_size):
    "none" 1, "linear" world, "sqrt" sqrt(world). The config's rates are those of one process."""
    factors = {"none": 1.0, "linear": float(world), "sqrt": math.sqrt(world)}
    if rule not in factors:
        raise ConfigError(f"train.lr_scaling = {rule!r}: use one of {', '.join(factors)}")
    return factors[rule]


class Comm:
    """The few collective operations training needs; with one process each is a no-op.
    Every rank must make the same calls in the same order (MPI collectives)."""

    def __init__(self, jt, rank: int = 0, world: int = 1):
        self.jt, self.rank, self.world = jt, rank, world

    def gather(self, values) -> np.ndarray:
        """Every rank's float64 vector `values`, as rows (world, len(values)), on every rank."""
        row = np.asarray(values, dtype=np.float64).reshape(-1)
        if self.world == 1:
            return row[None]
        table = np.zeros((self.world, row.size), np.float64)
        table[self.rank] = row
        return self.jt.array(table).mpi_all_reduce("add").numpy()

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on at least one."""
        return bool(self.gather([1.0 if flag else 0.0]).max() > 0)

    def barrier(self) -> None:
        """Return once every rank got here."""
        self.gather([0.0])

    def check_same_start(self, start_step: int, schedule_step: int, data_hash: str,
                         count: int) -> None:
        """ConfigError on every rank unless all ranks resume from the same step of the same
        data (a run folder or data folder that is not on a filesystem every rank sees)."""
        mine = [start_step, schedule_step, int(data_hash[:12] or "0", 16), count]
        rows = self.gather(mine)
        if self.world > 1 and not (rows == rows[0]).all():
            starts = ", ".join(f"rank {r}: step {int(s)}" for r, s in enumerate(rows[:, 0]))
            raise ConfigError(
                "the processes do not see the same run folder and data (" + starts + "; data"
                f" {'same' if (rows[:, 2] == rows[0, 2]).all() else 'differs'}): --data and"
                " --out must be on a filesystem every machine mounts at the same path")

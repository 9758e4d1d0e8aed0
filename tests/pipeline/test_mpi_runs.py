"""Training on several processes (Jittor's MPI mode), run for real with `mpirun -np 2` on CPU.

Each rank runs `python -m tests.pipeline.test_mpi_runs OUT REPORT_DIR ...` (the worker at the end
of this file): `run_train` with the tiny model, reporting to REPORT_DIR/rank<r>.json the samples
of every step, a checksum of every network and optimiser state, every file it wrote, and how it
ended. The tests compare those reports with each other and with a 1-process run.

Needs OpenMPI (`mpirun`, and `mpicc` for Jittor's MPI ops): skipped with the reason otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.checkpoint import list_checkpoints, read_checkpoint
from pipeline.core.errors import ConfigError
from pipeline.train import TrainData, run_train

from .model_testutil import NO_STYLE, NO_TEXTURE, tiny_config

ROOT = Path(__file__).resolve().parents[2]
MPIRUN, MPICC = shutil.which("mpirun"), shutil.which("mpicc")
needs_mpi = pytest.mark.skipif(
    not (MPIRUN and MPICC),
    reason="OpenMPI is not installed (no mpirun/mpicc on the PATH): `make mpi-setup` installs it")
# Deterministic (no VAE noise, no hint dropout, no contrastive loss's sampled pixels: each rank
# draws those for its own samples, the same distribution but not the numbers one process draws)
# and batch norm, the one normalisation whose statistics cross the ranks: the config of the
# 2 ranks vs 1 process test.
EQUIVALENT = ("model.use_vae=false", *NO_STYLE, *NO_TEXTURE, "model.hint_dropout=0.0", "loss.contrastive=0",
              'model.param_free_norm="batch"', "train.max_steps=3", "train.checkpoint_every=1",
              "train.sample_every=2")
LONG = ("train.epochs=100", "train.max_steps=500", "train.checkpoint_every=1000",
        "train.sample_every=1000", 'train.lr_scaling="linear"')
STOP_BOUND_S = 60  # a killed rank must end the job within this
GRADIENT_ROUNDING = 1e-4  # 30x the gradients' measured disagreement (float32 summation order)


# ---------------------------------------------------------------------------- mpirun helpers
_LIVE: list = []  # jobs started with popen=True: a failing test must not leave its ranks running


@pytest.fixture(autouse=True)
def _end_leftover_jobs():
    yield
    while _LIVE:
        proc = _LIVE.pop()
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # mpirun and its ranks: its own session
            except ProcessLookupError:
                pass
            proc.wait(timeout=60)


def _mpirun(nprocs: int, out: Path, reports: Path, *sets: str, extra=(), env=None,
            popen=False):
    """Start the worker on `nprocs` ranks; the CompletedProcess, or the Popen when `popen`."""
    cmd = [MPIRUN, "-np", str(nprocs), "--oversubscribe", "--bind-to", "none"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")  # CI containers run as root
    cmd += [sys.executable, "-m", "tests.pipeline.test_mpi_runs", str(out), str(reports), *extra]
    for s in sets:
        cmd += ["--set", s]
    # containers often forbid the cross-process memory copies OpenMPI's shared-memory transport
    # uses for larger messages ("Read -1, expected ..."): plain copies work everywhere
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
           **(env or {})}
    reports.mkdir(parents=True, exist_ok=True)
    if popen:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        _LIVE.append(proc)
        return proc
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _reports(folder: Path, world: int = 2) -> list[dict]:
    return [json.loads((folder / f"rank{r}.json").read_text()) for r in range(world)]


def _wait_for_step(folder: Path, rank: int, step: int, proc, timeout: float = 600) -> int:
    """Wait until `rank` has done `step` steps; its pid."""
    deadline = time.monotonic() + timeout
    progress = folder / f"rank{rank}.step"
    while time.monotonic() < deadline:
        if progress.is_file() and int(progress.read_text() or 0) >= step:
            return int((folder / f"rank{rank}.pid").read_text())
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.2)
    raise AssertionError(f"rank {rank} did not reach step {step} in {timeout} s")


def _gone(pid: int, timeout: float = 10.0) -> bool:
    """Whether process `pid` ends (or is a zombie, dead but not yet reaped) within `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.2)
    return False


# ---------------------------------------------------------------------------- 2 ranks vs 1
@pytest.fixture(scope="module")
def two_vs_one(sample_preprocessed, tmp_path_factory):
    """The same 3 steps by 2 ranks at batch 1 (mpirun) and by 1 process at batch 2 (here)."""
    base = tmp_path_factory.mktemp("mpi")
    two = _mpirun(2, base / "two", base / "reports", *EQUIVALENT, "train.batch_size=1",
                  extra=["--data", str(sample_preprocessed)])
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]
    seen: list = []
    original = TrainData.batch

    def record(self, indices, flips, split="train"):
        if split == "train":
            seen.append(sorted(zip(np.asarray(indices).tolist(), np.asarray(flips).tolist())))
        return original(self, indices, flips, split)

    TrainData.batch = record
    try:
        run_train(tiny_config(*EQUIVALENT, "train.batch_size=2"), sample_preprocessed,
                  base / "one", progress=False)
    finally:
        TrainData.batch = original
    return base, _reports(base / "reports"), seen


@needs_mpi
@pytest.mark.slow
def test_ranks_hold_identical_weights(two_vs_one):
    _, (r0, r1), _ = two_vs_one
    assert (r0["rank"], r1["rank"], r0["world"], r1["world"]) == (0, 1, 2, 2)
    assert r0["outcome"] == r1["outcome"] == "finished" and r0["step"] == r1["step"] == 3
    assert {"generator", "discriminator", "ema_generator", "opt_g", "opt_d"} <= set(r0["checksums"])
    assert r0["checksums"] == r1["checksums"]


@needs_mpi
@pytest.mark.slow
def test_two_ranks_see_the_samples_of_one_process_at_twice_the_batch(two_vs_one):
    _, (r0, r1), one_process = two_vs_one
    assert len(one_process) == len(r0["batches"]) == 3
    for step, expected in enumerate(one_process):
        mine = [tuple(x) for x in r0["batches"][step] + r1["batches"][step]]
        assert sorted(mine) == [tuple(x) for x in expected], step
        assert not set(map(tuple, r0["batches"][step])) & set(map(tuple, r1["batches"][step]))


def _moment(arrays: dict, key: str) -> np.ndarray | None:
    """Adam's first moment of weight `key` (an EMA weight: of its live weight); None for a
    buffer. With beta1 = 0 it is the last step's gradient."""
    live = key[len("ema_"):] if key.startswith("ema_") else key
    for opt in ("opt_g", "opt_d"):
        if f"{opt}.m.{live}" in arrays:
            return arrays[f"{opt}.m.{live}"]
    return None


def _compare(two: dict, one: dict, lr: float, check: bool) -> dict[str, float]:
    """Max |diff| of gradients, of weights where the gradient is well above its rounding, and of
    the rest: Adam's first update is lr * g / (|g| + eps), about lr * sign(g), so where |g| is at
    the rounding level the two runs may move up to lr apart. With `check`, assert the tolerances."""
    worst = {"gradients": 0.0, "weights": 0.0, "near-zero-gradient weights": 0.0}
    for key in one:
        diff = np.abs(two[key] - one[key])
        if key.startswith("opt_"):
            if ".m." in key:
                worst["gradients"] = max(worst["gradients"], float(diff.max()))
            if check:  # a sum instead of a mean, or unsynced statistics: O(1) differences
                np.testing.assert_allclose(two[key], one[key], rtol=1e-4, atol=1e-5, err_msg=key)
            continue
        grad = _moment(one, key)
        clear = np.ones_like(diff, bool) if grad is None else np.abs(grad) > GRADIENT_ROUNDING
        worst["weights"] = max(worst["weights"], float(diff[clear].max(initial=0)))
        worst["near-zero-gradient weights"] = max(worst["near-zero-gradient weights"],
                                                  float(diff[~clear].max(initial=0)))
        if check:
            assert diff[clear].max(initial=0) <= 1e-4 and diff.max() <= 2 * lr, key
    return worst


@needs_mpi
@pytest.mark.slow
def test_two_ranks_match_one_process_at_twice_the_batch(two_vs_one):
    """Gradients are averaged over the ranks (Jittor's optimiser) and batch-norm statistics
    all-reduced (Jittor's BatchNorm), so a step of 2 ranks x batch 1 is a step of 1 process x
    batch 2: from the same weights, the gradients (Adam's first moments, beta1 = 0) agree to
    float32 summation order (measured 3.6e-6, largest gradient 2.2), and so do the updated
    weights where the gradient is clear of its rounding (3e-8; elsewhere up to 6.5e-4 < 2 lr,
    see _compare). Later steps start from weights that differ by that much, which the GAN
    amplifies (after 3 steps: gradients 1.9e-3, weights 4e-5): printed, not checked."""
    base, _, _ = two_vs_one
    (two_1, two_header), (one_1, one_header) = [
        read_checkpoint(dict(list_checkpoints(base / run))[1]) for run in ("two", "one")]
    assert sorted(two_1) == sorted(one_1) and two_header["step"] == one_header["step"] == 1
    lr = max(one_header["lr_scaling"]["lr_g"], one_header["lr_scaling"]["lr_d"])
    after_1 = _compare(two_1, one_1, lr, check=True)
    # not a vacuous agreement: the gradients are far above the tolerance
    assert max(float(np.abs(one_1[k]).max()) for k in one_1 if ".m." in k) > 1e-2
    two_3, one_3 = [read_checkpoint(list_checkpoints(base / run)[-1][1])[0] for run in ("two", "one")]
    after_3 = _compare(two_3, one_3, lr, check=False)
    print("2 ranks x batch 1 vs 1 process x batch 2, max |diff|: after step 1",
          {k: f"{v:.1e}" for k, v in after_1.items()}, "after step 3",
          {k: f"{v:.1e}" for k, v in after_3.items()})


@needs_mpi
@pytest.mark.slow
def test_only_rank_0_writes_and_the_run_records_its_world(two_vs_one):
    base, (r0, r1), _ = two_vs_one
    assert r1["writes"] == [] and r0["writes"]
    files = lambda run: sorted(p.relative_to(run).as_posix() for p in run.rglob("*")  # noqa
                               if p.is_file() and not p.name.startswith("."))
    assert files(base / "two") == files(base / "one")
    header = read_checkpoint(list_checkpoints(base / "two")[-1][1])[1]
    assert header["world_size"] == 2 and header["schedule_step"] == 3
    assert header["lr_scaling"] == {"rule": "none", "processes": 2, "effective_batch": 2,
                                    "factor": 1.0, "lr_g": r0["lr_g"], "lr_d": r0["lr_d"]}
    manifest = json.loads((base / "two" / "manifest.json").read_text())
    assert manifest["counts"]["processes"] == 2


@needs_mpi
@pytest.mark.slow
def test_resume_with_another_world_size(two_vs_one, sample_preprocessed, tmp_path):
    """A 2-process run resumed by 1 process: refused with what to do; with the flag, it goes on
    at the matching step of the 1-process data order (3 steps x 2 ranks x batch 1 = 6 items of
    epoch 0 read: the 1-process run at batch 1 continues at step 6 of its order)."""
    base, _, _ = two_vs_one
    run = tmp_path / "run"
    shutil.copytree(base / "two", run)
    cfg = tiny_config(*EQUIVALENT, "train.batch_size=1", "train.max_steps=8")
    with pytest.raises(ConfigError, match="trained by 2 process") as info:
        run_train(cfg, sample_preprocessed, run, resume=True, progress=False)
    for hint in ("mpirun -np 2", "another --out folder", "--allow-world-change"):
        assert hint in str(info.value)
    seen: list = []
    original = TrainData.batch
    TrainData.batch = lambda self, i, f, split="train": (
        seen.append(np.asarray(i).tolist()) if split == "train" else None,
        original(self, i, f, split))[1]
    try:
        run_train(cfg, sample_preprocessed, run, resume=True, progress=False,
                  allow_world_change=True)
    finally:
        TrainData.batch = original
    header = read_checkpoint(list_checkpoints(run)[-1][1])[1]
    assert (header["step"], header["schedule_step"], header["world_size"]) == (5, 8, 1)
    order = np.random.default_rng([cfg.seed, 0]).permutation(20)
    assert seen == [[int(order[6])], [int(order[7])]]


# ---------------------------------------------------------------------------- stopping
@needs_mpi
@pytest.mark.slow
def test_sigterm_to_one_rank_stops_all_at_the_same_step(sample_preprocessed, tmp_path):
    """SIGTERM reaches rank 1 only (VAE on, instance norm, lr_scaling linear): both ranks stop
    after the same step, rank 0 saves one checkpoint of that step, the job ends."""
    proc = _mpirun(2, tmp_path / "run", tmp_path / "reports", *LONG,
                   extra=["--data", str(sample_preprocessed)], popen=True)
    os.kill(_wait_for_step(tmp_path / "reports", 1, 2, proc), signal.SIGTERM)
    output = proc.communicate(timeout=STOP_BOUND_S)[0]
    assert proc.returncode != 0, output[-2000:]  # both ranks exit 130 (interrupted)
    r0, r1 = _reports(tmp_path / "reports")
    assert r0["outcome"] == r1["outcome"] == "interrupted", output[-2000:]
    assert r0["step"] == r1["step"] >= 2 and r0["checksums"] == r1["checksums"]
    assert "encoder" in r0["checksums"]
    (step, path), = list_checkpoints(tmp_path / "run")
    header = read_checkpoint(path)[1]
    assert step == header["step"] == r0["step"]
    assert header["lr_scaling"]["factor"] == 2.0 and header["lr_scaling"]["effective_batch"] == 4
    assert header["lr_scaling"]["lr_g"] == 2 * tiny_config().train.lr_g


@needs_mpi
@pytest.mark.slow
def test_ctrl_c_on_mpirun_stops_all_with_one_checkpoint(sample_preprocessed, tmp_path):
    """Ctrl-C on mpirun (SIGINT): it sends SIGTERM to every rank's process group, Jittor's
    compiler pool included, and SIGKILL odls_base_sigkill_timeout seconds later (1 by default,
    so `make train` sets 30): the ranks stop after one step, with one checkpoint, in time."""
    proc = _mpirun(2, tmp_path / "run", tmp_path / "reports", *LONG,
                   extra=["--data", str(sample_preprocessed)], popen=True,
                   env={"OMPI_MCA_odls_base_sigkill_timeout": "5"})
    _wait_for_step(tmp_path / "reports", 1, 2, proc)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=STOP_BOUND_S)[0]
    r0, r1 = _reports(tmp_path / "reports")
    assert r0["outcome"] == r1["outcome"] == "interrupted", output[-2000:]
    assert r0["step"] == r1["step"] and r0["checksums"] == r1["checksums"]
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [r0["step"]]


@needs_mpi
@pytest.mark.slow
def test_sigkill_of_one_rank_ends_the_job(sample_preprocessed, tmp_path):
    """A rank killed with SIGKILL: mpirun ends the others (no hang) within STOP_BOUND_S."""
    proc = _mpirun(2, tmp_path / "run", tmp_path / "reports", *LONG,
                   extra=["--data", str(sample_preprocessed)], popen=True)
    victim = _wait_for_step(tmp_path / "reports", 1, 2, proc)
    survivor = int((tmp_path / "reports" / "rank0.pid").read_text())
    started = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    try:
        proc.communicate(timeout=STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the job still runs {STOP_BOUND_S} s after a rank was killed")
    took = time.monotonic() - started
    assert proc.returncode != 0 and _gone(survivor)
    print(f"job ended {took:.1f} s after SIGKILL of rank 1")


@needs_mpi
def test_mpirun_without_jittor_mpi_support_refuses(sample_preprocessed, tmp_path):
    """The real launch: mpirun starts 2 copies, but Jittor would find no mpicc: both refuse,
    before importing Jittor and before making the run folder."""
    done = _mpirun(2, tmp_path / "run", tmp_path / "reports", extra=[
        "--data", str(sample_preprocessed)], env={"mpicc_path": ""})
    assert done.returncode != 0
    for report in _reports(tmp_path / "reports"):
        assert report["outcome"] == "ConfigError" and "make mpi-setup" in report["message"]
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- the worker
class _WriteAudit:
    """Every file-system change under `root` this process makes through Python (audit hooks)."""

    EVENTS = {"os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree", "os.truncate"}

    def __init__(self, root: Path):
        self.root, self.writes = str(Path(root).resolve()), []
        sys.addaudithook(self._hook)

    def _under(self, path) -> bool:
        if isinstance(path, (str, bytes, os.PathLike)):
            return os.path.abspath(os.fsdecode(path)).startswith(self.root)
        return False

    def _hook(self, event, args):
        if event == "open" and args and self._under(args[0]):
            mode, flags = args[1], args[2] if len(args) > 2 else 0
            if (mode and any(c in str(mode) for c in "wax+")) or (
                    not mode and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
                self.writes.append(f"open {args[0]}")
        elif event in self.EVENTS and args and self._under(args[0]):
            self.writes.append(f"{event} {args[0]}")


def _checksums(trainer) -> dict[str, str]:
    """sha256 of each network's and optimiser's arrays, by prefix."""
    arrays, out = trainer.state_arrays(), {}
    for prefix in sorted({k.split(".", 1)[0] for k in arrays}):
        h = hashlib.sha256()
        for key in sorted(k for k in arrays if k.split(".", 1)[0] == prefix):
            h.update(key.encode() + np.ascontiguousarray(arrays[key]).tobytes())
        out[prefix] = h.hexdigest()
    return out


def _worker(argv: list[str]) -> int:
    """One rank: run_train with the tiny config; write REPORT/rank<r>.json; the exit status."""
    from pipeline.core.errors import LandscapeError
    from pipeline.train import Trainer, TrainingInterrupted

    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("reports")
    parser.add_argument("--data", required=True)
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    reports, rank = Path(args.reports), int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    (reports / f"rank{rank}.pid").write_text(str(os.getpid()))
    audit, batches, held = _WriteAudit(Path(args.out)), [], {}
    original_batch, original_step = TrainData.batch, Trainer.train_step

    def batch(self, indices, flips, split="train"):
        if split == "train":
            batches.append(list(zip(np.asarray(indices).tolist(), np.asarray(flips).tolist())))
        return original_batch(self, indices, flips, split)

    def train_step(self, *a, **kw):
        held["trainer"] = self
        return original_step(self, *a, **kw)

    TrainData.batch, Trainer.train_step = batch, train_step
    report = {"rank": rank, "batches": batches}
    on_step = lambda step: (reports / f"rank{rank}.step").write_text(str(step))  # noqa: E731
    try:
        run_train(tiny_config(*args.sets), args.data, args.out, resume=args.resume,
                  progress=False, on_step=on_step)
        report["outcome"], status = "finished", 0
    except TrainingInterrupted as exc:
        report.update(outcome="interrupted", message=str(exc))
        status = 130
    except LandscapeError as exc:
        report.update(outcome=type(exc).__name__, message=str(exc))
        status = 1
    trainer = held.get("trainer")
    if trainer is not None:
        report.update(world=trainer.world, step=trainer.step, lr_g=trainer.lr_g,
                      lr_d=trainer.lr_d, checksums=_checksums(trainer))
    report["writes"] = audit.writes
    (reports / f"rank{rank}.json").write_text(json.dumps(report))
    return status


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))

"""The training loop: `run_train`, the train stage's entry point.

Order of work: check every input (the preprocessed folder, the config against it, the run
folder's owner and the checkpoint to resume from and its identity, the launch: one process or
an mpirun job Jittor can join), then claim the run folder (rank 0: owned, locked, killed saves'
temp files removed), then train.

With N processes (mpirun -np N) every rank runs this same loop on its share of each step's
samples; the ranks agree after every step whether a stop signal reached any of them, so all
stop after the same step, rank 0 writes one final checkpoint and all leave together.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

from ..core.artifacts import StageResult, check_replaceable, claim_folder
from ..core.config import Config
from ..core.preprocessed import PreprocessedData
from .data import TrainData, batch_to_vars, carry_schedule_step
from .distributed import Comm, check_launch, rank_and_world
from .resume import find_resume_point
from .schedule import Schedule
from .stopping import StopFlag, protect_compiler_pool
from .trainer import Trainer
from .writer import NullWriter, RunWriter, stderr_log

STAGE = "train"


class TrainingInterrupted(Exception):
    """Raised after a signal-triggered checkpoint was saved; the message says how to go on."""


def _train_steps(trainer: Trainer, data: TrainData, schedule: Schedule, writer, comm: Comm,
                 on_step: Callable[[int], None] | None) -> dict:
    """Run the steps from trainer.schedule_step to the schedule's end; return the last losses.
    A stop signal on any rank: every rank stops after the same step, rank 0 saves a
    checkpoint, then TrainingInterrupted."""
    cfg, jt = trainer.cfg, trainer.jt
    last_losses: dict = {}
    batches = data.batches(trainer.schedule_step, schedule.total_steps,
                           prefetch=cfg.train.num_workers > 0)
    with StopFlag() as stop, contextlib.closing(batches):
        for batch in batches:
            lr_scale = schedule.lr_factor(trainer.schedule_step)
            inputs = batch_to_vars(jt, batch, cfg.model.num_classes)
            last_losses = trainer.train_step(inputs, lr_scale)
            writer.step_done(trainer, data, last_losses, lr_scale,
                             cfg.train.batch_size * data.world)
            if on_step is not None:
                on_step(trainer.step)
            if comm.any(stop.signum != 0):
                saved = writer.checkpoint(trainer) or "by rank 0"
                why = f"signal {stop.signum}" if stop.signum else "a signal to another rank"
                raise TrainingInterrupted(
                    f"stopped by {why} at step {trainer.step}; checkpoint saved ({saved})."
                    " Continue with the same command and --resume.")
    return last_losses


def _start_trainer(cfg: Config, jt, start, data: TrainData, data_hash: str, log) -> Trainer:
    """The trainer, from the resume point when there is one; a checkpoint of another world
    size (allowed by then) continues at the matching step of this world's data order."""
    trainer = Trainer(cfg, jt, cfg.data.height, cfg.data.width, log, data_hash, data.world)
    if start is None:
        return trainer
    trainer.load_state(start.path, start.arrays, start.header)
    start.arrays = {}  # loaded: do not hold a second copy of the weights for the run
    saved_world = int(start.header.get("world_size", data.world))
    if saved_world != data.world:
        before = trainer.schedule_step
        trainer.schedule_step = carry_schedule_step(before, data.count, cfg.train.batch_size,
                                                    saved_world, data.world)
        log(f"world size {saved_world} -> {data.world} (--allow-world-change): step"
            f" {before} of the old data order and schedule continues as step"
            f" {trainer.schedule_step} of the new one")
    return trainer


def run_train(cfg: Config, data_dir: str | Path, out: str | Path, *, resume: bool = False,
              progress: bool = True, on_step: Callable[[int], None] | None = None,
              allow_world_change: bool = False) -> StageResult:
    """Train into the run folder `out` from the preprocess folder `data_dir`.

    resume: continue from the newest good checkpoint in `out` (a fresh start when there is
    none; a corrupt newer one is moved aside with a warning). Without it, a folder that already
    holds checkpoints is refused. allow_world_change: resume a checkpoint made by another number
    of processes (refused otherwise), re-deriving the data order and schedule.
    on_step(steps_done) is called after every step (tests).
    Returns StageResult(manifest, summary lines); ranks other than 0 return an empty one.
    SIGINT/SIGTERM/SIGUSR1 save a checkpoint and raise TrainingInterrupted.
    """
    from ..jt_env import setup_jittor

    prep, out = PreprocessedData.open(data_dir), Path(out)
    check_replaceable(out, STAGE)
    data_hash = prep.fingerprint()
    world = check_launch()
    start = find_resume_point(out, cfg, data_hash, resume, world, allow_world_change)
    jt = setup_jittor(cfg.device, cfg.threads)
    protect_compiler_pool()
    rank, world = rank_and_world(jt, world)
    comm = Comm(jt, rank, world)
    data = TrainData(prep, cfg, rank, world)
    schedule = Schedule.from_config(cfg, data.steps_per_epoch)
    log = stderr_log if rank == 0 else (lambda msg: None)
    step0 = int(start.header["step"]) if start else 0
    comm.check_same_start(step0, int(start.header.get("schedule_step", step0)) if start else 0,
                          data_hash, data.count)
    claim = claim_folder(out, STAGE) if rank == 0 else contextlib.nullcontext(out.resolve())
    stopped = None
    with claim as folder:
        writer = RunWriter(folder, cfg, schedule, progress=progress) if rank == 0 else NullWriter()
        trainer = _start_trainer(cfg, jt, start, data, data_hash, log)
        try:
            writer.open(trainer.step, start.bad if start else [])
            if start is not None:
                log(f"resuming from {start.path} (step {trainer.step})")
            last_losses = _train_steps(trainer, data, schedule, writer, comm, on_step)
        except TrainingInterrupted as exc:
            stopped = exc
        finally:
            writer.close()
        manifest = {} if stopped else writer.finish(trainer, data, data_hash, world, last_losses)
    comm.barrier()  # no rank leaves (mpirun ends the job) before rank 0 has saved and unlocked
    if stopped is not None:
        raise stopped
    if not manifest:
        return StageResult({}, [])
    summary = [f"train: {trainer.step} steps on {data.count} images -> {out}"
               f" ({manifest['extra']['ema']}"
               f"{f', {world} processes' if world > 1 else ''})"]
    return StageResult(manifest, summary)

"""The training loop: `run_train`, the train stage's entry point.

Order of work: check every input (the preprocessed folder, the config against it, the run
folder's owner and the checkpoint to resume from and its identity), then claim the run folder
(rank 0: owned, locked, killed saves' temp files removed), then train.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Callable

from ..core.artifacts import StageResult, check_replaceable, claim_folder
from ..core.config import Config
from ..core.preprocessed import PreprocessedData
from .data import TrainData, batch_to_vars
from .resume import find_resume_point
from .schedule import Schedule
from .trainer import Trainer
from .writer import NullWriter, RunWriter, stderr_log

STAGE = "train"


class TrainingInterrupted(Exception):
    """Raised after a signal-triggered checkpoint was saved; the message says how to go on."""


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint and stops after the current step."""

    def __init__(self):
        self.signum = 0
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread: no signal handling
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum:  # a second signal: stop at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)


def _train_steps(trainer: Trainer, data: TrainData, schedule: Schedule, writer,
                 on_step: Callable[[int], None] | None) -> dict:
    """Run the steps from trainer.step to the schedule's end; return the last losses.
    SIGINT/SIGTERM: checkpoint after the current step, then TrainingInterrupted."""
    cfg, jt = trainer.cfg, trainer.jt
    last_losses: dict = {}
    batches = data.batches(trainer.step, schedule.total_steps,
                           prefetch=cfg.train.num_workers > 0)
    with _StopFlag() as stop, contextlib.closing(batches):
        for batch in batches:
            lr_scale = schedule.lr_factor(trainer.step)
            inputs = batch_to_vars(jt, batch, cfg.model.num_classes)
            last_losses = trainer.train_step(inputs, lr_scale)
            writer.step_done(trainer, data, last_losses, lr_scale,
                             cfg.train.batch_size * data.world)
            if on_step is not None:
                on_step(trainer.step)
            if stop.signum:
                saved = writer.checkpoint(trainer) or "rank 0's run folder"
                raise TrainingInterrupted(
                    f"stopped by signal {stop.signum} at step {trainer.step}; checkpoint saved"
                    f" ({saved}). Continue with the same command and --resume.")
    return last_losses


def run_train(cfg: Config, data_dir: str | Path, out: str | Path, *, resume: bool = False,
              progress: bool = True, on_step: Callable[[int], None] | None = None) -> StageResult:
    """Train into the run folder `out` from the preprocess folder `data_dir`.

    resume: continue from the newest good checkpoint in `out` (a fresh start when there is
    none; a corrupt newer one is moved aside with a warning). Without it, a folder that already
    holds checkpoints is refused. on_step(steps_done) is called after every step (tests).
    Returns StageResult(manifest, summary lines); ranks other than 0 return an empty one.
    SIGINT/SIGTERM save a checkpoint and raise TrainingInterrupted.
    """
    from ..jt_env import setup_jittor

    prep, out = PreprocessedData.open(data_dir), Path(out)
    check_replaceable(out, STAGE)
    data_hash = prep.fingerprint()
    start = find_resume_point(out, cfg, data_hash, resume)
    jt = setup_jittor(cfg.device, cfg.threads)
    rank, world = (jt.rank, jt.world_size) if jt.in_mpi else (0, 1)
    data = TrainData(prep, cfg, rank, world)
    schedule = Schedule.from_config(cfg, data.steps_per_epoch)
    log = stderr_log if rank == 0 else (lambda msg: None)
    claim = claim_folder(out, STAGE) if rank == 0 else contextlib.nullcontext(out.resolve())
    with claim as folder:
        writer = RunWriter(folder, cfg, schedule, progress=progress) if rank == 0 else NullWriter()
        trainer = Trainer(cfg, jt, cfg.data.height, cfg.data.width, log, data_hash)
        if start is not None:
            trainer.load_state(start.path, start.arrays, start.header)
            start.arrays = {}  # loaded: do not hold a second copy of the weights for the run
        try:
            writer.open(trainer.step, start.bad if start else [])
            if start is not None:
                log(f"resuming from {start.path} (step {trainer.step})")
            last_losses = _train_steps(trainer, data, schedule, writer, on_step)
        finally:
            writer.close()
        manifest = writer.finish(trainer, data, data_hash, world, last_losses)
    if jt.in_mpi:
        jt.sync_all(True)
    if not manifest:
        return StageResult({}, [])
    summary = [f"train: {trainer.step} steps on {data.count} images -> {out}"
               f" ({manifest['extra']['ema']})"]
    return StageResult(manifest, summary)

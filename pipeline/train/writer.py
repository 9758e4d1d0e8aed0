"""The run writer: every file of the run folder, written by rank 0 alone.

    config.resolved.toml            the full config of the run
    checkpoints/step_*.safetensors  newest `train.keep_checkpoints` full checkpoints
    ema_generator.safetensors       the EMA generator/encoder at the end (what `generate` uses)
    train_log.csv                   one row per `train.log_every` steps
    samples/step_*.png              sample grids every `train.sample_every` steps
    score_log.csv, best.safetensors scores every `train.score_every` steps (scoring.py)
    manifest.json                   written last (stage "train")

Other ranks get a `NullWriter`: the same calls, nothing written.
"""

from __future__ import annotations

import csv
import io
import sys
import time
from pathlib import Path
from typing import Callable

from ..checkpoint import CKPT_DIR, EMA_FILE, checkpoint_name, prune_checkpoints
from ..core.artifacts import atomic_write_text, write_manifest

# written into the run later by `landscape sweep` / `landscape average`: not the training's files
LATER_FILES = ("choice.json", "average*.safetensors")
from ..core.config import Config, config_hash, config_to_toml
from .resume import TRAINING_SECTIONS
from .samples import sample_grid, write_png
from .schedule import Schedule
from .scoring import TrainScoring

LOG_FILE = "train_log.csv"
SAMPLES_DIR = "samples"
# one column per loss term of GANModel (empty when a term is off)
LOG_COLUMNS = ["step", "epoch", "lr_g", "lr_d", "g_gan", "g_feat", "g_kld", "g_edge", "g_vgg",
               "g_edge_gan", "g_edge_feat", "g_contrast", "g_colour", "g_class_colour",
               "g_lowpass", "g_hist", "d_real", "d_fake", "d_edge_real", "d_edge_fake",
               "images_per_s", "seconds"]


def stderr_log(msg: str) -> None:
    """Print a line above the progress bar (stderr)."""
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


def rewrite_log(path: Path, upto_step: int) -> None:
    """Drop log rows after `upto_step` (they are replayed after a resume)."""
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= upto_step]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, LOG_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def append_log(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in LOG_COLUMNS})


class RunWriter:
    """Rank 0's writer of the run folder `out` (already claimed: owned and locked)."""

    def __init__(self, out: Path, cfg: Config, schedule: Schedule, *, progress: bool,
                 log: Callable[[str], None] = stderr_log):
        self.out, self.cfg, self.schedule, self.log = Path(out), cfg, schedule, log
        self.progress = progress
        self.scoring = TrainScoring(self.out, cfg, log, total_steps=schedule.total_steps)
        self.ckpt_dir = self.out / CKPT_DIR
        self.log_path = self.out / LOG_FILE
        self.bar = None
        self._window = (time.perf_counter(), 0)  # throughput since the last log row
        self._started = time.perf_counter()

    def open(self, start_step: int, bad: list[tuple[Path, str]]) -> None:
        """Prepare the folder for a run starting after `start_step` steps: bad checkpoints moved
        aside (named in a warning), the config written, log rows after the start dropped."""
        self.ckpt_dir.mkdir(exist_ok=True)
        (self.out / SAMPLES_DIR).mkdir(exist_ok=True)
        for path, why in bad:
            aside = path.with_name(path.name + ".corrupt")
            path.replace(aside)
            self.log(f"warning: skipped a bad checkpoint ({why}); moved it aside to {aside.name}"
                     f" and resumed from the newest good one (step {start_step})")
        atomic_write_text(self.out / "config.resolved.toml", config_to_toml(self.cfg))
        rewrite_log(self.log_path, start_step)
        self.scoring.open(start_step)
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=self.schedule.total_steps, initial=start_step, unit="step",
                            dynamic_ncols=True)

    def step_done(self, trainer, data, losses: dict, lr_scale: float, images: int) -> None:
        """After each step: progress, and the log row, sample grid and checkpoint when due
        (by the schedule's step; files are named by the trainer's step)."""
        due, sched = trainer.schedule_step, self.schedule
        self._window = (self._window[0], self._window[1] + images)
        if self.bar is not None:
            self.bar.update(1)
        if sched.log_due(due):
            self._log_row(trainer, losses, lr_scale)
        if sched.sample_due(due):
            grid = sample_grid(trainer.model, trainer.jt, data.sample_batch(),
                               self.cfg.model.num_classes, self.cfg.generate.output)
            write_png(self.out / SAMPLES_DIR / f"step_{trainer.step:08d}.png", grid)
        if sched.checkpoint_due(due):
            self.checkpoint(trainer)
        self.scoring.step_done(trainer, data)

    def _log_row(self, trainer, losses: dict, lr_scale: float) -> None:
        now = time.perf_counter()
        images_per_s = self._window[1] / max(now - self._window[0], 1e-9)
        self._window = (now, 0)
        append_log(self.log_path, {
            "step": trainer.step,
            "epoch": (trainer.schedule_step - 1) // self.schedule.steps_per_epoch,
            "lr_g": trainer.lr_g * lr_scale, "lr_d": trainer.lr_d * lr_scale,
            **{k: f"{v:.5f}" for k, v in losses.items()},
            "images_per_s": f"{images_per_s:.2f}", "seconds": f"{now - self._started:.1f}"})
        if self.bar is not None:
            self.bar.set_postfix({**{k: f"{v:.3f}" for k, v in losses.items()},
                                  "img/s": f"{images_per_s:.1f}"}, refresh=False)

    def checkpoint(self, trainer) -> Path:
        """Save a checkpoint at the trainer's step, then prune old ones (only once the new one
        reads back verified); returns its path."""
        path = self.ckpt_dir / checkpoint_name(trainer.step)
        trainer.save(path, self.schedule.steps_per_epoch)
        prune_checkpoints(self.out, self.cfg.train.keep_checkpoints)
        return path

    def finish(self, trainer, data, data_hash: str, world: int, last_losses: dict) -> dict:
        """The final checkpoint (if the loop did not write it), the EMA file and the manifest."""
        self.close()
        final = self.ckpt_dir / checkpoint_name(trainer.step)
        if not final.is_file():
            self.checkpoint(trainer)  # a finished run resumed with nothing left to do
        trainer.save_ema(self.out / EMA_FILE, self.schedule.steps_per_epoch)
        return write_manifest(
            self.out, "train",
            config_hash=config_hash(self.cfg, *TRAINING_SECTIONS),
            inputs={"data": data_hash},
            counts={"steps": trainer.step, "train_images": data.count,
                    "steps_per_epoch": self.schedule.steps_per_epoch, "processes": world},
            extra={"checkpoint": f"{CKPT_DIR}/{final.name}", "ema": EMA_FILE,
                   "lr_scaling": trainer.lr_scaling_record(),
                   "kind": self.cfg.model.kind, "last_losses": last_losses},
            exclude=LATER_FILES,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class NullWriter:
    """What ranks other than 0 hold: the writer's calls, nothing written."""

    def open(self, start_step: int, bad: list) -> None:
        pass

    def step_done(self, trainer, data, losses: dict, lr_scale: float, images: int) -> None:
        pass

    def checkpoint(self, trainer) -> None:
        return None

    def finish(self, trainer, data, data_hash: str, world: int, last_losses: dict) -> dict:
        return {}

    def close(self) -> None:
        pass

"""The training schedule: pure functions of the step, no state, no framework.

Two step conventions, both explicit in the names:
  - `step_index` is the 0-based index of the step about to run (learning rate, EMA decay, the
    epoch whose data it reads);
  - `steps_done` is the number of steps finished (when to log, sample and checkpoint).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import Config


def lr_factor(step_index: int, steps_per_epoch: int, epochs: int, decay_epochs: int) -> float:
    """1 for the first `epochs` epochs, then linear decay to 0 over `decay_epochs` (per step)."""
    flat = epochs * steps_per_epoch
    if step_index < flat:
        return 1.0
    decay = decay_epochs * steps_per_epoch
    return max(0.0, 1.0 - (step_index - flat) / decay) if decay else 0.0


def warmup_ema_decay(step_index: int, decay: float) -> float:
    """EMA decay with a warm-up, so that short runs do not average in the random init."""
    return min(decay, (1.0 + step_index) / (10.0 + step_index))


@dataclass(frozen=True)
class Schedule:
    """When what happens in a run of `steps_per_epoch` steps per epoch (train.* keys)."""

    steps_per_epoch: int
    epochs: int
    decay_epochs: int
    max_steps: int = 0  # 0: the whole schedule
    log_every: int = 1
    sample_every: int = 1
    checkpoint_every: int = 1
    ema_decay_target: float = 0.999

    @classmethod
    def from_config(cls, cfg: Config, steps_per_epoch: int) -> "Schedule":
        t = cfg.train
        return cls(steps_per_epoch, t.epochs, t.decay_epochs, t.max_steps, t.log_every,
                   t.sample_every, t.checkpoint_every, t.ema_decay)

    @property
    def total_steps(self) -> int:
        """Steps of the whole run: (epochs + decay_epochs) epochs, capped by max_steps."""
        steps = (self.epochs + self.decay_epochs) * self.steps_per_epoch
        return min(steps, self.max_steps) if self.max_steps else steps

    def lr_factor(self, step_index: int) -> float:
        return lr_factor(step_index, self.steps_per_epoch, self.epochs, self.decay_epochs)

    def ema_decay(self, step_index: int) -> float:
        return warmup_ema_decay(step_index, self.ema_decay_target)

    def position(self, step_index: int) -> tuple[int, int]:
        """(epoch, index within the epoch) of a step."""
        return divmod(step_index, self.steps_per_epoch)

    def _due(self, steps_done: int, every: int) -> bool:
        return steps_done % every == 0 or steps_done == self.total_steps

    def log_due(self, steps_done: int) -> bool:
        """A train_log.csv row after this many steps (and always after the last)."""
        return self._due(steps_done, self.log_every)

    def sample_due(self, steps_done: int) -> bool:
        """A sample grid after this many steps (and always after the last)."""
        return self._due(steps_done, self.sample_every)

    def checkpoint_due(self, steps_done: int) -> bool:
        """A checkpoint after this many steps (and always after the last)."""
        return self._due(steps_done, self.checkpoint_every)

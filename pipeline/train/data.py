"""Data order: which preprocessed samples each step of each rank sees, and the batches.

Order and flips of epoch e come from numpy default_rng([seed, e]); with MPI, rank r takes every
world-th item of that order, and each rank does the same number of steps. So a step's batch is
a pure function of (seed, step, rank, world): what makes an exact resume possible.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np

from ..core.config import Config
from ..core.errors import ConfigError
from ..core.preprocessed import ARRAY_KINDS, PreprocessedData

SAMPLE_ROWS = 4  # rows of the sample grids


class TrainData:
    """The preprocessed arrays of the train split (memory-mapped), batched per epoch and rank."""

    def __init__(self, prep: PreprocessedData, cfg: Config, rank: int = 0, world: int = 1):
        self.prep, self.cfg = prep, cfg
        self.rank, self.world = rank, world
        self.train = prep.arrays("train")
        self.val = prep.arrays("val") if prep.has_split("val") else {}
        count, height, width = self.train["labels"].shape
        if (height, width) != (cfg.data.height, cfg.data.width):
            raise ConfigError(
                f"{prep.root} holds {width}x{height} arrays but the config trains at"
                f" data.width x data.height = {cfg.data.width}x{cfg.data.height}: preprocess with"
                " this config or use the config the data was made with")
        self.count = count
        self.steps_per_epoch = steps_per_epoch(count, cfg.train.batch_size, world)
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"{prep.root}: {count} training images over {world} process(es) give fewer than"
                f" train.batch_size = {cfg.train.batch_size} per process; lower the batch size")

    def epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices (steps, B), flips (steps, B)) of this rank for `epoch`."""
        rng = np.random.default_rng([self.cfg.seed, epoch])
        order = rng.permutation(self.count)
        flips = rng.random(self.count) < 0.5 if self.cfg.train.flip else np.zeros(self.count, bool)
        mine = order[self.rank::self.world]
        my_flips = flips[order][self.rank::self.world]
        size, steps = self.cfg.train.batch_size, self.steps_per_epoch
        return mine[: steps * size].reshape(steps, size), my_flips[: steps * size].reshape(steps, size)

    def batch(self, indices: np.ndarray, flips: np.ndarray, split: str = "train") -> dict:
        """numpy batch: uint8 images (B,H,W,3), labels (B,H,W), edges (B,H,W), flipped as asked."""
        arrays = self.train if split == "train" else self.val
        order = np.argsort(indices)  # memmap fancy indexing is fastest in file order
        inverse = np.argsort(order)
        sorted_idx = np.asarray(indices)[order]
        out = {k: np.asarray(arrays[k][sorted_idx])[inverse] for k in ARRAY_KINDS}
        for k in out:
            flip = flips.reshape((-1,) + (1,) * (out[k].ndim - 1))
            out[k] = np.where(flip, out[k][:, :, ::-1], out[k])
        return out

    def batches(self, first_step: int, end_step: int, prefetch: bool = False) -> Iterator[dict]:
        """The batches of steps first_step .. end_step - 1 (0-based), in order; with `prefetch`
        the next batch is read in a background thread while the current one trains."""
        pool = ThreadPoolExecutor(max_workers=1) if prefetch else None
        try:
            step = first_step
            while step < end_step:
                epoch, offset = divmod(step, self.steps_per_epoch)
                indices, flips = self.epoch_plan(epoch)
                last = min(self.steps_per_epoch, offset + end_step - step)
                load = lambda i: self.batch(indices[i], flips[i])  # noqa: E731
                pending = pool.submit(load, offset) if pool else None
                for i in range(offset, last):
                    current = pending.result() if pool else load(i)
                    if pool and i + 1 < last:
                        pending = pool.submit(load, i + 1)
                    yield current
                step += last - offset
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def sample_batch(self) -> dict:
        """The fixed batch of the sample grids: the first validation items (training items if
        the data has no validation split)."""
        split = "val" if self.val and len(self.val["labels"]) else "train"
        count = len((self.val if split == "val" else self.train)["labels"])
        rows = np.arange(min(SAMPLE_ROWS, count))
        return self.batch(rows, np.zeros(len(rows), bool), split)


def steps_per_epoch(count: int, batch_size: int, world: int) -> int:
    """Steps of one epoch: each of `world` ranks takes every world-th item of the epoch's order."""
    return (count // world) // batch_size


def carry_schedule_step(schedule_step: int, count: int, batch_size: int, old_world: int,
                        new_world: int) -> int:
    """The step of a `new_world` run that continues a `old_world` run after `schedule_step` steps:
    the same epoch, from the first step whose samples the old run had not read yet (a step of
    world w reads items [s*w*B, (s+1)*w*B) of the epoch's order), the next epoch when none is left.
    Fewer than new_world*B items of that epoch may be skipped; none is read twice."""
    old_spe = steps_per_epoch(count, batch_size, old_world)
    new_spe = steps_per_epoch(count, batch_size, new_world)
    epoch, offset = divmod(schedule_step, old_spe)
    items_read = offset * old_world * batch_size
    new_offset = -(-items_read // (new_world * batch_size))  # ceil: never re-read an item
    if new_offset >= new_spe:
        epoch, new_offset = epoch + 1, 0
    return epoch * new_spe + new_offset


def batch_to_vars(jt, batch: dict, num_classes: int) -> dict:
    """numpy batch -> Jittor inputs: seg one-hot, image in [-1, 1], edge in [0, 1]."""
    from ..model.ganmodel import images_to_tensor, labels_to_onehot

    return {
        "seg": jt.array(labels_to_onehot(batch["labels"], num_classes)),
        "image": jt.array(images_to_tensor(batch["images"])),
        "edge": jt.array((batch["edges"][:, None] > 127).astype(np.float32)),
    }

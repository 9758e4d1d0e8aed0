"""The trainer: the GAN model, both Adam optimisers, the G/D step and the checkpoint state."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..checkpoint import (load_into, network_state, optimizer_state, read_checkpoint,
                          save_checkpoint)
from ..core.config import Config, config_hash
from .distributed import lr_world_factor
from .resume import TRAINING_SECTIONS, check_resume_identity, resume_config, resume_hash
from .schedule import warmup_ema_decay

EMA_NETWORKS = ("ema_generator", "ema_encoder")


class Trainer:
    """Owns the model, both Adam optimisers and two step counters: `step`, the updates done (it
    names the checkpoints), and `schedule_step`, the steps done in this world size's data order
    and schedule (the same number unless a resume changed the world size).

    data_hash: the manifest hash of the preprocessed folder trained on (recorded in every
    checkpoint; a resume on other data is refused). world: training processes (mpirun -np);
    the learning rates are scaled for it by train.lr_scaling.
    """

    def __init__(self, cfg: Config, jt, height: int, width: int, log: Callable[[str], None],
                 data_hash: str = "", world: int = 1):
        from ..model.ganmodel import GANModel

        self.cfg, self.jt = cfg, jt
        jt.set_global_seed(cfg.seed, different_seed_for_mpi=False)  # same init on every rank
        self.model = GANModel(cfg, height, width, log=log)
        t = cfg.train
        self.opt_g = jt.optim.Adam(self.model.generator_parameters(), t.lr_g,
                                   betas=(t.beta1, t.beta2))
        self.opt_d = jt.optim.Adam(self.model.discriminator_parameters(), t.lr_d,
                                   betas=(t.beta1, t.beta2))
        self.step = self.schedule_step = 0
        self.data_hash, self.world = data_hash, world
        factor = lr_world_factor(t.lr_scaling, world)
        self.lr_g, self.lr_d = t.lr_g * factor, t.lr_d * factor

    def optimizers(self) -> dict:
        """Checkpoint prefix -> (optimiser, parameter names)."""
        from ..model.normalization import is_buffer

        def names(nets):
            out = []
            for net in nets:
                out += [f"{net}.{k}" for k in self.model.networks()[net].state_dict()
                        if not is_buffer(k)]
            return out

        g_nets = ["generator"] + (["encoder"] if self.model.use_vae else [])
        return {"opt_g": (self.opt_g, names(g_nets)), "opt_d": (self.opt_d, names(["discriminator"]))}

    def train_step(self, batch: dict, lr_scale: float) -> dict[str, float]:
        """One G and one D update on a Jittor batch; returns the loss values."""
        jt, t = self.jt, self.cfg.train
        jt.set_global_seed(self.cfg.seed + self.step)  # this step's randomness: (seed, step)
        self.opt_g.lr = self.lr_g * lr_scale
        self.opt_d.lr = self.lr_d * lr_scale
        g_losses, outputs = self.model.generator_step(batch)
        self.opt_g.step(self.model.weighted_sum(g_losses))
        d_losses = self.model.discriminator_step(batch, outputs)
        self.opt_d.step(self.model.weighted_sum(d_losses))
        self.model.update_ema(warmup_ema_decay(self.step, t.ema_decay))
        jt.sync_all()
        self.step += 1
        self.schedule_step += 1
        return {k: float(v.item()) for k, v in {**g_losses, **d_losses}.items()}

    # ------------------------------------------------------------------ checkpoint state
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every network's and both optimisers' arrays, by checkpoint key."""
        from ..model.ganmodel import NETWORKS

        arrays = network_state(self.model, [n for n in NETWORKS if n in self.model.networks()])
        for prefix, (opt, names) in self.optimizers().items():
            arrays.update(optimizer_state(prefix, opt, names))
        return arrays

    def ema_networks(self) -> list[str]:
        return sorted(n for n in EMA_NETWORKS if n in self.model.networks())

    def checkpoint_header(self, steps_per_epoch: int) -> dict:
        """The JSON header of a checkpoint at the current step: what a resume checks."""
        cfg = self.cfg
        return {
            "step": self.step,
            "schedule_step": self.schedule_step,
            "epoch": self.schedule_step // steps_per_epoch,
            "world_size": self.world,
            "lr_scaling": self.lr_scaling_record(),
            "seed": cfg.seed,
            "kind": cfg.model.kind,
            "resume_hash": resume_hash(cfg),
            "resume_config": resume_config(cfg),
            "config_hash": config_hash(cfg, *TRAINING_SECTIONS),
            "networks": sorted(self.model.networks()),
            "optimizers": {p: {"n_step": o.n_step} for p, (o, _) in self.optimizers().items()},
            "rng": {"scheme": "jt.set_global_seed(seed + step) every step; data order and flips"
                              " from numpy default_rng([seed, epoch])", "seed": cfg.seed},
            "data": {"height": cfg.data.height, "width": cfg.data.width,
                     "manifest_hash": self.data_hash},
        }

    def lr_scaling_record(self) -> dict:
        """What the run header says about the learning rates for this world size."""
        t = self.cfg.train
        return {"rule": t.lr_scaling, "processes": self.world,
                "effective_batch": t.batch_size * self.world,
                "factor": self.lr_g / t.lr_g if t.lr_g else 1.0,
                "lr_g": self.lr_g, "lr_d": self.lr_d}

    def save(self, path: Path, steps_per_epoch: int) -> None:
        """Write a full checkpoint (atomically) at the current step."""
        self.jt.sync_all(True)
        save_checkpoint(path, self.state_arrays(), self.checkpoint_header(steps_per_epoch))

    def save_ema(self, path: Path, steps_per_epoch: int) -> None:
        """Write the EMA generator/encoder alone: what `generate` loads."""
        self.jt.sync_all(True)
        networks = self.ema_networks()
        header = {**self.checkpoint_header(steps_per_epoch), "optimizers": {}, "networks": networks}
        save_checkpoint(path, network_state(self.model, networks), header)

    def load_state(self, path: Path, arrays: dict, header: dict) -> None:
        """Copy a read checkpoint's arrays into the model and optimisers (keys and shapes
        checked first); the steps continue from the header's."""
        from ..model.ganmodel import NETWORKS

        load_into(path, arrays, header, self.model, NETWORKS, self.optimizers())
        self.step = int(header["step"])
        self.schedule_step = int(header.get("schedule_step", self.step))

    def load(self, path: Path) -> dict:
        """Read, verify and check a checkpoint against this config, data and world size, then
        load it."""
        arrays, header = read_checkpoint(path)
        check_resume_identity(Path(path), header, self.cfg, self.data_hash, self.world)
        self.load_state(Path(path), arrays, header)
        return header

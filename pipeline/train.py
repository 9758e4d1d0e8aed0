"""The train stage: preprocessed data -> a run folder with checkpoints, EMA generator and logs.

Exact resume by construction: every step's Jittor/numpy randomness comes from
`jt.set_global_seed(seed + step)`, and each epoch's data order and flips from
`numpy.random.default_rng([seed, epoch])`. A checkpoint therefore needs only the weights, the
Adam moments and the step to continue exactly as an uninterrupted run would.

Run folder:
  config.resolved.toml     the full config of the run
  checkpoints/step_*.safetensors   newest `train.keep_checkpoints` full checkpoints
  ema_generator.safetensors        the EMA generator/encoder at the end (what `generate` uses)
  train_log.csv            one row per `train.log_every` steps
  samples/step_*.png       map | reference | generated | edges grids every `train.sample_every`
  manifest.json            written last (stage "train")
"""

from __future__ import annotations

import csv
import io
import math
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from .core.artifacts import (atomic_write_bytes, atomic_write_text, manifest_hash, prepare_output_dir,
                        read_manifest, write_manifest)
from .checkpoint import (CKPT_DIR, EMA_FILE, checkpoint_name, latest_checkpoint, list_checkpoints,
                         load_into, network_state, optimizer_state, read_checkpoint,
                         save_checkpoint)
from .colour import colourise_labels
from .core.config import Config, config_hash, config_to_dict, config_to_toml
from .core.errors import ArtifactError, ConfigError, DatasetError

# Keys that may change between an interrupted run and its resumption (they do not change the
# trained weights): everything else must match the checkpoint's config.
RESUME_FREE_KEYS = {"device", "train.max_steps", "train.log_every", "train.sample_every",
                    "train.checkpoint_every", "train.keep_checkpoints", "train.num_workers"}
TRAINING_SECTIONS = ("seed", "data", "model", "loss", "train")
SAMPLE_ROWS = 4
LOG_COLUMNS = ["step", "epoch", "lr_g", "lr_d", "g_gan", "g_feat", "g_kld", "g_edge", "g_vgg",
               "d_real", "d_fake", "images_per_s", "seconds"]


def limit_cpu_threads() -> None:
    """Default OMP_NUM_THREADS to (CPU cores - 1), at least 1, unless the user set it.

    Jittor's CPU kernels (OpenMP / oneDNN) spin-wait; with every core busy (data loading, other
    processes) a step measured 8 s instead of 0.9 s on 2 cores. Must run before jittor's import.
    """
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (cores or 1) - 1)))


def resume_hash(cfg: Config) -> str:
    """Hash of the config keys a resumed run must share with its checkpoint."""
    import hashlib
    import json

    table = {k: v for k, v in config_to_dict(cfg).items() if k in TRAINING_SECTIONS}
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    flat = {k: v for k, v in flat.items() if k not in RESUME_FREE_KEYS}
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------- data
class TrainData:
    """The preprocessed arrays of one split, read lazily (mmap), batched per epoch and rank.

    Order and flips of epoch e come from numpy default_rng([seed, e]); with MPI, rank r takes
    every world-th item of that order, and each rank does the same number of steps.
    """

    def __init__(self, data_dir: Path, cfg: Config, rank: int = 0, world: int = 1):
        self.data_dir = Path(data_dir)
        self.cfg = cfg
        self.rank, self.world = rank, world
        names = ("images", "labels", "edges")
        try:
            self.train = {n: np.load(self.data_dir / f"train_{n}.npy", mmap_mode="r")
                          for n in names}
            self.val = {n: np.load(self.data_dir / f"val_{n}.npy", mmap_mode="r")
                        for n in names if (self.data_dir / f"val_{n}.npy").is_file()}
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{data_dir}: cannot read the preprocessed arrays ({exc}); re-run"
                               " `landscape preprocess`") from None
        n, h, w = self.train["labels"].shape
        if (h, w) != (cfg.data.height, cfg.data.width):
            raise ConfigError(
                f"{data_dir} holds {w}x{h} arrays but the config trains at"
                f" data.width x data.height = {cfg.data.width}x{cfg.data.height}: preprocess with"
                " this config or use the config the data was made with")
        if self.train["images"].shape != (n, h, w, 3) or self.train["edges"].shape != (n, h, w):
            raise DatasetError(f"{data_dir}: train_images/labels/edges shapes disagree; re-run"
                               " `landscape preprocess`")
        self.count = n
        per_rank = n // world
        self.steps_per_epoch = per_rank // cfg.train.batch_size
        if self.steps_per_epoch < 1:
            raise ConfigError(
                f"{data_dir}: {n} training images over {world} process(es) give fewer than"
                f" train.batch_size = {cfg.train.batch_size} per process; lower the batch size")

    def epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices (steps, B), flips (steps, B)) of this rank for `epoch`."""
        rng = np.random.default_rng([self.cfg.seed, epoch])
        order = rng.permutation(self.count)
        flips = rng.random(self.count) < 0.5 if self.cfg.train.flip else np.zeros(self.count, bool)
        mine = order[self.rank::self.world]
        my_flips = flips[order][self.rank::self.world]
        b, steps = self.cfg.train.batch_size, self.steps_per_epoch
        return mine[: steps * b].reshape(steps, b), my_flips[: steps * b].reshape(steps, b)

    def batch(self, indices: np.ndarray, flips: np.ndarray, split: str = "train") -> dict:
        """numpy batch: uint8 images (B,H,W,3), labels (B,H,W), edges (B,H,W), flipped as asked."""
        arrays = self.train if split == "train" else self.val
        order = np.argsort(indices)  # memmap fancy indexing is fastest in file order
        sorted_idx = np.asarray(indices)[order]
        inverse = np.argsort(order)
        out = {n: np.asarray(arrays[n][sorted_idx])[inverse] for n in ("images", "labels", "edges")}
        for n in out:
            out[n] = np.where(flips.reshape((-1,) + (1,) * (out[n].ndim - 1)),
                              out[n][:, :, ::-1], out[n])
        return out


def batch_to_vars(jt, batch: dict, num_classes: int) -> dict:
    """numpy batch -> Jittor inputs: seg one-hot, image in [-1, 1], edge in [0, 1]."""
    from .model.ganmodel import images_to_tensor, labels_to_onehot

    return {
        "seg": jt.array(labels_to_onehot(batch["labels"], num_classes)),
        "image": jt.array(images_to_tensor(batch["images"])),
        "edge": jt.array((batch["edges"][:, None] > 127).astype(np.float32)),
    }


# ---------------------------------------------------------------------------- schedule
def lr_factor(step: int, steps_per_epoch: int, epochs: int, decay_epochs: int) -> float:
    """1 for the first `epochs` epochs, then linear decay to 0 over `decay_epochs` (per step)."""
    flat = epochs * steps_per_epoch
    if step < flat:
        return 1.0
    decay = decay_epochs * steps_per_epoch
    return max(0.0, 1.0 - (step - flat) / decay) if decay else 0.0


def total_steps(cfg: Config, steps_per_epoch: int) -> int:
    steps = (cfg.train.epochs + cfg.train.decay_epochs) * steps_per_epoch
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps else steps


def ema_decay(step: int, decay: float) -> float:
    """EMA decay with a warm-up, so that short runs do not average in the random init."""
    return min(decay, (1.0 + step) / (10.0 + step))


# ---------------------------------------------------------------------------- samples
def sample_grid(model, jt, batch: dict, num_classes: int, output: str) -> np.ndarray:
    """RGB uint8 grid: one row per sample, columns map | reference | generated | edges."""
    from .model.ganmodel import tensor_to_images

    v = batch_to_vars(jt, batch, num_classes)
    out = model.generate(v["seg"], v["image"])
    key = "refined" if output == "refined" and "refined" in out else "image"
    fake = tensor_to_images(out[key].numpy())
    if "edge" in out:
        edges = (np.clip(out["edge"].numpy()[:, 0], 0, 1) * 255).astype(np.uint8)
    else:
        edges = batch["edges"]
    rows = []
    for i in range(len(fake)):
        e = np.repeat(edges[i][..., None], 3, axis=2)
        rows.append(np.concatenate([colourise_labels(batch["labels"][i]), batch["images"][i],
                                    fake[i], e], axis=1))
    return np.concatenate(rows, axis=0)


def write_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())


# ---------------------------------------------------------------------------- log
def _rewrite_log(path: Path, upto_step: int) -> None:
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


def _append_log(path: Path, row: dict) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in LOG_COLUMNS})


# ---------------------------------------------------------------------------- trainer
class Trainer:
    """Owns the model, both Adam optimisers and the step counter."""

    def __init__(self, cfg: Config, jt, height: int, width: int, log: Callable[[str], None]):
        from .model.ganmodel import GANModel

        self.cfg, self.jt = cfg, jt
        jt.set_global_seed(cfg.seed, different_seed_for_mpi=False)  # same init on every rank
        self.model = GANModel(cfg, height, width, log=log)
        t = cfg.train
        self.opt_g = jt.optim.Adam(self.model.generator_parameters(), t.lr_g,
                                   betas=(t.beta1, t.beta2))
        self.opt_d = jt.optim.Adam(self.model.discriminator_parameters(), t.lr_d,
                                   betas=(t.beta1, t.beta2))
        self.step = 0
        self.data_hash = ""  # manifest hash of the preprocess folder trained on

    def optimizers(self) -> dict:
        """Checkpoint prefix -> (optimiser, parameter names)."""
        from .model.normalization import is_buffer

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
        self.opt_g.lr = t.lr_g * lr_scale
        self.opt_d.lr = t.lr_d * lr_scale
        g_losses, outputs = self.model.generator_step(batch)
        self.opt_g.step(self.model.weighted_sum(g_losses))
        d_losses = self.model.discriminator_step(batch, outputs)
        self.opt_d.step(self.model.weighted_sum(d_losses))
        self.model.update_ema(ema_decay(self.step, t.ema_decay))
        jt.sync_all()
        self.step += 1
        return {k: float(v.item()) for k, v in {**g_losses, **d_losses}.items()}

    def state_arrays(self) -> dict:
        from .model.ganmodel import NETWORKS

        arrays = network_state(self.model, [n for n in NETWORKS if n in self.model.networks()])
        for prefix, (opt, names) in self.optimizers().items():
            arrays.update(optimizer_state(prefix, opt, names))
        return arrays

    def header(self, steps_per_epoch: int) -> dict:
        cfg = self.cfg
        return {
            "step": self.step,
            "epoch": self.step // steps_per_epoch,
            "seed": cfg.seed,
            "kind": cfg.model.kind,
            "resume_hash": resume_hash(cfg),
            "config_hash": config_hash(cfg, *TRAINING_SECTIONS),
            "networks": sorted(self.model.networks()),
            "optimizers": {p: {"n_step": o.n_step} for p, (o, _) in self.optimizers().items()},
            "rng": {"scheme": "jt.set_global_seed(seed + step) every step; data order and flips"
                              " from numpy default_rng([seed, epoch])", "seed": cfg.seed},
            "data": {"height": cfg.data.height, "width": cfg.data.width,
                     "manifest_hash": self.data_hash},
        }

    def save(self, path: Path, steps_per_epoch: int) -> None:
        self.jt.sync_all(True)
        save_checkpoint(path, self.state_arrays(), self.header(steps_per_epoch))

    def load(self, path: Path) -> dict:
        from .model.ganmodel import NETWORKS

        arrays, header = read_checkpoint(path)
        if header.get("resume_hash") != resume_hash(self.cfg):
            raise ConfigError(
                f"{path} was made with a different training config; resume with the run's own"
                " config (its config.resolved.toml), or train into a new --out folder")
        if header.get("data", {}).get("manifest_hash") != self.data_hash:
            raise ArtifactError(
                f"{path} was trained on other preprocessed data than the --data folder given now;"
                " resume with the same --data, or train into a new --out folder")
        load_into(path, arrays, header, self.model, NETWORKS, self.optimizers())
        self.step = int(header["step"])
        return header


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


class TrainingInterrupted(Exception):
    """Raised after a signal-triggered checkpoint was saved; carries the checkpoint path."""


def run_train(cfg: Config, data_dir: str | Path, out_dir: str | Path, resume: bool = False,
              on_step: Callable[[int], None] | None = None, progress: bool = True) -> dict:
    """Train into `out_dir` from the preprocess folder `data_dir`; return the run's manifest.

    resume: continue from the newest checkpoint in out_dir (a fresh start when there is none).
    Without it, a folder that already holds checkpoints is refused. on_step(step) is called
    after every step (tests use it). SIGINT/SIGTERM save a checkpoint and raise
    TrainingInterrupted.
    """
    from .jt_env import setup_jittor

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    read_manifest(data_dir, "preprocess")
    existing = latest_checkpoint(out_dir)
    if existing is not None and not resume:
        raise ArtifactError(
            f"{out_dir} already holds a training run ({existing.name}); pass --resume to continue"
            " it, or choose another --out folder")
    limit_cpu_threads()
    jt = setup_jittor(cfg.device)
    rank = jt.rank if jt.in_mpi else 0
    world = jt.world_size if jt.in_mpi else 1
    writer = rank == 0

    def log(msg: str) -> None:
        if writer:
            from tqdm import tqdm

            tqdm.write(msg, file=sys.stderr)

    data = TrainData(data_dir, cfg, rank, world)
    spe = data.steps_per_epoch
    trainer = Trainer(cfg, jt, cfg.data.height, cfg.data.width, log)
    trainer.data_hash = manifest_hash(data_dir)
    if existing is not None:
        trainer.load(existing)
        log(f"resuming from {existing} (step {trainer.step})")
    end = total_steps(cfg, spe)
    ckpt_dir = out_dir / CKPT_DIR
    log_path = out_dir / "train_log.csv"
    if writer:
        prepare_output_dir(out_dir)
        ckpt_dir.mkdir(exist_ok=True)
        (out_dir / "samples").mkdir(exist_ok=True)
        atomic_write_text(out_dir / "config.resolved.toml", config_to_toml(cfg))
        _rewrite_log(log_path, trainer.step)

    # Fixed samples for the grids: the first validation items (training items if none).
    split = "val" if data.val and len(data.val["labels"]) else "train"
    count = len((data.val if split == "val" else data.train)["labels"])
    sample_idx = np.arange(min(SAMPLE_ROWS, count))
    sample_batch = data.batch(sample_idx, np.zeros(len(sample_idx), bool), split)

    def save(step_path: Path) -> None:
        if writer:
            trainer.save(step_path, spe)
            for _, old in list_checkpoints(out_dir)[: -cfg.train.keep_checkpoints]:
                old.unlink(missing_ok=True)

    pool = ThreadPoolExecutor(max_workers=1) if cfg.train.num_workers > 0 else None
    bar = None
    if progress and writer:
        from tqdm import tqdm

        bar = tqdm(total=end, initial=trainer.step, unit="step", dynamic_ncols=True)
    window_t, window_n = time.perf_counter(), 0
    started = time.perf_counter()
    last_losses: dict = {}
    try:
        with _StopFlag() as stop:
            while trainer.step < end:
                epoch, offset = divmod(trainer.step, spe)
                indices, flips = data.epoch_plan(epoch)
                load = lambda i: data.batch(indices[i], flips[i])  # noqa: E731
                pending = pool.submit(load, offset) if pool else None
                for i in range(offset, spe):
                    if trainer.step >= end:
                        break
                    nb = pending.result() if pool else load(i)
                    if pool and i + 1 < spe:
                        pending = pool.submit(load, i + 1)
                    scale = lr_factor(trainer.step, spe, cfg.train.epochs, cfg.train.decay_epochs)
                    last_losses = trainer.train_step(batch_to_vars(jt, nb, cfg.model.num_classes),
                                                     scale)
                    step = trainer.step
                    window_n += cfg.train.batch_size * world
                    if bar is not None:
                        bar.update(1)
                    if writer and (step % cfg.train.log_every == 0 or step == end):
                        now = time.perf_counter()
                        ips = window_n / max(now - window_t, 1e-9)
                        window_t, window_n = now, 0
                        _append_log(log_path, {
                            "step": step, "epoch": (step - 1) // spe,
                            "lr_g": cfg.train.lr_g * scale, "lr_d": cfg.train.lr_d * scale,
                            **{k: f"{v:.5f}" for k, v in last_losses.items()},
                            "images_per_s": f"{ips:.2f}",
                            "seconds": f"{now - started:.1f}"})
                        if bar is not None:
                            bar.set_postfix({**{k: f"{v:.3f}" for k, v in last_losses.items()},
                                             "img/s": f"{ips:.1f}"}, refresh=False)
                    if writer and (step % cfg.train.sample_every == 0 or step == end):
                        grid = sample_grid(trainer.model, jt, sample_batch,
                                           cfg.model.num_classes, cfg.generate.output)
                        write_png(out_dir / "samples" / f"step_{step:08d}.png", grid)
                    if step % cfg.train.checkpoint_every == 0 or step == end:
                        save(ckpt_dir / checkpoint_name(step))
                    if on_step is not None:
                        on_step(step)
                    if stop.signum:
                        save(ckpt_dir / checkpoint_name(step))
                        raise TrainingInterrupted(
                            f"stopped by signal {stop.signum} at step {step}; checkpoint saved in"
                            f" {ckpt_dir}. Continue with the same command and --resume.")
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    final = ckpt_dir / checkpoint_name(trainer.step)
    if writer:
        if not final.is_file():
            save(final)  # a finished run resumed with nothing left to do still gets its files
        ema_arrays = network_state(trainer.model, [n for n in ("ema_generator", "ema_encoder")
                                                   if n in trainer.model.networks()])
        save_checkpoint(out_dir / EMA_FILE, ema_arrays,
                        {**trainer.header(spe), "optimizers": {}, "networks": sorted(
                            n for n in ("ema_generator", "ema_encoder")
                            if n in trainer.model.networks())})
        manifest = write_manifest(
            out_dir, "train",
            config_hash=config_hash(cfg, *TRAINING_SECTIONS),
            inputs={"data": manifest_hash(data_dir)},
            counts={"steps": trainer.step, "train_images": data.count,
                    "steps_per_epoch": spe, "processes": world},
            extra={"checkpoint": f"{CKPT_DIR}/{final.name}", "ema": EMA_FILE,
                   "kind": cfg.model.kind, "last_losses": last_losses},
        )
    if jt.in_mpi:
        jt.sync_all(True)
    return manifest if writer else {}

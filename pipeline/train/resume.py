"""What a resumed run must share with its checkpoint, and finding the checkpoint to resume.

Everything here reads only: it runs before the run folder is opened (inputs first).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..checkpoint import ResumePoint, list_checkpoints, newest_good_checkpoint
from ..core.config import Config, config_to_dict
from ..core.errors import ArtifactError, ConfigError

# Keys that may change between an interrupted run and its resumption (they do not change the
# trained weights): everything else must match the checkpoint's config.
RESUME_FREE_KEYS = {"device", "train.max_steps", "train.log_every", "train.sample_every",
                    "train.checkpoint_every", "train.keep_checkpoints", "train.num_workers",
                    "train.score_every", "train.score_maps", "train.score_metrics"}
TRAINING_SECTIONS = ("seed", "data", "model", "loss", "train")


def resume_config(cfg: Config) -> dict[str, Any]:
    """The flat `section.key -> value` table a resumed run must share with its checkpoint."""
    flat: dict[str, Any] = {}
    for key, value in config_to_dict(cfg).items():
        if key not in TRAINING_SECTIONS:
            continue
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return {k: v for k, v in flat.items() if k not in RESUME_FREE_KEYS}


def resume_hash(cfg: Config) -> str:
    """Hash of the config keys a resumed run must share with its checkpoint."""
    return hashlib.sha256(json.dumps(resume_config(cfg), sort_keys=True).encode()).hexdigest()


def config_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """'key: saved -> now' for every key whose value differs (missing on a side: '(none)')."""
    out = []
    for key in sorted(set(saved) | set(now)):
        if saved.get(key, "(none)") != now.get(key, "(none)"):
            out.append(f"{key}: {saved.get(key, '(none)')!r} -> {now.get(key, '(none)')!r}")
    return out


def check_world_size(path: Path, header: dict, world: int, allow_world_change: bool) -> None:
    """ConfigError when the checkpoint was trained by another number of processes, unless
    `allow_world_change`. (A header without world_size predates the check: not refused.)"""
    saved = header.get("world_size")
    if saved is None or int(saved) == world or allow_world_change:
        return
    how = "one process, without mpirun" if saved == 1 else f"`mpirun -np {saved}` (make train NP={saved})"
    raise ConfigError(
        f"{path} was trained by {saved} process(es), this run has {world}: the world size is part"
        f" of the run (the data order, the effective batch and the schedule depend on it). Resume"
        f" it with {how}; or start a new run into another --out folder; or pass"
        f" --allow-world-change to continue it with {world}, the data order and schedule"
        " re-derived for the new world size (no longer step-exact with an uninterrupted run)")


def check_resume_identity(path: Path, header: dict, cfg: Config, data_hash: str,
                          world: int | None = None, allow_world_change: bool = False) -> None:
    """Raise ConfigError / ArtifactError unless the checkpoint at `path` (its header) was made
    with this training config and this preprocessed data and, when `world` is given, by that
    many processes (or `allow_world_change`)."""
    if header.get("resume_hash") != resume_hash(cfg):
        saved = header.get("resume_config")
        diff = config_differences(saved, resume_config(cfg)) if isinstance(saved, dict) else []
        what = ("; it differs in " + ", ".join(diff[:6]) + (" ..." if len(diff) > 6 else "")
                if diff else "")
        raise ConfigError(
            f"{path} was made with a different training config{what}. Resume with the run's own"
            " config (its config.resolved.toml), or train into a new --out folder")
    if header.get("data", {}).get("manifest_hash") != data_hash:
        raise ArtifactError(
            f"{path} was trained on other preprocessed data than the --data folder given now;"
            " resume with the same --data, or train into a new --out folder")
    if world is not None:
        check_world_size(path, header, world, allow_world_change)


def find_resume_point(out: Path, cfg: Config, data_hash: str, resume: bool, world: int = 1,
                      allow_world_change: bool = False) -> ResumePoint | None:
    """The checkpoint a run into `out` starts from (None: a fresh start), checked against this
    config, data and world size (see check_resume_identity). Without `resume` a folder that
    holds checkpoints is refused; with it a bad newest checkpoint is passed over for the newest
    good one (listed in `.bad`)."""
    found = list_checkpoints(out)
    if found and not resume:
        raise ArtifactError(
            f"{out} already holds a training run ({found[-1][1].name}); pass --resume to continue"
            " it, or choose another --out folder")
    if not resume:
        return None
    point = newest_good_checkpoint(out)
    if point is not None:
        check_resume_identity(point.path, point.header, cfg, data_hash, world,
                              allow_world_change)
    return point

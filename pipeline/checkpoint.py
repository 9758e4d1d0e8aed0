"""Training checkpoints: safetensors of numpy arrays plus a JSON header (never a pickle).

A checkpoint holds every network of the GANModel (generator, encoder, discriminator and the EMA
copies, spectral-norm `u` buffers included), both Adam optimisers' moments and step counts, and
a header with the training step, epoch, seed and the hash of the config it was made with.
Randomness is derived from (seed, step) and (seed, epoch) (see pipeline.train), so the header's
step and seed *are* the RNG state: resuming replays exactly the same random numbers.

Loading checks every key and shape and raises ArtifactError naming the differences.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from .core.artifacts import atomic_path
from .core.errors import ArtifactError

FORMAT = "landscape-checkpoint"
VERSION = 1
CKPT_DIR = "checkpoints"
CKPT_RE = re.compile(r"^step_(\d{8})\.safetensors$")
EMA_FILE = "ema_generator.safetensors"


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.safetensors"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every finished checkpoint in run_dir/checkpoints, oldest first."""
    folder = Path(run_dir) / CKPT_DIR
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = CKPT_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


# ---------------------------------------------------------------------------- state <-> arrays
def network_state(model, names: Iterable[str]) -> dict[str, np.ndarray]:
    """'<network>.<var>' -> float32 array for the named networks of a GANModel."""
    out = {}
    nets = model.networks()
    for name in names:
        for key, var in nets[name].state_dict().items():
            out[f"{name}.{key}"] = np.ascontiguousarray(var.numpy(), dtype=np.float32)
    return out


def optimizer_state(prefix: str, opt, param_names: list[str]) -> dict[str, np.ndarray]:
    """Adam moments as '<prefix>.m.<param>' / '<prefix>.v.<param>' arrays."""
    out = {}
    pg = opt.param_groups[0]
    for name, m, v in zip(param_names, pg["m"], pg["values"]):
        out[f"{prefix}.m.{name}"] = np.ascontiguousarray(m.numpy(), dtype=np.float32)
        out[f"{prefix}.v.{name}"] = np.ascontiguousarray(v.numpy(), dtype=np.float32)
    return out


def _expected_shapes(model, networks, optimizers) -> dict[str, tuple]:
    shapes = {}
    nets = model.networks()
    for name in networks:
        if name not in nets:
            continue
        for key, var in nets[name].state_dict().items():
            shapes[f"{name}.{key}"] = tuple(var.shape)
    for prefix, (opt, names) in optimizers.items():
        for name, p in zip(names, opt.param_groups[0]["params"]):
            shapes[f"{prefix}.m.{name}"] = tuple(p.shape)
            shapes[f"{prefix}.v.{name}"] = tuple(p.shape)
    return shapes


# ---------------------------------------------------------------------------- save / load
def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], header: dict) -> None:
    """Write arrays + header atomically to `path` (.safetensors)."""
    from safetensors.numpy import save_file

    header = {"format": FORMAT, "version": VERSION, **header}
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata={"header": json.dumps(header, sort_keys=True)})


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, header) of a checkpoint file; ArtifactError when it is not one."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
        arrays = load_file(str(path))
        header = json.loads(meta.get("header", "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a readable checkpoint ({exc}); delete it and resume"
                            " from an older one, or retrain") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise ArtifactError(f"{path}: not a {FORMAT} v{VERSION} file (header {header.get('format')}"
                            f" v{header.get('version')})")
    return arrays, header


def check_arrays(path, arrays: dict, expected: dict[str, tuple]) -> None:
    """Raise ArtifactError unless `arrays` has exactly the expected keys and shapes."""
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    wrong = sorted(k for k in set(expected) & set(arrays)
                   if tuple(arrays[k].shape) != tuple(expected[k]))
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {', '.join(extra[:3])})")
        if wrong:
            parts.append("shape mismatch: " + ", ".join(
                f"{k} {tuple(arrays[k].shape)} vs {tuple(expected[k])}" for k in wrong[:3]))
        raise ArtifactError(
            f"{path}: does not fit this model ({'; '.join(parts)}). It was made with another"
            " model config: use the run's config.resolved.toml or another checkpoint.")


def load_into(path, arrays: dict, header: dict, model, networks: Iterable[str],
              optimizers: dict | None = None) -> None:
    """Copy checked arrays into the model's named networks and the optimisers.

    optimizers: prefix -> (jittor Adam, parameter names). Every key and shape is checked first;
    nothing is changed when the check fails.
    """
    import jittor as jt

    optimizers = optimizers or {}
    networks = [n for n in networks if n in model.networks()]
    wanted = set(networks) | set(optimizers)
    # A full training checkpoint also serves a generation-only load: other parts are ignored.
    arrays = {k: v for k, v in arrays.items() if k.split(".", 1)[0] in wanted}
    check_arrays(path, arrays, _expected_shapes(model, networks, optimizers))
    nets = model.networks()
    for name in networks:
        for key, var in nets[name].state_dict().items():
            var.update(jt.array(arrays[f"{name}.{key}"]))
    for prefix, (opt, names) in optimizers.items():
        pg = opt.param_groups[0]
        for name, m, v in zip(names, pg["m"], pg["values"]):
            m.update(jt.array(arrays[f"{prefix}.m.{name}"]))
            v.update(jt.array(arrays[f"{prefix}.v.{name}"]))
        opt.n_step = int(header["optimizers"][prefix]["n_step"])
    jt.sync_all(True)

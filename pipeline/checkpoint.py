"""Training checkpoints: safetensors of numpy arrays plus a JSON header (never a pickle).

A checkpoint holds every network of the GANModel (generator, encoder, discriminator and the EMA
copies, spectral-norm `u` buffers included), both Adam optimisers' moments and step counts, and
a header with the training step, epoch, seed and the hash of the config it was made with.
Randomness is derived from (seed, step) and (seed, epoch) (see pipeline.train), so the header's
step and seed *are* the RNG state: resuming replays exactly the same random numbers.

Every file carries a sha256 of its tensors (names, dtypes, shapes, bytes) in the safetensors
metadata. Reading verifies it and refuses NaN/Inf values, so a bit-flipped or diverged file is
never loaded silently; loading into a model checks every key and shape and raises ArtifactError
naming the differences.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from .core.artifacts import atomic_path
from .core.errors import ArtifactError

FORMAT = "landscape-checkpoint"
VERSION = 2  # 2: the tensors' sha256 in the metadata
READS = (1, 2)
CHECKSUM_KEY = "tensors_sha256"
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
def tensors_checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.name}\0{list(a.shape)}\0".encode())
        h.update(a.tobytes())  # safetensors is little-endian, as numpy on every supported host
    return h.hexdigest()


def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], header: dict) -> None:
    """Write arrays + header + the tensors' checksum atomically to `path` (.safetensors)."""
    from safetensors.numpy import save_file

    header = {"format": FORMAT, "version": VERSION, **header}
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    metadata = {"header": json.dumps(header, sort_keys=True),
                CHECKSUM_KEY: tensors_checksum(arrays)}
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata=metadata)


def _read_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import SafetensorError, safe_open
    from safetensors.numpy import load_file

    try:
        with safe_open(str(path), framework="np") as f:
            meta = f.metadata() or {}
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: not a readable checkpoint ({exc}); delete it and resume"
                            " from an older one, or retrain") from None


def _check_integrity(path: Path, arrays: dict, meta: dict, header: dict) -> None:
    """Raise ArtifactError when the tensors do not match their checksum or hold NaN/Inf."""
    recorded = meta.get(CHECKSUM_KEY)
    if recorded is None and header.get("version", 0) >= 2:
        raise ArtifactError(f"{path}: its tensor checksum is missing (damaged or edited file);"
                            " resume from an older checkpoint, or retrain")
    if recorded is not None and recorded != tensors_checksum(arrays):
        raise ArtifactError(f"{path}: corrupt, its tensors do not match their checksum"
                            " (damaged on disk or in transfer); use an older checkpoint, or retrain")
    bad = [k for k in sorted(arrays) if arrays[k].dtype.kind == "f" and not np.isfinite(arrays[k]).all()]
    if bad:
        raise ArtifactError(f"{path}: {len(bad)} tensor(s) hold NaN/Inf values (e.g. {', '.join(bad[:3])}):"
                            " training diverged or the file is damaged; use an older checkpoint,"
                            " or retrain (a lower learning rate may help)")


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, header) of a checkpoint file, its checksum verified and its values finite;
    ArtifactError naming the file otherwise. (Files of version 1 carry no checksum: only the
    NaN/Inf check applies to them.)"""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: checkpoint not found")
    arrays, meta = _read_file(path)
    try:
        header = json.loads(meta.get("header", "{}"))
    except ValueError as exc:
        raise ArtifactError(f"{path}: not a readable checkpoint (header: {exc}); delete it and"
                            " resume from an older one, or retrain") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT or header.get("version") not in READS:
        header = header if isinstance(header, dict) else {}
        raise ArtifactError(f"{path}: not a {FORMAT} v{VERSION} file (header {header.get('format')}"
                            f" v{header.get('version')})")
    _check_integrity(path, arrays, meta, header)
    return arrays, header


@dataclass
class ResumePoint:
    """The newest good checkpoint of a run and the newer ones that failed to load (path, why)."""

    path: Path
    arrays: dict[str, np.ndarray]
    header: dict
    bad: list[tuple[Path, str]] = field(default_factory=list)


def newest_good_checkpoint(run_dir: str | Path) -> ResumePoint | None:
    """The newest checkpoint of `run_dir` that reads and verifies, and the bad ones newer than
    it; None when the run has no checkpoint. ArtifactError when every checkpoint is bad."""
    bad: list[tuple[Path, str]] = []
    for _, path in reversed(list_checkpoints(run_dir)):
        try:
            arrays, header = read_checkpoint(path)
        except ArtifactError as exc:
            bad.append((path, str(exc)))
            continue
        return ResumePoint(path, arrays, header, bad)
    if bad:
        raise ArtifactError(f"{run_dir}: no checkpoint can be resumed from ({len(bad)} bad;"
                            f" newest: {bad[0][1]}). Train into a new --out folder.")
    return None


def prune_checkpoints(run_dir: str | Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` checkpoints, and only after the newest one has been
    read back and verified (so a good checkpoint is never pruned for a bad one). Returns the
    removed paths; ArtifactError (nothing removed) when the newest does not verify."""
    found = list_checkpoints(run_dir)
    if len(found) <= keep:
        return []
    read_checkpoint(found[-1][1])
    removed = [path for _, path in found[: len(found) - max(keep, 1)]]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


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

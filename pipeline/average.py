"""`landscape average`: the EMA generator (and EMA encoder) weights of a run's last K checkpoints
averaged into one weights file (the rank-4 entry's trick: averaging late checkpoints smooths
the weights like a longer EMA).

    run_average(run_dir, last=3)  ->  RUN/average.safetensors

Every checkpoint is read through `read_checkpoint` (checksum verified, NaN/Inf refused) and must
hold the same EMA tensors with the same shapes; anything else is refused before a file is
written. The mean is taken in float64 in step order and stored as float32: the same checkpoints
give the same bytes. The result is an ordinary checkpoint (checksummed, header of the newest
checkpoint plus an "averaged" record) that `generate --checkpoint` and `sweep` read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import CKPT_DIR, EMA_FILE, list_checkpoints, read_checkpoint, save_checkpoint
from .core.artifacts import FolderLock, StageResult, os_errors
from .core.errors import ArtifactError, ConfigError

AVERAGE_FILE = "average.safetensors"
EMA_NETWORKS = ("ema_generator", "ema_encoder")


def ema_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The EMA generator's and encoder's tensors of a checkpoint's arrays."""
    return {k: v for k, v in arrays.items() if k.split(".", 1)[0] in EMA_NETWORKS}


def average_arrays(sets: list[dict[str, np.ndarray]], names: list[str]) -> dict[str, np.ndarray]:
    """The element-wise mean of `sets` (float tensors: float64 sum in the given order, stored as
    their dtype); a non-float tensor must be equal in every set. names: one label per set, for
    the messages. ArtifactError when keys, shapes or non-float values differ."""
    if not sets:
        raise ValueError("average_arrays needs at least one set of arrays")
    first = sets[0]
    for other, name in zip(sets[1:], names[1:]):
        missing, extra = sorted(set(first) - set(other)), sorted(set(other) - set(first))
        shapes = sorted(k for k in set(first) & set(other) if first[k].shape != other[k].shape)
        if missing or extra or shapes:
            what = (f"{len(missing)} tensor(s) missing (e.g. {', '.join(missing[:3])})" if missing
                    else f"{len(extra)} extra tensor(s) (e.g. {', '.join(extra[:3])})" if extra
                    else "shapes differ: " + ", ".join(f"{k} {first[k].shape} vs {other[k].shape}"
                                                      for k in shapes[:3]))
            raise ArtifactError(f"{name}: does not match {names[0]} ({what}); only checkpoints of"
                                " one model config can be averaged")
    out = {}
    for key in sorted(first):
        if first[key].dtype.kind == "f":
            total = np.zeros(first[key].shape, np.float64)
            for arrays in sets:
                total += arrays[key]
            out[key] = (total / len(sets)).astype(first[key].dtype)
        else:
            differ = [n for a, n in zip(sets, names) if not np.array_equal(a[key], first[key])]
            if differ:
                raise ArtifactError(f"{differ[0]}: its {key} ({first[key].dtype}) differs from"
                                    f" {names[0]}'s; integer tensors cannot be averaged")
            out[key] = first[key]
    return out


def _chosen(run_dir: Path, last: int) -> list[tuple[int, Path]]:
    """The last `last` checkpoints of the run, oldest first; errors say how many there are."""
    if last < 1:
        raise ConfigError(f"--last {last}: must be >= 1")
    found = list_checkpoints(run_dir)
    if not found:
        raise ArtifactError(f"{run_dir}: no checkpoints in {CKPT_DIR}/; train the run first")
    if len(found) < last:
        raise ArtifactError(f"{run_dir}: --last {last} but only {len(found)} checkpoint(s) are kept"
                            f" (steps {', '.join(str(s) for s, _ in found)}); lower --last, or"
                            " train with a larger train.keep_checkpoints")
    return found[-last:]


def _check_out(run_dir: Path, out: Path) -> None:
    """Refuse to overwrite anything but an earlier average (a checkpoint, the EMA file, a
    foreign file)."""
    protected = {p.resolve() for _, p in list_checkpoints(run_dir)} | {(run_dir / EMA_FILE).resolve()}
    if out.resolve() in protected:
        raise ArtifactError(f"--out {out}: is one of the run's own weights files; choose another name")
    if out.exists():
        try:
            _, header = read_checkpoint(out)
        except ArtifactError:
            header = {}
        if not out.is_file() or "averaged" not in header:
            raise ArtifactError(f"--out {out}: exists and is not an earlier `landscape average`"
                                " file; choose another name (or move it away yourself)")


def run_average(run_dir: str | Path, last: int, out: str | Path | None = None) -> StageResult:
    """Average the EMA weights of the run's last `last` checkpoints into `out` (default
    RUN/average.safetensors). Returns StageResult(the file's header, summary lines). Every
    checkpoint is read and checked before anything is written; the run's lock is held (a
    training run writing into it is refused, naming it)."""
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / AVERAGE_FILE
    chosen = _chosen(run_dir, last)
    _check_out(run_dir, out)
    with os_errors(run_dir), FolderLock(run_dir, "average"):
        sets, headers = [], []
        for _, path in chosen:
            arrays, header = read_checkpoint(path)
            sets.append(ema_arrays(arrays))
            headers.append(header)
            if not sets[-1]:
                raise ArtifactError(f"{path}: holds no EMA generator weights")
        names = [str(p) for _, p in chosen]
        averaged = average_arrays(sets, names)
        header = {k: v for k, v in headers[-1].items() if k not in ("format", "version")}
        header.update(optimizers={}, networks=sorted({k.split(".", 1)[0] for k in averaged}),
                      averaged={"steps": [s for s, _ in chosen], "files": [p.name for _, p in chosen],
                                "rule": "element-wise mean of the EMA tensors (float64 sum, float32)"})
        save_checkpoint(out, averaged, header)
    steps = ", ".join(str(s) for s, _ in chosen)
    return StageResult(header, [f"average: EMA weights of {len(chosen)} checkpoint(s) (steps {steps})"
                                f" -> {out}"])

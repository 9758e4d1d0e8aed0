"""Artifact folders, atomic writes and stage manifests.

Every stage writes into its own folder and finishes with `manifest.json`, written last and
atomically: a folder without one is unfinished. A stage reading another stage's folder calls
`read_manifest`, which refuses a missing, foreign, stale or tampered folder and says which
command produces it.

Pure standard library: both `pipeline` (Jittor) and `evaluation` (PyTorch) use it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import ArtifactError, StorageError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"

# Which command makes each stage's folder: quoted in every "missing or stale" message.
PRODUCED_BY = {
    "sample-data": "landscape sample-data --out DIR (or `make demo`)",
    "preprocess": "landscape preprocess --data DIR --out artifacts/data/<id> (or `make preprocess`)",
    "train": "landscape train --data artifacts/data/<id> --out artifacts/runs/<exp> (or `make train`)",
    "generate": "landscape generate --run artifacts/runs/<exp> ... (or `make submit` / `make score`)",
    "evaluate": "landscape evaluate --generated DIR ... (or `make score`)",
    "style-oracle": "landscape style-oracle --data artifacts/data/<id> --split val --out DIR (or `make demo`)",
    "weights": "landscape weights --dir weights (or `make weights`)",
    "fit-segformer": "landscape fit-segformer --data artifacts/data/<id> --out DIR",
    "package": "landscape package --generated DIR --labels DIR --out FILE.zip (or `make submit`)",
}


@dataclass(frozen=True)
class StageResult:
    """What every `run_<stage>` returns: the manifest it wrote (or found up to date) and the lines
    its command prints."""

    manifest: dict
    summary: list[str] = field(default_factory=list)
    up_to_date: bool = False


# ---------------------------------------------------------------------------- atomic writes
_UMASK = os.umask(0)  # read once (os.umask can only be read by setting it), then restored
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the result should read like any new file
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- output folders
# The one set of rules for every stage's output folder (README "Safety"):
#   - a command only replaces or writes into a folder that is new, empty, or made by the same
#     stage (its manifest, or the owner mark an unfinished run leaves, says so);
#   - it holds an exclusive lock on the folder for the whole run (a second run is refused and
#     told who holds it);
#   - it checks its inputs before it touches the output (callers: check, then open the folder);
#   - it removes its own temp files, including those of an earlier killed run of the same stage.
OWNER_MARK = ".landscape-stage"


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _owner(out: Path) -> str | None:
    """The stage that made `out` (manifest, else owner mark); '' for a new/empty folder; None
    for a folder of something else (user files, another program)."""
    if not out.exists():
        return ""
    if not out.is_dir():
        return None
    man = out / MANIFEST
    if man.is_file():
        try:
            stage = json.loads(man.read_text(encoding="utf-8")).get("stage")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, OSError):
            stage = None
        return stage if isinstance(stage, str) else None
    mark = out / OWNER_MARK
    if mark.is_file():
        return mark.read_text(encoding="utf-8").strip() or None
    if not any(out.iterdir()):
        return ""
    return None


def check_replaceable(out: str | Path, stage: str) -> None:
    """Raise ArtifactError unless `out` is new, empty or a folder that `stage` made."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ArtifactError(f"{out}: exists and is not a folder; choose another --out")
    owner = _owner(out)
    if owner in ("", stage):
        return
    what = (f"a '{owner}' output (made by `{PRODUCED_BY.get(owner, owner)}`)" if owner
            else "a folder this stage did not make (no manifest of its own)")
    raise ArtifactError(f"{out}: is {what}; `{stage}` only replaces its own folders. "
                        "Choose another --out (or move the folder away yourself).")


class FolderLock:
    """An exclusive advisory lock on an output folder (a hidden file beside it, `flock`).

    Released when the process ends, however it ends; a second holder is refused with the first
    one's pid, host, stage and start time.
    """

    def __init__(self, out: str | Path, stage: str):
        self.out, self.stage = Path(out), stage
        self.path = _lock_path(self.out)
        self._fh = None

    def acquire(self) -> "FolderLock":
        import fcntl
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise ArtifactError(f"{self.out}: in use by {holder}; wait for it to finish or stop "
                                "it (one writer per output folder)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} (`landscape {self.stage}`, "
                 f"since {time.strftime('%H:%M:%S')})\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock; the file stays (harmless, hidden)
            self._fh = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def remove_temp_files(folder: str | Path) -> int:
    """Delete the `.*.tmp` files and folders that killed writers left in `folder`; return how
    many. Call only while holding the folder's lock (then none of them is live)."""
    folder = Path(folder)
    n = 0
    if not folder.is_dir():
        return 0
    for p in folder.rglob(".*.tmp"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    return n


def _leftovers(out: Path) -> list[Path]:
    """Temp and swap folders of earlier killed `staged_folder` runs for `out`."""
    return [p for p in out.parent.glob(f".{out.name}.*") if p.suffix in (".tmp", ".old") and p.is_dir()]


@contextlib.contextmanager
def claim_folder(out: str | Path, stage: str) -> Iterator[Path]:
    """Open `out` for a stage that writes in place (train, generate, evaluate: resumable work).

    Checks ownership, takes the lock, marks the folder as the stage's own (so an unfinished run
    is recognised), removes killed writers' temp files and drops an old manifest (a crash then
    leaves the folder 'unfinished'). Yields the folder. OS errors become ArtifactError.
    """
    out = Path(out).resolve()
    check_replaceable(out, stage)
    with os_errors(out), FolderLock(out, stage):
        check_replaceable(out, stage)  # again, now that no other writer can change it
        out.mkdir(parents=True, exist_ok=True)
        remove_temp_files(out)
        atomic_write_text(out / OWNER_MARK, stage + "\n")
        (out / MANIFEST).unlink(missing_ok=True)
        yield out


@contextlib.contextmanager
def staged_folder(out: str | Path, stage: str) -> Iterator[Path]:
    """Build a stage's whole output in a temp folder beside `out`, then swap it in.

        with staged_folder(out, stage="preprocess") as tmp:
            ... write files into tmp ...
            write_manifest(tmp, "preprocess", ...)   # last

    `out` is replaced only if the block succeeds (and only if it is new, empty or the same
    stage's folder); on any error the temp folder is removed and `out` is untouched. The lock is
    held throughout; leftovers of earlier killed runs are removed first. The result has ordinary
    permissions (umask), not mkdtemp's 0700.
    """
    out = Path(out).resolve()
    check_replaceable(out, stage)
    with os_errors(out), FolderLock(out, stage):
        check_replaceable(out, stage)
        for p in _leftovers(out):
            shutil.rmtree(p, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        try:
            os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private; the result is an ordinary folder
            yield tmp
            if not (tmp / MANIFEST).is_file():
                raise RuntimeError(f"staged_folder({stage}): the block wrote no {MANIFEST}")
            old = out.parent / f".{out.name}.{os.getpid()}.old"
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


_OS_CAUSES = {
    errno.EACCES: "permission denied (choose a folder you can write, or fix its permissions)",
    errno.EPERM: "operation not permitted (choose a folder you can write)",
    errno.ENOSPC: "no space left on the device (free some space or choose another disk)",
    errno.EDQUOT: "disk quota exceeded (free some space or choose another disk)",
    errno.ENOTDIR: "a part of the path is a file, not a folder (choose another path)",
    errno.EROFS: "the file system is read-only (choose a writable folder)",
    errno.EEXIST: "something already exists there (choose another path)",
}


def os_error_message(exc: OSError, where: str | Path | None = None) -> str:
    """One line for an operating-system error: the path and the cause in words."""
    path = exc.filename or where or "?"
    cause = _OS_CAUSES.get(exc.errno, exc.strerror or str(exc))
    if exc.errno == errno.EEXIST and os.path.isfile(path):
        cause = "is a file where a folder is needed (choose another path)"
    return f"{path}: {cause}"


@contextlib.contextmanager
def os_errors(where: str | Path) -> Iterator[None]:
    """Turn an OSError raised inside the block into an ArtifactError naming the path and cause."""
    try:
        yield
    except (ArtifactError, BlockingIOError):
        raise
    except OSError as exc:
        raise StorageError(os_error_message(exc, where)) from None


def prepare_output_dir(path: str | Path) -> Path:
    """Create a stage's output folder; drop an old manifest so a crash leaves it 'unfinished'.
    (Low-level: stages use `claim_folder`, which adds the ownership check and the lock.)"""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MANIFEST).unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------------------- manifests
def _listing(folder: Path, with_hashes: bool) -> dict[str, dict]:
    files = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name == MANIFEST and p.parent == folder:
            continue
        if p.name.startswith(".") and (p.name.endswith(".tmp") or p.name == OWNER_MARK):
            continue  # a writer's unfinished temp file, or the owner mark
        rel = p.relative_to(folder).as_posix()
        entry = {"size": p.stat().st_size}
        if with_hashes:
            entry["sha256"] = sha256_file(p)
        files[rel] = entry
    return files


def write_manifest(
    folder: str | Path,
    stage: str,
    *,
    config_hash: str = "",
    inputs: dict[str, str] | None = None,
    counts: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
    hash_files: bool = True,
) -> dict:
    """Write `folder/manifest.json` last and atomically; return it.

    inputs: name -> manifest hash (`manifest_hash`) of each input folder, so that a later reader
    can tell when an input changed after this stage ran. The file list records every file's size
    and (with `hash_files`) its sha256.
    """
    folder = Path(folder)
    if stage not in PRODUCED_BY:
        raise ValueError(f"unknown stage {stage!r}")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config_hash": config_hash,
        "inputs": dict(inputs or {}),
        "counts": dict(counts or {}),
        "extra": dict(extra or {}),
        "files": _listing(folder, hash_files),
    }
    atomic_write_json(folder / MANIFEST, manifest)
    return manifest


def manifest_hash(folder: str | Path) -> str:
    """sha256 of a folder's manifest.json bytes: the identity of a finished stage output."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST}; the folder is missing or unfinished")
    return sha256_file(path)


def read_manifest(
    folder: str | Path,
    stage: str | tuple[str, ...],
    *,
    deep: bool = False,
    config_hash: str | None = None,
) -> dict:
    """Load and check a stage folder's manifest; raise `ArtifactError` saying how to remake it.

    Checks: the folder and manifest exist and parse, the schema version and stage match, every
    listed file is present with its recorded size (and sha256 when `deep`), and, when
    `config_hash` is given, that the folder was made with that config.
    """
    folder = Path(folder)
    stages = (stage,) if isinstance(stage, str) else tuple(stage)
    stage = stages[0]  # the one the messages name
    how = f"Run `{PRODUCED_BY.get(stage, stage)}` to (re)make it."
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: folder not found (expected a '{stage}' output). {how}")
    if not path.is_file():
        raise ArtifactError(
            f"{folder}: no {MANIFEST}, so the '{stage}' stage did not finish there. {how}"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc}). {how}") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(
            f"{path}: schema version {manifest.get('schema_version') if isinstance(manifest, dict) else '?'}"
            f", this version reads {SCHEMA_VERSION}. {how}"
        )
    if manifest.get("stage") not in stages:
        raise ArtifactError(
            f"{folder}: this is a '{manifest.get('stage')}' output, expected a '{stage}' output. {how}"
        )
    files = manifest.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
        raise ArtifactError(f"{path}: malformed file list (edited by hand?). {how}")
    problems = []
    for rel, entry in files.items():
        p = folder / rel
        if not p.is_file():
            problems.append(f"{rel} is missing")
        elif p.stat().st_size != entry.get("size"):
            problems.append(f"{rel} changed size")
        elif deep and "sha256" in entry and sha256_file(p) != entry["sha256"]:
            problems.append(f"{rel} changed content")
        if len(problems) >= 5:
            break
    if problems:
        raise ArtifactError(
            f"{folder}: files no longer match its manifest ({'; '.join(problems)}). {how}"
        )
    if config_hash is not None and manifest.get("config_hash") != config_hash:
        raise ArtifactError(
            f"{folder}: made with a different config (hash {str(manifest.get('config_hash'))[:12]},"
            f" now {config_hash[:12]}). {how}"
        )
    return manifest


def check_input_unchanged(
    consumer: dict, name: str, input_folder: str | Path, consumer_folder: str | Path
) -> None:
    """Raise if input `name` changed since the stage that wrote `consumer` manifest read it."""
    recorded = consumer.get("inputs", {}).get(name)
    if recorded is None:
        return
    now = manifest_hash(input_folder)
    if now != recorded:
        raise ArtifactError(
            f"{consumer_folder}: stale, its input '{name}' ({input_folder}) changed after it was"
            f" made. Re-run `{PRODUCED_BY.get(consumer.get('stage', ''), consumer.get('stage'))}`."
        )


def is_up_to_date(folder: str | Path, stage: str, config_hash: str, inputs: dict[str, str]) -> bool:
    """True when `folder` already holds a finished `stage` output of this config and these inputs."""
    try:
        manifest = read_manifest(folder, stage)
    except ArtifactError:
        return False
    return manifest.get("config_hash") == config_hash and manifest.get("inputs") == inputs

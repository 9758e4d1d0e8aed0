"""Stage output folders: the one writer every stage uses, and what it returns.

    with staged_folder(out, stage="preprocess") as tmp: ...   # build, then swap in
    with claim_folder(out, stage="generate") as out: ...      # write in place (resumable)

Also re-exports the atomic writes (`pipeline.core.atomic`) and manifests
(`pipeline.core.manifests`), so a stage imports its file plumbing from this one module.
Pure standard library: both `pipeline` (Jittor) and `evaluation` (PyTorch) use it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .atomic import (_UMASK, atomic_path, atomic_write_bytes, atomic_write_json,  # noqa: F401
                     atomic_write_text, sha256_bytes, sha256_file)
from .errors import ArtifactError, StorageError
from .manifests import (MANIFEST, OWNER_MARK, PRODUCED_BY, SCHEMA_VERSION,  # noqa: F401
                        check_input_unchanged, is_up_to_date, manifest_hash, read_manifest,
                        write_manifest)


@dataclass(frozen=True)
class StageResult:
    """What every `run_<stage>` returns: the manifest it wrote (or found up to date) and the lines
    its command prints."""

    manifest: dict
    summary: list[str] = field(default_factory=list)
    up_to_date: bool = False


# ---------------------------------------------------------------------------- output folders
# The one set of rules for every stage's output folder (README "Safety"):
#   - a command only replaces or writes into a folder that is new, empty, or made by the same
#     stage (its manifest, or the owner mark an unfinished run leaves, says so);
#   - it holds an exclusive lock on the folder for the whole run (a second run is refused and
#     told who holds it);
#   - it checks its inputs before it touches the output (callers: check, then open the folder);
#   - it removes its own temp files, including those of an earlier killed run of the same stage.


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



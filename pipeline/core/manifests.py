"""Stage manifests: `manifest.json`, written last and atomically, is a finished folder's record.

A stage reading another stage's folder calls `read_manifest`, which refuses a missing, foreign,
stale or tampered folder and says which command produces it. Pure standard library.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json, sha256_file
from .errors import ArtifactError

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


OWNER_MARK = ".landscape-stage"  # what an unfinished in-place stage leaves: its owner's name


def _listing(folder: Path, with_hashes: bool, exclude: tuple[str, ...] = ()) -> dict[str, dict]:
    files = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name == MANIFEST and p.parent == folder:
            continue
        if p.parent == folder and any(p.match(pattern) for pattern in exclude):
            continue  # written later by other commands into this folder (not part of the stage)
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
    exclude: tuple[str, ...] = (),
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
        "files": _listing(folder, hash_files, tuple(exclude)),
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

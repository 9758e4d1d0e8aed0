"""Where a pretrained model comes from: a local save_pretrained folder or a hub id."""

from __future__ import annotations

from pathlib import Path


def pretrained_source(source: str) -> str | None:
    """"local" for an existing folder, "hub" for something shaped like a hub id ("org/name") that
    is not a local path, None otherwise (a missing local folder)."""
    path = Path(source)
    if path.is_dir():
        return "local"
    if path.exists() or source.count("/") != 1 or source.startswith((".", "/", "~")):
        return None
    # "weights/segformer" is shaped like a hub id too; a missing local folder of that name is
    # tried on the hub (offline: only the cache), and the caller's error covers both cases
    return "hub"


def weights_file(folder: Path) -> Path | None:
    """The weights file of a save_pretrained folder (safetensors preferred), None if absent."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    return None

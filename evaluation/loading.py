"""Where a pretrained model comes from: a local save_pretrained folder or a hub id."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import try_to_load_from_cache


def pretrained_source(source: str) -> str | None:
    """"local" for an existing folder, "hub" for a hub id ("org/name") already in the local hub
    cache, None otherwise. Weights are never downloaded at run time (`landscape weights` does)."""
    path = Path(source)
    if path.is_dir():
        return "local"
    if path.exists() or source.count("/") != 1 or source.startswith((".", "/", "~")):
        return None
    try:
        cached = try_to_load_from_cache(source, "config.json")
    except Exception:  # noqa: BLE001 - a malformed id is simply "not available"
        return None
    return "hub" if isinstance(cached, str) else None


def weights_file(folder: Path) -> Path | None:
    """The weights file of a save_pretrained folder (safetensors preferred), None if absent."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    return None

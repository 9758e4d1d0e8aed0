"""The torch device a command runs on, from the config's `device` ("auto", "cpu" or "cuda")."""

from __future__ import annotations

import torch

from pipeline.core.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """torch.device for "auto" (GPU when present), "cpu" or "cuda"; ConfigError for a missing GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for but PyTorch sees no GPU; use --device cpu")
    return torch.device(name)

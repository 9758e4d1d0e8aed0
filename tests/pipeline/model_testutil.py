"""Helpers for the model/train/generate tests: a tiny config (the data comes from the
`sample_preprocessed` fixture in tests/conftest.py, made by the real stages)."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.core.config import load_config

# One OpenMP thread: on a shared 2-core machine spin-waiting threads make Jittor steps 10x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")

H, W = 32, 48
TINY = [
    f"data.height={H}", f"data.width={W}", "model.num_up=3", "model.ngf=8", "model.max_mult=4",
    "model.spade_hidden=8", "model.z_dim=8", "model.nef=4", "model.encoder_size=16",
    "model.ndf=8", "model.d_layers=2", "model.d_scales=2", "model.edge_nc=4",
    "train.batch_size=2", "train.epochs=2", "train.decay_epochs=2", "train.log_every=1",
    "train.sample_every=3", "train.checkpoint_every=4", "train.num_workers=0",
    "generate.batch_size=2", 'device="cpu"',
]


# The demo's style mechanisms off: they need the style code, so a test without the VAE
# (`model.use_vae=false`) adds these.
NO_STYLE = ("model.style_shuffle=0", "model.style_modulation=false", "model.style_stats=false",
            "model.style_palette=0", "model.noise=false")
# The demo's texture keys off (their draws come from each rank's own generator: a test that
# compares a multi-process run with a single-process one needs them off)
NO_TEXTURE = ("model.hint_texture=0", "model.hint_texture_absent=0")
# The demo's colour losses off (a test of the base loss terms).
NO_COLOUR_LOSSES = ("loss.colour_stats=0", "loss.colour_class=0", "loss.colour_lowpass=0")


def tiny_config(*extra: str):
    """The demo config shrunk to 32x48 images and a few thousand parameters."""
    return load_config(Path(__file__).resolve().parents[2] / "configs" / "demo.toml",
                       TINY + list(extra))


def flip_tensor_bit(path: Path, name: str | None = None) -> str:
    """Flip one bit in the middle of a tensor's bytes inside a .safetensors file (the file keeps
    its size and its header parses: only the checksum can tell). Returns the tensor's name
    (`name`, or the largest tensor when None)."""
    import json
    import struct

    raw = bytearray(Path(path).read_bytes())
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    if name is None:
        name = max(tensors, key=lambda k: tensors[k]["data_offsets"][1] - tensors[k]["data_offsets"][0])
    begin, end = tensors[name]["data_offsets"]
    raw[8 + header_len + (begin + end) // 2] ^= 0x10
    Path(path).write_bytes(bytes(raw))
    return name

"""Fixtures of the evaluation tests: tiny images and label maps, the converted FID weights, and
tiny SegFormer / CLIP / aesthetic-head models built and saved by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.core.artifacts import write_manifest
from pipeline.core.config import load_config

# flat colours of the classes the tiny scenes use (class id -> RGB)
CLASS_COLOURS = {0: (120, 90, 60), 1: (90, 160, 235), 3: (20, 60, 140), 5: (30, 120, 40)}


def write_scene_folder(root: Path, n: int, size=(64, 48), seed: int = 0, prefix: str = "img") -> list[str]:
    """n random textured RGB jpgs of `size` (W, H) in root; returns the stems."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    stems = []
    for i in range(n):
        w, h = size
        base = rng.integers(0, 256, 3)
        img = np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        stem = f"{prefix}_{i:03d}"
        Image.fromarray(img).save(root / f"{stem}.jpg", quality=95)
        stems.append(stem)
    return stems


def write_flat_case(root: Path, classes=(1, 5, 3, 0), size=(512, 384)) -> dict:
    """A tiny validation set: one uniform label map per class and a generated image painted in
    that class's colour (what a perfect generator would give), references and pairs."""
    labels, gen, refs = root / "labels", root / "gen", root / "refs"
    for d in (labels, gen, refs):
        d.mkdir(parents=True, exist_ok=True)
    w, h = size
    pairs = {}
    rng = np.random.default_rng(1)
    for i, c in enumerate(classes):
        stem = f"map_{i:03d}"
        Image.fromarray(np.full((h, w), c, np.uint8)).save(labels / f"{stem}.png")
        Image.fromarray(np.full((h, w, 3), CLASS_COLOURS[c], np.uint8)).save(gen / f"{stem}.jpg", quality=95)
        ref = np.clip(np.array(CLASS_COLOURS[c]) + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(ref).save(refs / f"ref_{i:03d}.jpg", quality=95)
        pairs[f"{stem}.png"] = f"ref_{i:03d}.jpg"
    (root / "pairs.json").write_text(json.dumps(pairs))
    return {"labels": labels, "gen": gen, "refs": refs, "pairs": root / "pairs.json", "classes": classes}


@pytest.fixture(scope="session")
def fid_weights(tmp_path_factory, root) -> Path:
    """The converted Inception weights: weights/ when already there and verified, else converted
    into a session temp folder (a few seconds)."""
    from evaluation.feature_extractor_inception import CONVERTED_SHA256, FID_WEIGHTS_NAME, convert_fid_weights
    from pipeline.core.artifacts import sha256_file

    existing = root / "weights" / FID_WEIGHTS_NAME
    if existing.is_file() and sha256_file(existing) == CONVERTED_SHA256:
        return existing
    dst = tmp_path_factory.mktemp("fidw") / FID_WEIGHTS_NAME
    convert_fid_weights(dst, log=lambda s: None)
    return dst


def tiny_fit_overrides(steps: int = 60) -> list[str]:
    return [
        "fit_segformer.hidden_sizes=[8, 16, 32, 32]", "fit_segformer.depths=[1, 1, 1, 1]",
        "fit_segformer.decoder_hidden_size=16", "fit_segformer.height=32", "fit_segformer.width=32",
        f"fit_segformer.steps={steps}", "fit_segformer.batch_size=4", "fit_segformer.lr=0.01",
        "fit_segformer.warmup_steps=0", "fit_segformer.flip=false",
    ]


def flat_arrays(classes=(1, 5, 3, 0), size=(64, 48)):
    w, h = size
    x = np.stack([np.full((h, w, 3), CLASS_COLOURS[c], np.uint8) for c in classes])
    y = np.stack([np.full((h, w), c, np.uint8) for c in classes])
    return x, y


@pytest.fixture(scope="session")
def tiny_segformer(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny SegFormer fitted (through fit-segformer's own code) on flat-colour scenes, saved
    with save_pretrained; returns (folder, fit result)."""
    import torch

    from evaluation.fit_segformer import fit_segformer_arrays, save_scorer

    cfg = load_config(None, tiny_fit_overrides(50))
    x, y = flat_arrays()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster than two fighting other jobs
    try:
        model, rows, acc = fit_segformer_arrays(cfg, x, y, x, y, torch.device("cpu"), progress=False)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path_factory.mktemp("seg") / "segformer"
    save_scorer(model, cfg, out, rows)
    write_manifest(out, "fit-segformer", extra={"val_pixel_accuracy": acc})  # as run_fit_segformer does
    return out, {"acc": acc, "rows": rows}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny CLIP vision model (projection 16-d) and a LAION-shaped head for it (16 -> 1024 ->
    128 -> 64 -> 16 -> 1), saved as a folder and a .safetensors file."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("clip")
    conf = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, image_size=32, patch_size=8, projection_dim=16)
    CLIPVisionModelWithProjection(conf).save_pretrained(d / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(d / "clip")
    widths = [16, 1024, 128, 64, 16, 1]
    state = {}
    for i, layer in enumerate((0, 2, 4, 6, 7)):
        state[f"layers.{layer}.weight"] = torch.randn(widths[i + 1], widths[i]) * (1.0 / widths[i] ** 0.5)
        state[f"layers.{layer}.bias"] = torch.full((widths[i + 1],), 0.5)
    save_file(state, str(d / "head.safetensors"))
    torch.save(state, d / "head.pth")
    return d / "clip", d / "head.safetensors"

"""Seeded noise: 2-D smooth fields, 1-D fractal profiles, furrow stripes (all float32)."""

from __future__ import annotations

import cv2
import numpy as np


def noise2d(rng: np.random.Generator, h: int, w: int, cell: float, aspect: float = 1.0,
            interp: int = cv2.INTER_CUBIC) -> np.ndarray:
    """Smooth noise, std about 1: random grid every `cell` pixels (x `aspect` wider), upsampled."""
    gh = max(2, int(round(h / cell)) + 1)
    gw = max(2, int(round(w / (cell * aspect))) + 1)
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=interp)


def profile(rng: np.random.Generator, n: int, knots: int, octaves: int = 3,
            persistence: float = 0.5) -> np.ndarray:
    """A 1-D fractal curve of length n in about [-1, 1]."""
    out = np.zeros(n, np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        k = max(2, knots)
        grid = rng.uniform(-1, 1, (1, k)).astype(np.float32)
        out += amp * cv2.resize(grid, (n, 1), interpolation=cv2.INTER_CUBIC)[0]
        total += amp
        amp *= persistence
        knots *= 2
    return out / total


def stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Furrows: a sine along a random direction, squeezed vertically like ground in perspective."""
    ang = rng.uniform(0, np.pi)
    period = rng.uniform(10, 16) * h / 384  # coarse enough to survive a 4x downscale (demo size)
    k = np.float32(2 * np.pi / period)
    phase = (np.float32(np.cos(ang)) * k * np.arange(w, dtype=np.float32)[None, :]
             + np.float32(np.sin(ang) * 2.5) * k * np.arange(h, dtype=np.float32)[:, None])
    return np.sin(phase)

"""Colour utilities (numpy / OpenCV): the class palette and colour transfer after generation.

Colour transfer makes a generated image's colour statistics follow its style reference:
- "reinhard-lab": per-channel mean and standard deviation matched in CIE-LAB (Reinhard et al.
  2001), what the seed entry did after generation;
- "histogram-match": each RGB channel's histogram mapped onto the reference's (CDF matching);
- "none": unchanged.

A strength s in [0, 1] blends the result with the untransferred image: (1 - s) * image +
s * transferred (generate.colour_strength; `landscape sweep` writes it as "reinhard-lab@0.5").
"""

from __future__ import annotations

import cv2
import numpy as np

COLOUR_TRANSFERS = ("none", "reinhard-lab", "histogram-match")

# One RGB colour per class id (0..28), chosen to look like the class where it has an obvious
# colour (sky blue, tree green, ...); used for the sample grids.
CLASS_PALETTE = np.array([
    [120, 100, 80], [135, 190, 235], [40, 110, 170], [20, 70, 150], [130, 130, 130],
    [40, 120, 40], [150, 110, 70], [110, 140, 80], [70, 140, 200], [230, 210, 150],
    [170, 150, 100], [180, 60, 60], [100, 200, 80], [60, 160, 100], [255, 0, 200],
    [255, 140, 0], [200, 240, 255], [160, 120, 120], [120, 80, 40], [200, 180, 140],
    [60, 130, 180], [150, 80, 150], [200, 220, 90], [90, 90, 90], [220, 220, 0],
    [180, 140, 60], [0, 80, 255], [220, 100, 60], [0, 0, 0],
], dtype=np.uint8)


def colourise_labels(labels: np.ndarray) -> np.ndarray:
    """uint8 label map (H, W) with values 0..28 -> RGB uint8 (H, W, 3) in the class palette."""
    return CLASS_PALETTE[np.minimum(labels, len(CLASS_PALETTE) - 1)]


def rgb_to_lab(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 CIE-LAB (L 0..100, a/b about -128..127)."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float32 CIE-LAB -> uint8 RGB, clipped."""
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def reinhard_lab(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Match the per-channel LAB mean and std of `image` to `reference` (both uint8 RGB)."""
    src, ref = rgb_to_lab(image), rgb_to_lab(reference)
    s_mean, s_std = src.reshape(-1, 3).mean(0), src.reshape(-1, 3).std(0)
    r_mean, r_std = ref.reshape(-1, 3).mean(0), ref.reshape(-1, 3).std(0)
    out = (src - s_mean) * (r_std / np.maximum(s_std, 1e-6)) + r_mean
    out[..., 0] = np.clip(out[..., 0], 0, 100)
    out[..., 1:] = np.clip(out[..., 1:], -127, 127)
    return lab_to_rgb(out)


def histogram_match(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Map each RGB channel of `image` through the CDF of `reference` (both uint8 RGB)."""
    out = np.empty_like(image)
    for c in range(3):
        hist = np.bincount(image[..., c].ravel(), minlength=256).astype(np.float64)
        # each source level goes to the reference quantile at the middle of its own CDF step
        mid = (np.cumsum(hist) - hist / 2) / hist.sum()
        lut = np.quantile(reference[..., c].ravel(), mid)
        out[..., c] = np.clip(lut + 0.5, 0, 255).astype(np.uint8)[image[..., c]]
    return out


def colour_transfer(image: np.ndarray, reference: np.ndarray, method: str,
                    strength: float = 1.0) -> np.ndarray:
    """Apply the named colour transfer ('none', 'reinhard-lab', 'histogram-match') at `strength`.

    image, reference: uint8 RGB arrays (sizes may differ). strength: 1 = the full transfer,
    0 = the image unchanged, between: the two blended. Returns a uint8 RGB image of image's
    size. Any other method, or a strength outside [0, 1], is a ValueError.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour transfer strength {strength}: must be in [0, 1]")
    if method == "none" or strength == 0.0:
        if method not in COLOUR_TRANSFERS:
            raise ValueError(f"colour transfer {method!r}: use one of {', '.join(COLOUR_TRANSFERS)}")
        return image
    if method == "reinhard-lab":
        out = reinhard_lab(image, reference)
    elif method == "histogram-match":
        out = histogram_match(image, reference)
    else:
        raise ValueError(f"colour transfer {method!r}: use one of {', '.join(COLOUR_TRANSFERS)}")
    return out if strength == 1.0 else blend(image, out, strength)


def blend(image: np.ndarray, transferred: np.ndarray, strength: float) -> np.ndarray:
    """(1 - strength) * image + strength * transferred, rounded to uint8."""
    mixed = (1.0 - strength) * image.astype(np.float32) + strength * transferred.astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def parse_transfer(spec: str) -> tuple[str, float]:
    """"reinhard-lab@0.5" -> ("reinhard-lab", 0.5); "histogram-match" -> (.., 1.0); "none" ->
    ("none", 1.0). ValueError naming what is allowed for anything else."""
    method, at, raw = spec.strip().partition("@")
    if method not in COLOUR_TRANSFERS:
        raise ValueError(f"colour transfer {spec!r}: use one of {', '.join(COLOUR_TRANSFERS)},"
                         " optionally with a strength, e.g. reinhard-lab@0.5")
    if not at:
        return method, 1.0
    try:
        strength = float(raw)
    except ValueError:
        strength = -1.0
    if method == "none" or not 0.0 <= strength <= 1.0:
        raise ValueError(f"colour transfer {spec!r}: a strength is a number in [0, 1] after"
                         " a transfer other than none, e.g. reinhard-lab@0.5")
    return method, strength


def transfer_label(method: str, strength: float) -> str:
    """The inverse of `parse_transfer`: "reinhard-lab@0.5", "none", "histogram-match"."""
    return method if method == "none" or strength == 1.0 else f"{method}@{strength:g}"

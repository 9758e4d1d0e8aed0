"""Painting: a label map (+ part map) in a style -> a photo-like RGB uint8 image.

`render_photo` paints the dataset's photos; `render_in_style` paints ANY label map (a validation
map, a real one) in a named style, which is what the style oracle draws. Every step draws from
the caller's generator in a fixed order, so the same inputs give the same bytes.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ...core.classes import CLASS_ID, NUM_CLASSES
from .noise import noise2d, stripes
from .palette import COLOUR_TABLE, HAZE_TABLE, HUE_TABLE, NUM_PARTS, REFLECT, SKY, TEXTURE_TABLE
from .styles import Style, style_by_name

# Ground and water classes: the first of these from the top of a column marks the horizon.
_GROUND = np.zeros(256, bool)
_GROUND[[CLASS_ID[n] for n in ("water", "sea", "lake", "river", "waterfall", "grass", "field",
                               "earth", "sand", "land", "path", "road", "plant")]] = True


def lut(idx: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[idx] for a uint8 index map and a (n, c) float32 table (n <= 256), via cv2.LUT."""
    full = np.zeros((256, table.shape[1]), np.float32)
    full[: len(table)] = table
    if table.shape[1] == 1:
        return cv2.LUT(idx, full)
    return cv2.LUT(cv2.merge([idx] * table.shape[1]), full.reshape(256, 1, table.shape[1]))


def _colour_table(style: Style, rng: np.random.Generator) -> np.ndarray:
    """This image's colour per table row: class colours, season's foliage, jitter, sky reflected
    in water, light tint, saturation."""
    colour = COLOUR_TABLE.copy()
    for cls, rgb in style.foliage.items():
        colour[cls] = rgb
    colour *= (1 + 0.05 * rng.standard_normal(colour.shape, dtype=np.float32))
    sky_h = np.asarray(style.sky_horizon, np.float32)
    for cls, k in REFLECT.items():
        rows = np.arange(NUM_PARTS) * NUM_CLASSES + cls
        colour[rows] = (1 - k) * colour[rows] + k * sky_h
    colour *= np.asarray(style.tint, np.float32)
    lum = colour @ np.asarray([0.299, 0.587, 0.114], np.float32)
    return lum[:, None] + np.float32(style.saturation) * (colour - lum[:, None])


def _texture(idx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(texture multiplier HxW, medium noise, coarse noise): noise fields mixed per class; a field
    is only made when a class present uses it."""
    h, w = idx.shape
    present = np.zeros(256, bool)
    present[np.unique(idx)] = True
    used = TEXTURE_TABLE[present[: len(TEXTURE_TABLE)]].any(axis=0)
    medium = noise2d(rng, h, w, max(2.0, h / 48))
    coarse = noise2d(rng, h, w, max(4.0, h / 10))
    makers = (
        lambda: noise2d(rng, h, w, 1.6, interp=cv2.INTER_LINEAR),
        lambda: medium,
        lambda: coarse,
        lambda: noise2d(rng, h, w, max(1.5, h / 160), aspect=24.0),
        lambda: stripes(rng, h, w),
        lambda: 1.0 - 2.0 * np.abs(noise2d(rng, h, w, max(2.0, h / 24))),
    )
    tex = np.ones((h, w), np.float32)
    for k, make in enumerate(makers):
        if used[k]:
            tex += lut(idx, TEXTURE_TABLE[:, k : k + 1]) * make()
    return tex, medium, coarse


def _paint_sky(img: np.ndarray, label: np.ndarray, horizon: float, style: Style,
               rng: np.random.Generator, medium: np.ndarray) -> None:
    """Sky pixels of `img` (in place): a vertical gradient from the zenith colour to the horizon
    colour, with clouds."""
    h, w = label.shape
    sky = label == SKY
    if not sky.any():
        return
    hs = int(min(h, np.nonzero(sky.any(axis=1))[0].max() + 1))
    rows = np.clip(np.arange(hs, dtype=np.float32) / max(1.0, horizon), 0, 1) ** 1.5
    top = np.asarray(style.sky_top, np.float32)
    sky_h = np.asarray(style.sky_horizon, np.float32)
    grad = top[None, :] * (1 - rows[:, None]) + sky_h[None, :] * rows[:, None]
    clouds = noise2d(rng, h, w, max(4.0, h / 6), aspect=2.5)[:hs] + 0.25 * medium[:hs]
    cover = np.clip((clouds - (1.4 - 2.2 * style.clouds)) * 0.6, 0, 0.9)[..., None]
    sky_img = grad[:, None, :] * (1 - cover) + np.asarray(style.cloud_colour, np.float32) * cover
    sky_img *= np.asarray(style.tint, np.float32) ** 0.3
    np.copyto(img[:hs], sky_img, where=sky[:hs, :, None])


def _finish(img: np.ndarray, label: np.ndarray, horizon: float, style: Style,
            rng: np.random.Generator) -> np.ndarray:
    """Haze, exposure and contrast, grain, then a slight lens blur: float image -> uint8."""
    h = label.shape[0]
    sky_h = np.asarray(style.sky_horizon, np.float32)
    # Distant rows (and mountains most) fade towards the horizon colour.
    yrow = np.arange(h, dtype=np.float32)
    row_haze = style.haze * np.clip(1 - (yrow - horizon) / (0.6 * max(1.0, h - horizon)), 0, 1)
    f = (row_haze[:, None] * lut(label, HAZE_TABLE))[..., None]
    img += f * (sky_h - img)
    gain = np.float32(255 * style.brightness * style.contrast)
    offset = np.float32(255 * style.brightness * 0.5 * (1 - style.contrast))
    img = img * gain + offset
    img += 2.0 * rng.standard_normal((h, label.shape[1], 1), dtype=np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(out, (3, 3), 0.7)  # softens the drawn edges


def render_photo(label: np.ndarray, part: np.ndarray, horizon: float, style: Style,
                 rng: np.random.Generator) -> np.ndarray:
    """Paint a photo-like RGB uint8 image (HxWx3) for a label/part map in one style."""
    idx = part.astype(np.uint8) * np.uint8(NUM_CLASSES) + label  # row of the lookup tables
    colour = _colour_table(style, rng)
    tex, medium, coarse = _texture(idx, rng)
    img = lut(idx, colour) * tex[..., None]
    img += coarse[..., None] * lut(idx, HUE_TABLE)
    _paint_sky(img, label, horizon, style, rng, medium)
    return _finish(img, label, horizon, style, rng)


def label_to_horizon(label: np.ndarray) -> float:
    """Estimated horizon row of a label map: the median over columns of the first ground or water
    row from the top (else the row below the lowest sky, else 45% of the height)."""
    h = label.shape[0]
    ground = _GROUND[label]
    cols = ground.any(axis=0)
    if cols.any():
        return float(np.median(ground[:, cols].argmax(axis=0)))
    sky_rows = np.nonzero((label == SKY).any(axis=1))[0]
    return float(sky_rows.max() + 1) if sky_rows.size else 0.45 * h


def render_in_style(label: np.ndarray, style_name: str, seed: int | Sequence[int]) -> np.ndarray:
    """Paint any label map (HxW class ids 0..28, any size) in the named style: RGB uint8 HxWx3.

    A label map has no sub-parts (lit faces, snow, roofs, windows), so every class is painted in
    its main colour; the horizon (sky gradient, haze) is estimated from the map. `seed` (an int
    or a sequence of ints) seeds the noise: same arguments, same bytes.
    """
    style = style_by_name(style_name)
    label = np.asarray(label)
    if label.ndim != 2 or label.size == 0:
        raise ValueError(f"label map must be a non-empty 2-D array of class ids, got shape {label.shape}")
    if label.min() < 0 or label.max() >= NUM_CLASSES:
        raise ValueError(f"label map holds values outside the class ids 0..{NUM_CLASSES - 1}")
    label = np.ascontiguousarray(label, dtype=np.uint8)
    part = np.zeros_like(label)
    rng = np.random.default_rng(seed)
    return render_photo(label, part, label_to_horizon(label), style, rng)

"""The built-in sample dataset: procedural landscape label maps and matching photo-like images.

`landscape sample-data --out DIR --train N --test M --seed S` writes, in exactly the
competition's layout::

    DIR/train/imgs/<stem>.jpg         RGB photos (default 512x384)
    DIR/train/labels/<stem>.png       grey label maps, values 0..28 (the real class ids)
    DIR/test/labels/<stem>.png        test maps, without photos
    DIR/test/label_to_img.json        {"<test map>.png": "<train photo>.jpg"}: style references
    DIR/manifest.json                 stage "sample-data"

Scenes (coast, lake, countryside, river valley, alpine) are drawn back to front from column
profiles and polygons: sky, mountains, hills, water with a horizon, ground (grass, fields, earth,
sand), rivers, paths and roads, houses and buildings, trees, rocks and boats: 17 classes in all.

Each class has its own colour and texture family (a base colour per class and part, plus a
per-class mix of fine, medium, coarse, streaked, striped and ridged noise), and each scene draws
one global style (dawn, noon, golden hour, dusk, overcast, autumn, misty) that moves every class's
colour together: light tint, saturation, brightness, sky gradient, clouds, haze, water reflecting
the sky and, in autumn, the foliage. So a reference photo's style is both learnable and
measurable, and each class stays recognisable by colour and texture within any style.

Image `i` of a split depends only on (seed, split, i): the same seed gives identical bytes, and
a smaller dataset is a prefix of a larger one with the same seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.artifacts import MANIFEST, atomic_write_json, write_manifest
from ..core.errors import DatasetError
from ..core.classes import CLASS_ID, CLASS_NAMES, NUM_CLASSES

C = CLASS_ID
SKY, MOUNTAIN, HILL = C["sky"], C["mountain"], C["hill"]
SEA, LAKE, RIVER = C["sea"], C["lake"], C["river"]
GRASS, FIELD, EARTH, SAND = C["grass"], C["field"], C["earth"], C["sand"]
TREE, ROCK, PATH, ROAD = C["tree"], C["rock"], C["path"], C["road"]
BUILDING, HOUSE, BOAT = C["building"], C["house"], C["boat"]

SCENES = ("coast", "lake", "countryside", "valley", "alpine")
SPLIT_CODE = {"train": 1, "test": 2}
JPEG_QUALITY = 92
NUM_PARTS = 4  # sub-parts of a class with their own colour: 0 main, 1 lit/roof/trunk, 2 snow/windows
PNG_FLAGS = [cv2.IMWRITE_PNG_COMPRESSION, 3]  # fast and still small: label maps are flat


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# ============================================================================ styles
@dataclass(frozen=True)
class Style:
    """A scene-wide look: every class's colour moves with these together."""

    name: str
    sky_top: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    tint: tuple[float, float, float]  # light colour multiplying every surface
    brightness: float
    saturation: float
    contrast: float
    clouds: float  # cloud cover 0..1
    cloud_colour: tuple[float, float, float]
    haze: float  # atmospheric haze strength at the horizon
    foliage: dict  # class id -> replacement main colour (autumn)


STYLES: tuple[Style, ...] = (
    Style("dawn", (0.36, 0.42, 0.62), (0.98, 0.70, 0.55), (1.08, 0.90, 0.86), 0.92, 0.90, 0.95,
          0.35, (0.98, 0.78, 0.72), 0.35, {}),
    Style("noon", (0.22, 0.45, 0.85), (0.68, 0.82, 0.96), (1.00, 1.00, 1.00), 1.05, 1.10, 1.05,
          0.30, (0.97, 0.97, 0.98), 0.20, {}),
    Style("golden-hour", (0.35, 0.52, 0.80), (1.00, 0.82, 0.52), (1.12, 0.98, 0.78), 1.00, 1.15,
          1.05, 0.25, (1.00, 0.90, 0.72), 0.25, {}),
    Style("dusk", (0.16, 0.14, 0.36), (0.95, 0.48, 0.32), (0.92, 0.72, 0.78), 0.72, 0.95, 1.00,
          0.30, (0.62, 0.42, 0.52), 0.30, {}),
    Style("overcast", (0.60, 0.63, 0.67), (0.80, 0.81, 0.82), (0.95, 0.97, 1.00), 0.92, 0.55, 0.85,
          0.90, (0.72, 0.73, 0.75), 0.40, {}),
    Style("autumn", (0.30, 0.50, 0.82), (0.78, 0.85, 0.92), (1.05, 0.98, 0.90), 1.00, 1.10, 1.05,
          0.35, (0.96, 0.95, 0.93), 0.20,
          {TREE: (0.72, 0.34, 0.10), GRASS: (0.52, 0.55, 0.22), FIELD: (0.70, 0.52, 0.22),
           HILL: (0.50, 0.42, 0.22)}),
    Style("misty", (0.70, 0.76, 0.80), (0.88, 0.90, 0.90), (0.96, 1.00, 1.02), 1.00, 0.70, 0.80,
          0.60, (0.90, 0.91, 0.92), 0.65, {}),
)

# Base colours (noon light) of each class's parts, RGB 0..1.
_COLOURS: dict[int, tuple] = {
    MOUNTAIN: ((0.42, 0.42, 0.48), (0.58, 0.56, 0.58), (0.94, 0.95, 0.98)),  # shade, lit, snow
    SKY: ((0.5, 0.7, 0.9),),  # drawn from the style's gradient instead
    SEA: ((0.08, 0.27, 0.48), (0.85, 0.90, 0.92)),  # water, foam
    LAKE: ((0.12, 0.36, 0.40),),
    RIVER: ((0.30, 0.44, 0.42),),
    ROCK: ((0.45, 0.43, 0.40), (0.62, 0.60, 0.56)),  # rock, lit facet
    TREE: ((0.13, 0.30, 0.12), (0.30, 0.21, 0.12)),  # crown, trunk
    EARTH: ((0.46, 0.35, 0.24),),
    HILL: ((0.30, 0.44, 0.26),),
    SAND: ((0.88, 0.80, 0.60),),
    GRASS: ((0.35, 0.58, 0.20),),
    FIELD: ((0.80, 0.70, 0.32),),
    PATH: ((0.70, 0.60, 0.46),),
    ROAD: ((0.26, 0.26, 0.28), (0.90, 0.88, 0.80)),  # asphalt, centre line
    BUILDING: ((0.74, 0.72, 0.68), (0.40, 0.40, 0.44), (0.20, 0.24, 0.30)),  # wall, roof, windows
    HOUSE: ((0.92, 0.86, 0.74), (0.62, 0.22, 0.16), (0.22, 0.18, 0.16)),
    BOAT: ((0.80, 0.20, 0.16), (0.96, 0.96, 0.94)),  # hull, sail
}
# Texture amplitudes per class: fine, medium, coarse, horizontal streaks, stripes, ridged.
_TEXTURE: dict[int, tuple] = {
    MOUNTAIN: (0.04, 0.06, 0.10, 0.00, 0.00, 0.14),
    SEA: (0.03, 0.03, 0.04, 0.22, 0.00, 0.00),
    LAKE: (0.02, 0.02, 0.04, 0.06, 0.00, 0.00),
    RIVER: (0.06, 0.05, 0.03, 0.08, 0.00, 0.00),
    ROCK: (0.10, 0.08, 0.05, 0.00, 0.00, 0.10),
    TREE: (0.12, 0.30, 0.08, 0.00, 0.00, 0.00),
    EARTH: (0.14, 0.08, 0.08, 0.00, 0.00, 0.00),
    HILL: (0.04, 0.10, 0.12, 0.00, 0.00, 0.00),
    SAND: (0.05, 0.03, 0.06, 0.03, 0.00, 0.00),
    GRASS: (0.16, 0.06, 0.10, 0.00, 0.00, 0.00),
    FIELD: (0.04, 0.04, 0.06, 0.00, 0.20, 0.00),
    PATH: (0.10, 0.05, 0.04, 0.00, 0.00, 0.00),
    ROAD: (0.06, 0.02, 0.03, 0.00, 0.00, 0.00),
    BUILDING: (0.03, 0.02, 0.03, 0.00, 0.00, 0.00),
    HOUSE: (0.03, 0.02, 0.03, 0.00, 0.00, 0.00),
    BOAT: (0.02, 0.00, 0.00, 0.00, 0.00, 0.00),
}
# Colour variation (added along this RGB direction times coarse noise): grass with dry patches...
_HUE_VAR: dict[int, tuple] = {
    GRASS: (0.10, 0.06, -0.04),
    FIELD: (0.06, 0.04, -0.02),
    TREE: (0.04, 0.05, 0.00),
    HILL: (0.05, 0.04, 0.00),
    EARTH: (0.06, 0.03, 0.00),
    MOUNTAIN: (0.04, 0.03, 0.02),
    SEA: (0.00, 0.05, 0.04),
}
# Water mirrors the sky by this much: the strongest carrier of a scene's style on the ground.
_REFLECT = {SEA: 0.30, LAKE: 0.40, RIVER: 0.22}
# Haze multiplier per class (distant classes fade most towards the sky's horizon colour).
_HAZE = {MOUNTAIN: 1.0, HILL: 0.7, SKY: 0.0}
_HAZE_TABLE = np.array([[_HAZE.get(c, 0.6)] for c in range(NUM_CLASSES)], np.float32)


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables indexed by `part * 29 + label`: base colour, texture mix, hue variation."""
    n = NUM_PARTS * NUM_CLASSES
    colour = np.full((n, 3), 0.5, np.float32)
    texture = np.zeros((n, 6), np.float32)
    hue = np.zeros((n, 3), np.float32)
    for cls, parts in _COLOURS.items():
        for p in range(NUM_PARTS):
            colour[p * NUM_CLASSES + cls] = parts[min(p, len(parts) - 1)]
            texture[p * NUM_CLASSES + cls] = _TEXTURE.get(cls, (0.03, 0, 0, 0, 0, 0))
            hue[p * NUM_CLASSES + cls] = _HUE_VAR.get(cls, (0, 0, 0))
    # Snow, foam, sails, windows and centre lines are plain: little texture.
    for cls, p in ((MOUNTAIN, 2), (SEA, 1), (BOAT, 1), (ROAD, 1), (HOUSE, 2), (BUILDING, 2)):
        texture[p * NUM_CLASSES + cls] = (0.03, 0.02, 0.0, 0.0, 0.0, 0.0)
    return colour, texture, hue


_COLOUR_TABLE, _TEXTURE_TABLE, _HUE_TABLE = _tables()


# ============================================================================ noise
def _noise2d(rng: np.random.Generator, h: int, w: int, cell: float, aspect: float = 1.0,
             interp: int = cv2.INTER_CUBIC) -> np.ndarray:
    """Smooth noise, std about 1: random grid every `cell` pixels (x `aspect` wider), upsampled."""
    gh = max(2, int(round(h / cell)) + 1)
    gw = max(2, int(round(w / (cell * aspect))) + 1)
    grid = rng.standard_normal((gh, gw), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=interp)


def _profile(rng: np.random.Generator, n: int, knots: int, octaves: int = 3,
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


# ============================================================================ scene drawing
class _Canvas:
    """A label map and a part map drawn together, back to front."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.label = np.full((h, w), SKY, np.uint8)
        self.part = np.zeros((h, w), np.uint8)
        self.yy = np.arange(h, dtype=np.float32)[:, None]
        self.xx = np.arange(w, dtype=np.float32)[None, :]

    def fill_mask(self, mask: np.ndarray, cls: int, part: int = 0) -> None:
        self.label[mask] = cls
        self.part[mask] = part

    def below(self, top: np.ndarray, cls: int, bottom: np.ndarray | float | None = None,
              part: int = 0) -> None:
        """Fill each column x from row top[x] down to bottom[x] (exclusive; default the bottom)."""
        mask = self.yy >= top[None, :]
        if bottom is not None:
            mask &= self.yy < (bottom[None, :] if isinstance(bottom, np.ndarray) else bottom)
        self.fill_mask(mask, cls, part)

    def poly(self, pts, cls: int, part: int = 0) -> None:
        pts = [np.round(np.asarray(p, np.float32)).astype(np.int32) for p in pts]
        cv2.fillPoly(self.label, pts, int(cls))
        cv2.fillPoly(self.part, pts, int(part))

    def circle(self, x: float, y: float, r: float, cls: int, part: int = 0) -> None:
        c, r = (int(round(x)), int(round(y))), max(1, int(round(r)))
        cv2.circle(self.label, c, r, int(cls), -1)
        cv2.circle(self.part, c, r, int(part), -1)

    def rect(self, x0: float, y0: float, x1: float, y1: float, cls: int, part: int = 0) -> None:
        p0, p1 = (int(round(x0)), int(round(y0))), (int(round(x1)) - 1, int(round(y1)) - 1)
        cv2.rectangle(self.label, p0, p1, int(cls), -1)
        cv2.rectangle(self.part, p0, p1, int(part), -1)


def _mountains(cv: _Canvas, rng, horizon: float, height: float, snow: bool,
               window: np.ndarray | None = None) -> np.ndarray:
    """Jagged peaks standing on the horizon; lit faces (part 1) face left. Return the ridge rows."""
    w = cv.w
    x = np.arange(w, dtype=np.float32)
    n = int(rng.integers(2, 5))
    cx = rng.uniform(-0.1, 1.1, n).astype(np.float32) * w
    half = rng.uniform(0.15, 0.4, n).astype(np.float32) * w
    peak = rng.uniform(0.5, 1.0, n).astype(np.float32)
    peaks = peak[:, None] * np.clip(1 - np.abs(x[None, :] - cx[:, None]) / half[:, None], 0, 1) ** 1.2
    owner = peaks.argmax(axis=0)  # the peak each column's slope belongs to
    prof = peaks.max(axis=0) + 0.12 * _profile(rng, w, 12, 4, 0.55)
    prof = np.clip(prof, 0.08, None)
    if window is not None:
        prof *= window
    ridge = horizon - height * prof
    mask = (cv.yy >= ridge[None, :]) & (cv.yy < horizon + 1)
    cv.fill_mask(mask, MOUNTAIN, 0)
    # Sunlit faces: left of a crest line running down from each summit, slanted and wobbling.
    top = (horizon - height * peak)[owner][None, :]
    slant = rng.uniform(-0.5, 0.5, n).astype(np.float32)[owner][None, :]
    wobble = 0.03 * w * _profile(rng, cv.h, 10, 3)[:, None]
    lit = cv.xx < cx[owner][None, :] + (cv.yy - top) * slant + wobble
    cv.part[mask & lit] = 1
    if snow:
        snow_row = horizon - height * rng.uniform(0.55, 0.75)
        drip = 0.04 * height * _profile(rng, w, 24, 2)
        cv.part[mask & (cv.yy < snow_row + drip[None, :])] = 2
    return ridge


def _hills(cv: _Canvas, rng, horizon: float, height: float, window=None) -> np.ndarray:
    """Rolling smooth hills on the horizon. Return the ridge rows."""
    prof = 0.55 + 0.45 * _profile(rng, cv.w, int(rng.integers(2, 5)), 2, 0.35)
    if window is not None:
        prof *= window
    ridge = horizon - height * prof
    cv.below(ridge, HILL, horizon + 1)
    return ridge


def _window(rng, w: int, side: str | None = None) -> np.ndarray:
    """A 0..1 column weight that keeps a feature to one side of the picture."""
    x = np.linspace(0, 1, w, dtype=np.float32)
    side = side or ("left" if rng.random() < 0.5 else "right")
    edge = rng.uniform(0.3, 0.6)
    t = np.clip((edge - x) / 0.15, 0, 1) if side == "left" else np.clip((x - (1 - edge)) / 0.15, 0, 1)
    return t * t * (3 - 2 * t)


def _treeline(cv: _Canvas, rng, base: np.ndarray | float, x0: float, x1: float, height: float):
    """A band of distant trees with a bumpy top standing on row(s) `base`."""
    w = cv.w
    base = np.full(w, base, np.float32) if np.isscalar(base) else base
    bump = np.abs(_profile(rng, w, max(8, w // 10), 2, 0.6))
    top = base - height * (0.45 + 0.9 * bump)
    cols = np.zeros(w, bool)
    cols[int(max(0, x0)):int(min(w, x1))] = True
    mask = (cv.yy >= top[None, :]) & (cv.yy < base[None, :] + max(1.0, height * 0.15)) & cols[None, :]
    cv.fill_mask(mask, TREE, 0)


def _tree(cv: _Canvas, rng, x: float, y: float, size: float) -> None:
    """One tree whose trunk stands at (x, y): a round broadleaf or a conifer."""
    trunk_w = max(1.0, size * 0.12)
    if rng.random() < 0.55:
        crown_r = size * 0.42
        cy = y - size * 0.35 - crown_r
        cv.rect(x - trunk_w / 2, cy, x + trunk_w / 2, y, TREE, 1)
        for _ in range(int(rng.integers(3, 7))):
            cv.circle(x + rng.normal(0, 0.35) * crown_r, cy + rng.normal(0, 0.3) * crown_r,
                      crown_r * rng.uniform(0.55, 0.85), TREE, 0)
    else:
        top = y - size * 1.3
        cv.rect(x - trunk_w / 2, y - size * 0.25, x + trunk_w / 2, y, TREE, 1)
        half = size * 0.38
        for k in range(3):  # stacked tiers
            ty = top + k * size * 0.3
            by = ty + size * 0.55
            hw = half * (0.55 + 0.25 * k)
            cv.poly([[(x, ty), (x - hw, by), (x + hw, by)]], TREE, 0)


def _rock(cv: _Canvas, rng, x: float, y: float, size: float) -> None:
    """An irregular boulder resting on row y, with a lit facet (part 1)."""
    n = int(rng.integers(7, 11))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    rad = size * rng.uniform(0.65, 1.0, n)
    px = x + rad * np.cos(ang) * 1.3
    py = np.minimum(y - size * 0.7 + rad * np.sin(ang) * 0.8, y)
    cv.poly([np.stack([px, py], 1)], ROCK, 0)
    hx = x - size * 0.25 + (px - x) * 0.5
    hy = y - size * 0.95 + (py - y + size * 0.7) * 0.45
    cv.poly([np.stack([hx, hy], 1)], ROCK, 1)


def _house(cv: _Canvas, rng, x: float, y: float, size: float) -> None:
    """A house with a pitched roof (part 1) and windows (part 2), standing on row y."""
    w, h = size * rng.uniform(1.0, 1.6), size * rng.uniform(0.6, 0.8)
    cv.rect(x - w / 2, y - h, x + w / 2, y, HOUSE, 0)
    over = w * 0.08
    cv.poly([[(x - w / 2 - over, y - h), (x + w / 2 + over, y - h),
              (x + w * 0.3, y - h - size * 0.5), (x - w * 0.3, y - h - size * 0.5)]], HOUSE, 1)
    if size >= 12:
        ww = w * 0.14
        for fx in (-0.28, 0.28):
            cv.rect(x + fx * w - ww / 2, y - h * 0.7, x + fx * w + ww / 2, y - h * 0.35, HOUSE, 2)


def _building(cv: _Canvas, rng, x: float, y: float, size: float) -> None:
    """A taller flat-roofed building with a window grid (part 2), standing on row y."""
    w, h = size * rng.uniform(0.8, 1.3), size * rng.uniform(1.2, 2.2)
    cv.rect(x - w / 2, y - h, x + w / 2, y, BUILDING, 0)
    cv.rect(x - w / 2, y - h, x + w / 2, y - h + max(1.0, size * 0.08), BUILDING, 1)
    if size >= 10:
        cols, rows = max(2, int(w / (size * 0.3))), max(2, int(h / (size * 0.35)))
        cw, rh = w / cols, h / rows
        for i in range(cols):
            for j in range(rows - 1):
                x0 = x - w / 2 + i * cw + cw * 0.3
                y0 = y - h + size * 0.12 + j * rh + rh * 0.3
                cv.rect(x0, y0, x0 + cw * 0.4, y0 + rh * 0.4, BUILDING, 2)


def _boat(cv: _Canvas, rng, x: float, y: float, size: float) -> None:
    """A small sailing boat floating on row y: hull (part 0) and sail (part 1)."""
    cv.poly([[(x - size, y - size * 0.3), (x + size, y - size * 0.3),
              (x + size * 0.7, y), (x - size * 0.7, y)]], BOAT, 0)
    cv.poly([[(x - size * 0.1, y - size * 0.35), (x - size * 0.1, y - size * 1.6),
              (x + size * 0.7, y - size * 0.35)]], BOAT, 1)


def _winding_band(cv: _Canvas, rng, y_far: float, x_far: float, w_far: float, w_near: float,
                  cls: int, wiggle: float, part_line: bool = False) -> None:
    """A band (river, road, path) narrowing in perspective from the bottom edge to (x_far, y_far)."""
    h, w = cv.h, cv.w
    n = 24
    t = np.linspace(0, 1, n, dtype=np.float32)  # 0 far, 1 near
    ys = y_far + (h + 2 - y_far) * t
    x_near = x_far + rng.uniform(-0.5, 0.5) * w
    centre = x_far + (x_near - x_far) * t ** 1.5
    centre += wiggle * w * t * np.sin(rng.uniform(0, 2 * np.pi) + t * rng.uniform(2, 5))
    half = (w_far + (w_near - w_far) * t ** 1.3) / 2
    left = np.stack([centre - half, ys], 1)
    right = np.stack([centre + half, ys], 1)[::-1]
    cv.poly([np.concatenate([left, right])], cls, 0)
    if part_line:  # dashed centre line on the near half of a road
        for k in range(n // 2, n - 1, 2):
            lw = max(1.0, half[k] * 0.05)
            cv.poly([[(centre[k] - lw, ys[k]), (centre[k] + lw, ys[k]),
                      (centre[k + 1] + lw, ys[k + 1]), (centre[k + 1] - lw, ys[k + 1])]], cls, 1)


def _depth_size(y: float, horizon: float, h: int, near: float) -> float:
    """Object size at ground row y: 0 at the horizon, `near` pixels at the bottom edge."""
    return max(0.0, (y - horizon) / max(1.0, h - horizon)) * near


def _scatter(cv: _Canvas, rng, horizon: float, count: int, draw, near: float,
             allowed: tuple[int, ...], x_range=(0.0, 1.0), y_range=(0.05, 1.0),
             min_size: float = 3.0) -> int:
    """Place up to `count` objects on ground rows whose label is in `allowed`, far ones first."""
    h, w = cv.h, cv.w
    spots = []
    for _ in range(count * 3):
        t = rng.uniform(*y_range) ** 1.5
        y = horizon + t * (h - horizon)
        x = rng.uniform(*x_range) * w
        yi, xi = min(h - 1, int(y)), min(w - 1, max(0, int(x)))
        if cv.label[yi, xi] in allowed:
            spots.append((y, x))
        if len(spots) >= count:
            break
    for y, x in sorted(spots):
        size = _depth_size(y, horizon, h, near) * rng.uniform(0.7, 1.3)
        if size >= min_size:
            draw(cv, rng, x, y, size)
    return len(spots)


def make_scene(rng: np.random.Generator, height: int, width: int,
               kind: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw one landscape layout.

    Returns (label uint8 HxW with class ids, part uint8 HxW with sub-part ids 0..3, info) where
    info holds "scene" (one of SCENES) and "horizon" (row of the horizon).
    """
    h, w = height, width
    cv = _Canvas(h, w)
    kind = kind or SCENES[int(rng.integers(len(SCENES)))]
    horizon = h * rng.uniform(0.36, 0.55)
    hz = np.full(w, horizon, np.float32)
    near = h * 0.6  # size of a tree standing on the bottom edge

    if kind == "coast":
        horizon = h * rng.uniform(0.38, 0.5)
        if rng.random() < 0.6:
            side = "left" if rng.random() < 0.5 else "right"
            if rng.random() < 0.5:
                _mountains(cv, rng, horizon, h * rng.uniform(0.15, 0.3), False, _window(rng, w, side))
            else:
                _hills(cv, rng, horizon, h * rng.uniform(0.08, 0.18), _window(rng, w, side))
        cv.below(np.full(w, horizon, np.float32), SEA)
        shore = horizon + (h - horizon) * (rng.uniform(0.3, 0.6)
                                           + rng.uniform(-0.25, 0.25) * np.linspace(-1, 1, w)
                                           + 0.08 * _profile(rng, w, 5, 3))
        shore = np.clip(shore, horizon + 4, h - 4).astype(np.float32)
        cv.below(shore, SAND)
        cv.fill_mask((cv.yy >= shore[None, :] - max(1.0, h * 0.012)) & (cv.yy < shore[None, :]), SEA, 1)
        if rng.random() < 0.6:
            top = shore + (h - shore) * rng.uniform(0.35, 0.7) + 0.06 * h * _profile(rng, w, 4, 2)
            top = np.where(_window(rng, w) > 0.5, top, h + 10)  # grass on one side only
            cv.below(top.astype(np.float32), GRASS)
        if rng.random() < 0.6:
            _scatter(cv, rng, horizon, int(rng.integers(1, 4)), _boat, h * 0.08, (SEA,),
                     y_range=(0.02, 0.3), min_size=2)
        _scatter(cv, rng, horizon, int(rng.integers(2, 7)), _rock, h * 0.22, (SAND, SEA, GRASS),
                 y_range=(0.2, 1.0))
        if rng.random() < 0.4:
            _scatter(cv, rng, horizon, int(rng.integers(1, 4)), _tree, near, (GRASS,), y_range=(0.5, 1))

    elif kind == "lake":
        if rng.random() < 0.85:
            _mountains(cv, rng, horizon, h * rng.uniform(0.2, 0.4), rng.random() < 0.5)
        if rng.random() < 0.7:
            _hills(cv, rng, horizon, h * rng.uniform(0.05, 0.15))
        cv.below(hz, GRASS)
        cx, a = rng.uniform(0.2, 0.8) * w, rng.uniform(0.4, 0.9) * w
        depth = (h - horizon) * rng.uniform(0.35, 0.8)
        u = np.clip(1 - ((cv.xx[0] - cx) / a) ** 2, 0, 1)
        bottom = horizon + depth * np.sqrt(u) + 0.04 * h * _profile(rng, w, 6, 2) * (u > 0)
        far = horizon + h * 0.015
        cv.fill_mask((cv.yy >= far) & (cv.yy < bottom[None, :]) & (u > 0)[None, :], LAKE)
        if rng.random() < 0.75:
            _treeline(cv, rng, far + 1, 0, w, h * rng.uniform(0.025, 0.06))
        if rng.random() < 0.4:
            _winding_band(cv, rng, horizon + (h - horizon) * 0.45, rng.uniform(0, 1) * w,
                          w * 0.01, w * 0.12, PATH, 0.05)
        _scatter(cv, rng, horizon, int(rng.integers(3, 10)), _tree, near, (GRASS,))
        _scatter(cv, rng, horizon, int(rng.integers(0, 4)), _rock, h * 0.15, (GRASS, LAKE),
                 y_range=(0.3, 1.0))

    elif kind == "countryside":
        if rng.random() < 0.4:
            _mountains(cv, rng, horizon, h * rng.uniform(0.12, 0.25), rng.random() < 0.3)
        _hills(cv, rng, horizon, h * rng.uniform(0.06, 0.2))
        # Patchwork of fields: perspective bands split by slanted borders.
        bands = int(rng.integers(3, 6))
        edges = horizon + (h + 2 - horizon) * np.linspace(0, 1, bands + 1) ** 1.6
        for b in range(bands):
            y0, y1 = edges[b], edges[b + 1]
            cuts = np.sort(rng.uniform(0, 1, int(rng.integers(0, 3))))
            xs = np.concatenate([[-0.3], cuts, [1.3]]) * w
            lean = rng.uniform(-0.15, 0.15) * w
            for k in range(len(xs) - 1):
                cls = [FIELD, FIELD, GRASS, GRASS, EARTH][int(rng.integers(5))]
                cv.poly([[(xs[k], y0), (xs[k + 1], y0),
                          (xs[k + 1] + lean, y1 + 1), (xs[k] + lean, y1 + 1)]], cls)
        if rng.random() < 0.8:
            _treeline(cv, rng, horizon + 1, rng.uniform(-0.2, 0.5) * w, rng.uniform(0.5, 1.2) * w,
                      h * rng.uniform(0.02, 0.05))
        if rng.random() < 0.7:
            cls = ROAD if rng.random() < 0.6 else PATH
            _winding_band(cv, rng, horizon + 1, rng.uniform(0.2, 0.8) * w, w * 0.006,
                          w * (0.35 if cls == ROAD else 0.18), cls, 0.04, part_line=cls == ROAD)
        if rng.random() < 0.7:  # a hamlet: houses and a building in a cluster
            cx = rng.uniform(0.15, 0.85)
            for _ in range(int(rng.integers(2, 6))):
                t = rng.uniform(0.04, 0.35)
                y = horizon + t * (h - horizon)
                draw = _house if rng.random() < 0.7 else _building
                draw(cv, rng, (cx + rng.normal(0, 0.08)) * w, y, max(3.0, t * h * 0.6))
        _scatter(cv, rng, horizon, int(rng.integers(2, 8)), _tree, near, (GRASS, FIELD, EARTH),
                 y_range=(0.05, 0.8))

    elif kind == "valley":
        _mountains(cv, rng, horizon, h * rng.uniform(0.25, 0.45), rng.random() < 0.6)
        if rng.random() < 0.5:
            _hills(cv, rng, horizon, h * rng.uniform(0.05, 0.12))
        cv.below(hz, GRASS)
        if rng.random() < 0.6:
            _treeline(cv, rng, horizon + 1, 0, w, h * rng.uniform(0.02, 0.05))
        _winding_band(cv, rng, horizon + 1, rng.uniform(0.25, 0.75) * w, w * 0.01,
                      w * rng.uniform(0.3, 0.6), RIVER, 0.08)
        if rng.random() < 0.5:
            _winding_band(cv, rng, horizon + (h - horizon) * 0.2, rng.uniform(0, 1) * w,
                          w * 0.01, w * 0.12, PATH, 0.05)
        _scatter(cv, rng, horizon, int(rng.integers(3, 10)), _tree, near, (GRASS,))
        _scatter(cv, rng, horizon, int(rng.integers(1, 6)), _rock, h * 0.18, (GRASS, RIVER),
                 y_range=(0.3, 1.0))

    else:  # alpine
        _mountains(cv, rng, horizon, h * rng.uniform(0.3, 0.5), True)
        cv.below(hz, GRASS)
        # Scree slopes of earth and bare rock fields climbing from one side.
        ramp = np.linspace(0, 1, w, dtype=np.float32)
        ramp = ramp if rng.random() < 0.5 else ramp[::-1]  # the slope rises away from one side
        top = (horizon + (h - horizon) * (rng.uniform(0.05, 0.4) + rng.uniform(1.0, 2.0) * ramp)
               + 0.05 * h * _profile(rng, w, 6, 2))
        cv.below(top, EARTH)
        if rng.random() < 0.6:
            _treeline(cv, rng, horizon + 2, rng.uniform(-0.2, 0.5) * w, rng.uniform(0.5, 1.2) * w,
                      h * rng.uniform(0.03, 0.06))
        if rng.random() < 0.5:
            _winding_band(cv, rng, horizon + (h - horizon) * 0.1, rng.uniform(0, 1) * w,
                          w * 0.008, w * 0.1, PATH, 0.06)
        _scatter(cv, rng, horizon, int(rng.integers(3, 8)), _rock, h * 0.22, (GRASS, EARTH),
                 y_range=(0.15, 1.0))
        _scatter(cv, rng, horizon, int(rng.integers(0, 5)), _tree, near * 0.8, (GRASS,))
        if rng.random() < 0.25:
            _house(cv, rng, rng.uniform(0.2, 0.8) * w, horizon + 0.15 * (h - horizon), h * 0.06)

    return cv.label, cv.part, {"scene": kind, "horizon": float(horizon)}


# ============================================================================ rendering
def _lut(idx: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[idx] for a uint8 index map and a (n, c) float32 table (n <= 256), via cv2.LUT."""
    full = np.zeros((256, table.shape[1]), np.float32)
    full[: len(table)] = table
    if table.shape[1] == 1:
        return cv2.LUT(idx, full)
    return cv2.LUT(cv2.merge([idx] * table.shape[1]), full.reshape(256, 1, table.shape[1]))


def render_photo(label: np.ndarray, part: np.ndarray, horizon: float, style: Style,
                 rng: np.random.Generator) -> np.ndarray:
    """Paint a photo-like RGB uint8 image (HxWx3) for a label/part map in one style."""
    h, w = label.shape
    idx = part.astype(np.uint8) * np.uint8(NUM_CLASSES) + label  # row of the lookup tables

    # Per-image colour table: class colours, foliage of the season, light, saturation.
    colour = _COLOUR_TABLE.copy()
    for cls, rgb in style.foliage.items():
        colour[cls] = rgb
    colour *= (1 + 0.05 * rng.standard_normal(colour.shape, dtype=np.float32))
    sky_h = np.asarray(style.sky_horizon, np.float32)
    for cls, k in _REFLECT.items():
        rows = np.arange(NUM_PARTS) * NUM_CLASSES + cls
        colour[rows] = (1 - k) * colour[rows] + k * sky_h
    colour *= np.asarray(style.tint, np.float32)
    lum = colour @ np.asarray([0.299, 0.587, 0.114], np.float32)
    colour = lum[:, None] + np.float32(style.saturation) * (colour - lum[:, None])

    # Texture: noise fields mixed per class (a field is only made when a class present uses it).
    present = np.zeros(256, bool)
    present[np.unique(idx)] = True
    used = _TEXTURE_TABLE[present[: len(_TEXTURE_TABLE)]].any(axis=0)
    medium = _noise2d(rng, h, w, max(2.0, h / 48))
    coarse = _noise2d(rng, h, w, max(4.0, h / 10))
    makers = (
        lambda: _noise2d(rng, h, w, 1.6, interp=cv2.INTER_LINEAR),
        lambda: medium,
        lambda: coarse,
        lambda: _noise2d(rng, h, w, max(1.5, h / 160), aspect=24.0),
        lambda: _stripes(rng, h, w),
        lambda: 1.0 - 2.0 * np.abs(_noise2d(rng, h, w, max(2.0, h / 24))),
    )
    tex = np.ones((h, w), np.float32)
    for k, make in enumerate(makers):
        if used[k]:
            tex += _lut(idx, _TEXTURE_TABLE[:, k : k + 1]) * make()
    img = _lut(idx, colour) * tex[..., None]
    img += coarse[..., None] * _lut(idx, _HUE_TABLE)

    # Sky: vertical gradient from the zenith colour to the horizon colour, with clouds.
    sky = label == SKY
    top_rows = int(min(h, np.nonzero(sky.any(axis=1))[0].max() + 1)) if sky.any() else 0
    if top_rows:
        hs = top_rows
        rows = np.clip(np.arange(hs, dtype=np.float32) / max(1.0, horizon), 0, 1) ** 1.5
        top = np.asarray(style.sky_top, np.float32)
        grad = top[None, :] * (1 - rows[:, None]) + sky_h[None, :] * rows[:, None]
        clouds = _noise2d(rng, h, w, max(4.0, h / 6), aspect=2.5)[:hs] + 0.25 * medium[:hs]
        cover = np.clip((clouds - (1.4 - 2.2 * style.clouds)) * 0.6, 0, 0.9)[..., None]
        sky_img = grad[:, None, :] * (1 - cover) + np.asarray(style.cloud_colour, np.float32) * cover
        sky_img *= np.asarray(style.tint, np.float32) ** 0.3
        np.copyto(img[:hs], sky_img, where=sky[:hs, :, None])

    # Atmospheric haze: distant rows (and mountains most) fade towards the horizon colour.
    yrow = np.arange(h, dtype=np.float32)
    row_haze = style.haze * np.clip(1 - (yrow - horizon) / (0.6 * max(1.0, h - horizon)), 0, 1)
    f = (row_haze[:, None] * _lut(label, _HAZE_TABLE))[..., None]
    img += f * (sky_h - img)

    # Exposure and contrast, grain, then a slight lens blur that softens the drawn edges.
    gain = np.float32(255 * style.brightness * style.contrast)
    offset = np.float32(255 * style.brightness * 0.5 * (1 - style.contrast))
    img = img * gain + offset
    img += 2.0 * rng.standard_normal((h, w, 1), dtype=np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(out, (3, 3), 0.7)


def _stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Furrows: a sine along a random direction, squeezed vertically like ground in perspective."""
    ang = rng.uniform(0, np.pi)
    period = rng.uniform(10, 16) * h / 384  # coarse enough to survive a 4x downscale (demo size)
    k = np.float32(2 * np.pi / period)
    phase = (np.float32(np.cos(ang)) * k * np.arange(w, dtype=np.float32)[None, :]
             + np.float32(np.sin(ang) * 2.5) * k * np.arange(h, dtype=np.float32)[:, None])
    return np.sin(phase)


def sample_pair(seed: int, index: int, split: str = "train", height: int = 384,
                width: int = 512) -> tuple[np.ndarray, np.ndarray, dict]:
    """Scene `index` of `split` for `seed`: (label uint8 HxW, photo uint8 HxWx3 RGB, info).

    info: {"scene": ..., "style": ..., "horizon": ...}. Depends only on its arguments.
    """
    rng = np.random.default_rng([int(seed), SPLIT_CODE[split], int(index)])
    label, part, info = make_scene(rng, height, width)
    style = STYLES[int(rng.integers(len(STYLES)))]
    photo = render_photo(label, part, info["horizon"], style, rng)
    info["style"] = style.name
    return label, photo, info


# ============================================================================ the dataset
def _stem(split: str, index: int) -> str:
    return f"{split}_{index:05d}"


def write_sample_dataset(out: str | Path, n_train: int, n_test: int, seed: int = 0,
                         height: int = 384, width: int = 512, progress: bool = True) -> dict:
    """Write the sample dataset to `out` (replaced only if it is an earlier sample-data folder).

    Built in a temporary sibling folder and renamed into place when complete. Returns the
    manifest dict.
    """
    out = Path(out)
    if n_train < 1:
        raise DatasetError(f"--train {n_train}: the sample dataset needs at least 1 training pair")
    if n_test < 0:
        raise DatasetError(f"--test {n_test}: must be >= 0")
    if height < 16 or width < 16:
        raise DatasetError(f"sample size {width}x{height}: width and height must be >= 16")
    if out.exists() and any(out.iterdir()):
        man = out / MANIFEST
        stage = None
        if man.is_file():
            try:
                stage = json.loads(man.read_text(encoding="utf-8")).get("stage")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                stage = None
        if stage != "sample-data":
            raise DatasetError(
                f"{out}: exists and is not a sample-data folder; choose another --out or remove it"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result is an ordinary folder
    try:
        for sub in ("train/imgs", "train/labels", "test/labels"):
            (tmp / sub).mkdir(parents=True)
        try:
            from tqdm import tqdm
            bar = tqdm(total=n_train + n_test, desc="sample-data", unit="pair", disable=not progress)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            bar = None
        styles, scenes, present = {}, {}, np.zeros(NUM_CLASSES, np.int64)
        start = time.perf_counter()
        for i in range(n_train):
            label, photo, info = sample_pair(seed, i, "train", height, width)
            stem = _stem("train", i)
            cv2.imwrite(str(tmp / "train/imgs" / f"{stem}.jpg"), photo[..., ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            cv2.imwrite(str(tmp / "train/labels" / f"{stem}.png"), label, PNG_FLAGS)
            styles[stem], scenes[stem] = info["style"], info["scene"]
            present += np.bincount(label.ravel(), minlength=NUM_CLASSES) > 0
            if bar:
                bar.update()
        pairs = {}
        ref_rng = np.random.default_rng([int(seed), 3])
        for i in range(n_test):
            rng = np.random.default_rng([int(seed), SPLIT_CODE["test"], i])
            label, _, info = make_scene(rng, height, width)
            stem = _stem("test", i)
            cv2.imwrite(str(tmp / "test/labels" / f"{stem}.png"), label, PNG_FLAGS)
            pairs[f"{stem}.png"] = f"{_stem('train', int(ref_rng.integers(n_train)))}.jpg"
            scenes[stem] = info["scene"]
            present += np.bincount(label.ravel(), minlength=NUM_CLASSES) > 0
            if bar:
                bar.update()
        if bar:
            bar.close()
        seconds = time.perf_counter() - start
        if n_test:
            atomic_write_json(tmp / "test/label_to_img.json", pairs)
        else:
            (tmp / "test/labels").rmdir()
            (tmp / "test").rmdir()
        params = {"seed": int(seed), "train": n_train, "test": n_test, "height": height, "width": width}
        manifest = write_manifest(
            tmp, "sample-data",
            config_hash=hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest(),
            counts={"train": n_train, "test": n_test},
            extra={**params,
                   "classes": {CLASS_NAMES[c]: int(n) for c, n in enumerate(present) if n},
                   "styles": styles, "scenes": scenes,
                   "seconds": round(seconds, 3)},
        )
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return manifest

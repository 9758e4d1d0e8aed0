"""Drawing primitives of the scenes: a label map and a part map painted together, back to front.

Mountains, hills, tree lines, trees, rocks, houses, buildings, boats and winding bands (rivers,
roads, paths), plus `scatter`, which stands objects on allowed ground in perspective. Every
primitive draws from the caller's generator, so the call order is part of the dataset.
"""

from __future__ import annotations

import cv2
import numpy as np

from .noise import profile
from .palette import BOAT, BUILDING, HILL, HOUSE, MOUNTAIN, ROCK, SKY, TREE


class Canvas:
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


def mountains(cv: Canvas, rng, horizon: float, height: float, snow: bool,
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
    prof = peaks.max(axis=0) + 0.12 * profile(rng, w, 12, 4, 0.55)
    prof = np.clip(prof, 0.08, None)
    if window is not None:
        prof *= window
    ridge = horizon - height * prof
    mask = (cv.yy >= ridge[None, :]) & (cv.yy < horizon + 1)
    cv.fill_mask(mask, MOUNTAIN, 0)
    # Sunlit faces: left of a crest line running down from each summit, slanted and wobbling.
    top = (horizon - height * peak)[owner][None, :]
    slant = rng.uniform(-0.5, 0.5, n).astype(np.float32)[owner][None, :]
    wobble = 0.03 * w * profile(rng, cv.h, 10, 3)[:, None]
    lit = cv.xx < cx[owner][None, :] + (cv.yy - top) * slant + wobble
    cv.part[mask & lit] = 1
    if snow:
        snow_row = horizon - height * rng.uniform(0.55, 0.75)
        drip = 0.04 * height * profile(rng, w, 24, 2)
        cv.part[mask & (cv.yy < snow_row + drip[None, :])] = 2
    return ridge


def hills(cv: Canvas, rng, horizon: float, height: float, window=None) -> np.ndarray:
    """Rolling smooth hills on the horizon. Return the ridge rows."""
    prof = 0.55 + 0.45 * profile(rng, cv.w, int(rng.integers(2, 5)), 2, 0.35)
    if window is not None:
        prof *= window
    ridge = horizon - height * prof
    cv.below(ridge, HILL, horizon + 1)
    return ridge


def side_window(rng, w: int, side: str | None = None) -> np.ndarray:
    """A 0..1 column weight that keeps a feature to one side of the picture."""
    x = np.linspace(0, 1, w, dtype=np.float32)
    side = side or ("left" if rng.random() < 0.5 else "right")
    edge = rng.uniform(0.3, 0.6)
    t = np.clip((edge - x) / 0.15, 0, 1) if side == "left" else np.clip((x - (1 - edge)) / 0.15, 0, 1)
    return t * t * (3 - 2 * t)


def treeline(cv: Canvas, rng, base: np.ndarray | float, x0: float, x1: float, height: float):
    """A band of distant trees with a bumpy top standing on row(s) `base`."""
    w = cv.w
    base = np.full(w, base, np.float32) if np.isscalar(base) else base
    bump = np.abs(profile(rng, w, max(8, w // 10), 2, 0.6))
    top = base - height * (0.45 + 0.9 * bump)
    cols = np.zeros(w, bool)
    cols[int(max(0, x0)):int(min(w, x1))] = True
    mask = (cv.yy >= top[None, :]) & (cv.yy < base[None, :] + max(1.0, height * 0.15)) & cols[None, :]
    cv.fill_mask(mask, TREE, 0)


def tree(cv: Canvas, rng, x: float, y: float, size: float) -> None:
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


def rock(cv: Canvas, rng, x: float, y: float, size: float) -> None:
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


def house(cv: Canvas, rng, x: float, y: float, size: float) -> None:
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


def building(cv: Canvas, rng, x: float, y: float, size: float) -> None:
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


def boat(cv: Canvas, rng, x: float, y: float, size: float) -> None:
    """A small sailing boat floating on row y: hull (part 0) and sail (part 1)."""
    cv.poly([[(x - size, y - size * 0.3), (x + size, y - size * 0.3),
              (x + size * 0.7, y), (x - size * 0.7, y)]], BOAT, 0)
    cv.poly([[(x - size * 0.1, y - size * 0.35), (x - size * 0.1, y - size * 1.6),
              (x + size * 0.7, y - size * 0.35)]], BOAT, 1)


def winding_band(cv: Canvas, rng, y_far: float, x_far: float, w_far: float, w_near: float,
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


def depth_size(y: float, horizon: float, h: int, near: float) -> float:
    """Object size at ground row y: 0 at the horizon, `near` pixels at the bottom edge."""
    return max(0.0, (y - horizon) / max(1.0, h - horizon)) * near


def scatter(cv: Canvas, rng, horizon: float, count: int, draw, near: float,
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
        size = depth_size(y, horizon, h, near) * rng.uniform(0.7, 1.3)
        if size >= min_size:
            draw(cv, rng, x, y, size)
    return len(spots)

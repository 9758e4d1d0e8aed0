"""Scene kinds as a registry of draw functions; `make_scene` picks one and draws a layout.

A draw function takes (canvas, rng, horizon), paints the canvas back to front and returns the
horizon row it used (a kind may redraw it). Adding a kind = one function + `@register_scene`.
The registration order is part of the dataset: a scene draws its kind by index.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from .noise import profile
from .palette import EARTH, FIELD, GRASS, LAKE, PATH, RIVER, ROAD, ROCK, SAND, SEA
from .shapes import (Canvas, boat, building, hills, house, mountains, rock, scatter, side_window,
                     tree, treeline, winding_band)

SceneDraw = Callable[[Canvas, np.random.Generator, float], float]
SCENE_DRAWERS: dict[str, SceneDraw] = {}
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


def register_scene(name: str) -> Callable[[SceneDraw], SceneDraw]:
    """Decorator: register a scene draw function under `name` (lower-case, unique)."""
    if not _NAME.match(name):
        raise ValueError(f"scene name {name!r}: use lower-case letters, digits and '-'")
    if name in SCENE_DRAWERS:
        raise ValueError(f"scene {name!r} is registered twice")

    def add(draw: SceneDraw) -> SceneDraw:
        if not callable(draw):
            raise TypeError(f"scene {name!r}: {draw!r} is not a function")
        SCENE_DRAWERS[name] = draw
        return draw

    return add


def make_scene(rng: np.random.Generator, height: int, width: int,
               kind: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Draw one landscape layout (of `kind`, else one drawn from `rng`).

    Returns (label uint8 HxW with class ids, part uint8 HxW with sub-part ids 0..3, info) where
    info holds "scene" (one of SCENES) and "horizon" (row of the horizon).
    """
    kinds = tuple(SCENE_DRAWERS)
    kind = kind or kinds[int(rng.integers(len(kinds)))]
    if kind not in SCENE_DRAWERS:
        raise ValueError(f"unknown scene kind {kind!r}; the kinds are {', '.join(kinds)}")
    cv = Canvas(height, width)
    horizon = height * rng.uniform(0.36, 0.55)
    horizon = SCENE_DRAWERS[kind](cv, rng, horizon)
    return cv.label, cv.part, {"scene": kind, "horizon": float(horizon)}


def _near(cv: Canvas) -> float:
    """Size of a tree standing on the bottom edge."""
    return cv.h * 0.6


@register_scene("coast")
def coast(cv: Canvas, rng, horizon: float) -> float:
    """Sea to a straight horizon, a sandy shore, maybe a headland, grass, boats and rocks."""
    h, w = cv.h, cv.w
    horizon = h * rng.uniform(0.38, 0.5)
    if rng.random() < 0.6:
        side = "left" if rng.random() < 0.5 else "right"
        if rng.random() < 0.5:
            mountains(cv, rng, horizon, h * rng.uniform(0.15, 0.3), False, side_window(rng, w, side))
        else:
            hills(cv, rng, horizon, h * rng.uniform(0.08, 0.18), side_window(rng, w, side))
    cv.below(np.full(w, horizon, np.float32), SEA)
    shore = horizon + (h - horizon) * (rng.uniform(0.3, 0.6)
                                       + rng.uniform(-0.25, 0.25) * np.linspace(-1, 1, w)
                                       + 0.08 * profile(rng, w, 5, 3))
    shore = np.clip(shore, horizon + 4, h - 4).astype(np.float32)
    cv.below(shore, SAND)
    cv.fill_mask((cv.yy >= shore[None, :] - max(1.0, h * 0.012)) & (cv.yy < shore[None, :]), SEA, 1)
    if rng.random() < 0.6:
        top = shore + (h - shore) * rng.uniform(0.35, 0.7) + 0.06 * h * profile(rng, w, 4, 2)
        top = np.where(side_window(rng, w) > 0.5, top, h + 10)  # grass on one side only
        cv.below(top.astype(np.float32), GRASS)
    if rng.random() < 0.6:
        scatter(cv, rng, horizon, int(rng.integers(1, 4)), boat, h * 0.08, (SEA,),
                y_range=(0.02, 0.3), min_size=2)
    scatter(cv, rng, horizon, int(rng.integers(2, 7)), rock, h * 0.22, (SAND, SEA, GRASS),
            y_range=(0.2, 1.0))
    if rng.random() < 0.4:
        scatter(cv, rng, horizon, int(rng.integers(1, 4)), tree, _near(cv), (GRASS,), y_range=(0.5, 1))
    return horizon


@register_scene("lake")
def lake(cv: Canvas, rng, horizon: float) -> float:
    """A lake in a meadow below mountains and hills, a tree line on the far shore, trees, rocks."""
    h, w = cv.h, cv.w
    if rng.random() < 0.85:
        mountains(cv, rng, horizon, h * rng.uniform(0.2, 0.4), rng.random() < 0.5)
    if rng.random() < 0.7:
        hills(cv, rng, horizon, h * rng.uniform(0.05, 0.15))
    cv.below(np.full(w, horizon, np.float32), GRASS)
    cx, a = rng.uniform(0.2, 0.8) * w, rng.uniform(0.4, 0.9) * w
    depth = (h - horizon) * rng.uniform(0.35, 0.8)
    u = np.clip(1 - ((cv.xx[0] - cx) / a) ** 2, 0, 1)
    bottom = horizon + depth * np.sqrt(u) + 0.04 * h * profile(rng, w, 6, 2) * (u > 0)
    far = horizon + h * 0.015
    cv.fill_mask((cv.yy >= far) & (cv.yy < bottom[None, :]) & (u > 0)[None, :], LAKE)
    if rng.random() < 0.75:
        treeline(cv, rng, far + 1, 0, w, h * rng.uniform(0.025, 0.06))
    if rng.random() < 0.4:
        winding_band(cv, rng, horizon + (h - horizon) * 0.45, rng.uniform(0, 1) * w,
                     w * 0.01, w * 0.12, PATH, 0.05)
    scatter(cv, rng, horizon, int(rng.integers(3, 10)), tree, _near(cv), (GRASS,))
    scatter(cv, rng, horizon, int(rng.integers(0, 4)), rock, h * 0.15, (GRASS, LAKE),
            y_range=(0.3, 1.0))
    return horizon


def _fields(cv: Canvas, rng, horizon: float) -> None:
    """Patchwork of fields: perspective bands split by slanted borders."""
    h, w = cv.h, cv.w
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


@register_scene("countryside")
def countryside(cv: Canvas, rng, horizon: float) -> float:
    """Fields below hills, a tree line, a road or path, a hamlet of houses, scattered trees."""
    h, w = cv.h, cv.w
    if rng.random() < 0.4:
        mountains(cv, rng, horizon, h * rng.uniform(0.12, 0.25), rng.random() < 0.3)
    hills(cv, rng, horizon, h * rng.uniform(0.06, 0.2))
    _fields(cv, rng, horizon)
    if rng.random() < 0.8:
        treeline(cv, rng, horizon + 1, rng.uniform(-0.2, 0.5) * w, rng.uniform(0.5, 1.2) * w,
                 h * rng.uniform(0.02, 0.05))
    if rng.random() < 0.7:
        cls = ROAD if rng.random() < 0.6 else PATH
        winding_band(cv, rng, horizon + 1, rng.uniform(0.2, 0.8) * w, w * 0.006,
                     w * (0.35 if cls == ROAD else 0.18), cls, 0.04, part_line=cls == ROAD)
    if rng.random() < 0.7:  # a hamlet: houses and a building in a cluster
        cx = rng.uniform(0.15, 0.85)
        for _ in range(int(rng.integers(2, 6))):
            t = rng.uniform(0.04, 0.35)
            y = horizon + t * (h - horizon)
            draw = house if rng.random() < 0.7 else building
            draw(cv, rng, (cx + rng.normal(0, 0.08)) * w, y, max(3.0, t * h * 0.6))
    scatter(cv, rng, horizon, int(rng.integers(2, 8)), tree, _near(cv), (GRASS, FIELD, EARTH),
            y_range=(0.05, 0.8))
    return horizon


@register_scene("valley")
def valley(cv: Canvas, rng, horizon: float) -> float:
    """A river winding through a green valley between mountains, with a path, trees and rocks."""
    h, w = cv.h, cv.w
    mountains(cv, rng, horizon, h * rng.uniform(0.25, 0.45), rng.random() < 0.6)
    if rng.random() < 0.5:
        hills(cv, rng, horizon, h * rng.uniform(0.05, 0.12))
    cv.below(np.full(w, horizon, np.float32), GRASS)
    if rng.random() < 0.6:
        treeline(cv, rng, horizon + 1, 0, w, h * rng.uniform(0.02, 0.05))
    winding_band(cv, rng, horizon + 1, rng.uniform(0.25, 0.75) * w, w * 0.01,
                 w * rng.uniform(0.3, 0.6), RIVER, 0.08)
    if rng.random() < 0.5:
        winding_band(cv, rng, horizon + (h - horizon) * 0.2, rng.uniform(0, 1) * w,
                     w * 0.01, w * 0.12, PATH, 0.05)
    scatter(cv, rng, horizon, int(rng.integers(3, 10)), tree, _near(cv), (GRASS,))
    scatter(cv, rng, horizon, int(rng.integers(1, 6)), rock, h * 0.18, (GRASS, RIVER),
            y_range=(0.3, 1.0))
    return horizon


@register_scene("alpine")
def alpine(cv: Canvas, rng, horizon: float) -> float:
    """Snowy peaks, scree slopes of earth climbing from one side, rocks, a few trees, a hut."""
    h, w = cv.h, cv.w
    mountains(cv, rng, horizon, h * rng.uniform(0.3, 0.5), True)
    cv.below(np.full(w, horizon, np.float32), GRASS)
    ramp = np.linspace(0, 1, w, dtype=np.float32)
    ramp = ramp if rng.random() < 0.5 else ramp[::-1]  # the slope rises away from one side
    top = (horizon + (h - horizon) * (rng.uniform(0.05, 0.4) + rng.uniform(1.0, 2.0) * ramp)
           + 0.05 * h * profile(rng, w, 6, 2))
    cv.below(top, EARTH)
    if rng.random() < 0.6:
        treeline(cv, rng, horizon + 2, rng.uniform(-0.2, 0.5) * w, rng.uniform(0.5, 1.2) * w,
                 h * rng.uniform(0.03, 0.06))
    if rng.random() < 0.5:
        winding_band(cv, rng, horizon + (h - horizon) * 0.1, rng.uniform(0, 1) * w,
                     w * 0.008, w * 0.1, PATH, 0.06)
    scatter(cv, rng, horizon, int(rng.integers(3, 8)), rock, h * 0.22, (GRASS, EARTH),
            y_range=(0.15, 1.0))
    scatter(cv, rng, horizon, int(rng.integers(0, 5)), tree, _near(cv) * 0.8, (GRASS,))
    if rng.random() < 0.25:
        house(cv, rng, rng.uniform(0.2, 0.8) * w, horizon + 0.15 * (h - horizon), h * 0.06)
    return horizon


SCENES: tuple[str, ...] = tuple(SCENE_DRAWERS)  # the built-in kinds, in drawing order

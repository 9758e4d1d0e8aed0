"""The global looks (dawn, noon, golden hour, dusk, overcast, autumn, misty).

A style moves every class's colour together (light tint, saturation, brightness, sky gradient,
clouds, haze, foliage), so a photo's style is learnable and measurable while each class stays
recognisable. The order of STYLES is part of the dataset: a scene draws its style by index.
"""

from __future__ import annotations

from dataclasses import dataclass

from .palette import FIELD, GRASS, HILL, TREE


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
STYLE_NAMES = tuple(s.name for s in STYLES)
_BY_NAME = {s.name: s for s in STYLES}


def style_by_name(name: str) -> Style:
    """The Style called `name`; ValueError listing the known names otherwise."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown style {name!r}; the sample styles are {', '.join(STYLE_NAMES)}") from None
